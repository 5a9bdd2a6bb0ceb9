//! The README teaches the commands: every subcommand and flag its examples and synopses show
//! must exist (a renamed or removed flag fails here, not in a reader's terminal).

use crate::common;
use std::collections::{BTreeMap, BTreeSet};

/// Each `miascan …` command line in the README's code blocks, continuation lines joined
/// (a trailing `\`, or the synopses' indented lines).
fn command_lines(readme: &str) -> Vec<String> {
    let (mut out, mut in_code) = (Vec::new(), false);
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            out.extend(current.take());
            continue;
        }
        if !in_code {
            continue;
        }
        let continues = current.as_ref().is_some_and(|c| c.ends_with('\\'))
            || (line.starts_with(' ') && current.is_some());
        if continues {
            let c = current.as_mut().expect("checked");
            c.push(' ');
            c.push_str(line.trim());
        } else {
            out.extend(current.take());
            current = line.starts_with("miascan ").then(|| line.to_string());
        }
    }
    out.extend(current);
    out
}

/// `--flags` of a line, each whole (`--k` is not `--keep`).
fn flags(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(at) = line[i..].find("--") {
        let start = i + at;
        let mut end = start + 2;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'-')
        {
            end += 1;
        }
        let before_ok = start == 0 || !b[start - 1].is_ascii_alphanumeric();
        if end > start + 2 && before_ok {
            out.push(line[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_subcommand_and_flag_the_readme_shows_exists() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let lines = command_lines(&readme);
    assert!(lines.len() >= 20, "the README's command lines: {lines:#?}");
    // subcommand (with `freq`'s own) → the flags shown with it
    let mut shown: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut sub = vec![words[1].to_string()];
        if words[1] == "freq" {
            sub.push(words[2].to_string());
        }
        shown.entry(sub).or_default().extend(flags(line));
    }
    let mut missing = Vec::new();
    for (sub, flags) in &shown {
        let o = common::miascan().args(sub).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        if !o.status.success() {
            missing.push(format!("miascan {}: not a subcommand", sub.join(" ")));
            continue;
        }
        let defined: BTreeSet<String> = flags_in(&help);
        for f in flags {
            if f != "--help" && !defined.contains(f) {
                missing.push(format!("miascan {} {f}", sub.join(" ")));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "shown in the README but not in --help: {missing:#?}"
    );
}

/// The flags a `--help` text defines.
fn flags_in(help: &str) -> BTreeSet<String> {
    flags(help).into_iter().collect()
}

#[test]
fn the_readme_parser_sees_what_it_must() {
    let text = "x\n```\nmiascan scan A --out D [--k 0.2]\n        [--fdr 0.05]\nmiascan merge D --out E\n```\n```sh\nmiascan score --model http://h/v1 \\\n  --tokenizer T x\n```\nmiascan scan --not-in-code\n";
    let lines = command_lines(text);
    assert_eq!(
        lines,
        [
            "miascan scan A --out D [--k 0.2] [--fdr 0.05]",
            "miascan merge D --out E",
            "miascan score --model http://h/v1 \\ --tokenizer T x",
        ]
    );
    assert_eq!(flags(&lines[0]), ["--out", "--k", "--fdr"]);
    assert_eq!(flags("a--b --c-d"), ["--c-d"]);
}
