//! What `scan` would read in a folder, without a model: the files read as documents, the
//! bytes of text, and every skipped file counted by its reason (the reason's first words).
//! Measures the readers on real collections (docs/correctness.md, "Collections").
//!
//! usage: cargo run --release --example census -- DIR... [--hidden] [--no-ignore]
//!        [--type T]... [--encoding LABEL]
//! (as `scan`: ignore files respected unless --no-ignore)

use miascan::input::walk::{Filter, WalkOptions};
use miascan::input::{read_collection, CollectOptions, Event, ReadOptions, Utf8Policy};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() {
    let mut inputs = Vec::new();
    let mut hidden = false;
    let mut ignore_files = true;
    let mut types = Vec::new();
    let mut encoding = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--hidden" => hidden = true,
            "--no-ignore" => ignore_files = false,
            "--type" => types.push(args.next().expect("--type T")),
            "--encoding" => {
                let l = args.next().expect("--encoding LABEL");
                encoding = Some(encoding_rs::Encoding::for_label(l.as_bytes()).expect("label"));
            }
            _ => inputs.push(PathBuf::from(a)),
        }
    }
    let opts = CollectOptions {
        read: ReadOptions {
            encoding,
            ..ReadOptions::default()
        },
        walk: WalkOptions {
            hidden,
            follow_links: false,
            ignore_files,
            filter: Filter::new(&types, &[], &[]).expect("known types"),
        },
        strict: false,
        relative_ids: true,
        utf8: Utf8Policy::Skip,
        ..CollectOptions::default()
    };
    let (mut docs, mut bytes, mut partial) = (0u64, 0u64, 0u64);
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let started = std::time::Instant::now();
    let stats = read_collection(&inputs, &opts, &|_| true, &mut |e| {
        match e {
            Event::Segment { text, .. } => bytes += text.len() as u64,
            Event::End { problem, .. } => {
                docs += 1;
                partial += u64::from(problem.is_some());
            }
            Event::Skipped { reason, .. } => {
                // the reason without its particulars (offsets, lines, names)
                let key: String = reason
                    .split(|c: char| c == '(' || c == ':' || c.is_ascii_digit())
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                *skipped.entry(key).or_default() += 1;
            }
        }
        Ok(())
    })
    .expect("lenient reading does not fail");
    println!(
        "documents {docs} ({partial} partial), text {:.1} MB, files opened {}, hidden left out {}, by type {}, {:.1} s",
        bytes as f64 / 1e6,
        stats.files,
        stats.hidden,
        stats.by_type,
        started.elapsed().as_secs_f64()
    );
    let total: u64 = skipped.values().sum();
    println!("skipped {total}:");
    let mut by: Vec<_> = skipped.into_iter().collect();
    by.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (reason, n) in by {
        println!("  {n:>6}  {reason}");
    }
}
