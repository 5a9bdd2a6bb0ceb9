//! `scan`: a whole collection, streamed. A reader thread walks and reads the inputs, cuts
//! each document into passages ([`crate::chunk`]) and tokenises them; the calling thread
//! runs the model on groups of passages and appends the results to the log ([`log`]) as
//! each group completes. Memory holds one group and the channel between the two threads,
//! whatever the size of the collection. [`finish`] then turns the log into the outputs
//! (passages, documents, summary, report).

pub mod conduct;
pub mod finish;
pub mod log;
pub mod merge;
pub mod outputs;
pub mod pipeline;
pub mod report;
pub mod summary;
pub mod verdict;

use crate::calibrate::Decision;
use crate::chunk::{self, ChunkOptions};
use crate::error::Result;
use crate::eval::reservoir::Reservoir;
use crate::input::{read_collection, CollectOptions, CollectStats, Doc, Event};
use crate::record::PassageRecord;
use crate::scorer::{Prepared, Scorer};
use log::{DocumentLine, LogLine, LogWriter, SkippedLine};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;

/// How a collection is scanned.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub collect: CollectOptions,
    pub chunk: ChunkOptions,
    /// `(index, count)`: scan only the documents whose id hashes to `index` of `count`.
    pub shard: Option<(u64, u64)>,
}

/// The shard a document id belongs to, of `count`: stable across machines, platforms and
/// versions (the first 8 bytes of its sha256).
pub fn shard_of(id: &str, count: u64) -> u64 {
    let h = Sha256::digest(id.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % count.max(1)
}

/// The models and decision a scan scores with.
pub struct Scoring<'a> {
    /// Its records name the target and reference models.
    pub scorer: &'a Scorer<'a>,
    pub decision: Option<&'a Decision>,
    /// The label field (`--label-field`): labels are written under this name.
    pub label_field: Option<String>,
}

/// What one run of [`run`] did (a resumed run counts only its own work).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    pub seconds: f64,
    pub passages: u64,
    pub tokens: u64,
    pub collect: CollectStats,
    pub reader: pipeline::ReaderTime,
    /// Passage texts drawn uniformly at random from the whole collection as it was cut
    /// (resumed items included), for the blind baseline: see [`Reservoir`].
    #[serde(skip)]
    pub sample: Vec<String>,
}

/// A passage on its way to the model.
struct PassageItem {
    prepared: Prepared,
    doc: String,
    index: usize,
    place: Place,
    label: Option<bool>,
}

/// Where a passage is in its document: its byte span, and the lines (a text file) or pages
/// (a PDF) it covers.
#[derive(Debug, Clone, Copy)]
struct Place {
    span: [u64; 2],
    lines: Option<[u64; 2]>,
    pages: Option<[u64; 2]>,
}

impl Place {
    /// The passage at bytes `a..b` of the segment `text`, which starts at byte `offset` of
    /// `doc`'s text (`lines` follows the document's line count).
    fn of(
        doc: &Doc,
        lines: &mut chunk::Lines,
        offset: u64,
        text: &str,
        a: usize,
        b: usize,
    ) -> Place {
        let span = [offset + a as u64, offset + b as u64];
        Place {
            span,
            lines: doc.lines.then(|| lines.span(text, a, b)),
            pages: (!doc.pages.is_empty())
                .then(|| crate::input::pdf::page_span(&doc.pages, span[0], span[1])),
        }
    }

    /// The passage's id: `DOC#pK`, and for a PDF the pages it covers too
    /// (`paper.pdf#p3.pages-2-3`, `paper.pdf#p0.page-1`).
    fn passage_id(&self, doc: &str, index: usize) -> String {
        let id = chunk::passage_id(doc, index);
        match self.pages {
            Some([a, b]) if a == b => format!("{id}.page-{a}"),
            Some([a, b]) => format!("{id}.pages-{a}-{b}"),
            None => id,
        }
    }

    fn apply(self, rec: &mut PassageRecord) {
        rec.span = Some(self.span);
        rec.lines = self.lines;
        rec.pages = self.pages;
    }
}

enum Item {
    Passage(Box<PassageItem>),
    Document(DocumentLine),
    Skipped(SkippedLine),
}

/// Scans `inputs` into `log`, skipping the items the log already holds (a resume), and
/// calls `progress(documents, passages, text bytes)` after each group. Draws a seeded
/// sample of at most `sample` passage texts as it reads (`RunStats::sample`), so that the
/// blind baseline needs no second read.
pub fn run(
    scoring: &Scoring,
    inputs: &[PathBuf],
    opts: &ScanOptions,
    log: &mut LogWriter,
    sample: usize,
    mut progress: impl FnMut(u64, u64, u64),
) -> Result<RunStats> {
    let started = std::time::Instant::now();
    let skip = log.items();
    let mut stats = RunStats::default();
    let (collected, reader) = pipeline::with_reader(
        512,
        |tx| {
            let mut reservoir = Reservoir::new(sample, 0);
            let stats = read_items(scoring.scorer, inputs, opts, skip, &mut reservoir, tx)?;
            Ok((stats, reservoir.into_items()))
        },
        |rx| {
            let mut group: Vec<Item> = Vec::new();
            let (mut tokens, mut n) = (0usize, 0usize);
            let (mut docs, mut passages, mut bytes) = (0u64, 0u64, 0u64);
            for item in rx {
                let item = item?;
                match &item {
                    Item::Passage(p) => {
                        tokens += scoring.scorer.prepared_tokens(&p.prepared);
                        n += 1;
                    }
                    Item::Document(d) => {
                        docs += 1;
                        bytes += d.bytes;
                    }
                    Item::Skipped(_) => {}
                }
                group.push(item);
                if scoring.scorer.group_full(n, tokens) {
                    let (p, t) = write_group(scoring, std::mem::take(&mut group), log)?;
                    passages += p;
                    stats.tokens += t;
                    (tokens, n) = (0, 0);
                    progress(docs, passages, bytes);
                }
            }
            let (p, t) = write_group(scoring, group, log)?;
            passages += p;
            stats.tokens += t;
            progress(docs, passages, bytes);
            stats.passages = passages;
            Ok(())
        },
    )?;
    (stats.collect, stats.sample) = collected;
    stats.reader = reader;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Scores a group's passages and appends the group to the log with a commit. Returns the
/// passages and tokens scored.
fn write_group(scoring: &Scoring, group: Vec<Item>, log: &mut LogWriter) -> Result<(u64, u64)> {
    if group.is_empty() {
        return Ok((0, 0));
    }
    let mut metas = Vec::new();
    let mut prepared = Vec::new();
    let mut lines = Vec::with_capacity(group.len());
    for item in group {
        match item {
            Item::Passage(p) => {
                let p = *p;
                prepared.push(p.prepared);
                metas.push((p.doc, p.index, p.place, p.label));
                lines.push(None);
            }
            Item::Document(d) => lines.push(Some(LogLine::Document(d))),
            Item::Skipped(s) => lines.push(Some(LogLine::Skipped(s))),
        }
    }
    // a model server that still fails after its retries fails the passages its requests
    // carried, not the scan: they are listed, and `--resume` scores them again (log.rs)
    let ids: Vec<String> = prepared.iter().map(|p| p.passage.id.clone()).collect();
    let results = scoring
        .scorer
        .score_group(prepared)?
        .into_iter()
        .zip(ids)
        .map(|(r, id)| match r {
            Ok(r) => Ok(r),
            Err(e @ crate::Error::Server { .. }) => Ok(scoring.scorer.failed_record(id, &e)),
            Err(e) => Err(e),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut records = results.into_iter().zip(metas);
    let (mut passages, mut tokens) = (0, 0);
    for line in lines {
        let line = match line {
            Some(l) => l,
            None => {
                let (r, (doc, index, place, label)) = records.next().expect("one per passage");
                passages += 1;
                tokens += r.n_tokens as u64;
                let mut rec = r;
                rec.document = Some(doc);
                rec.passage = Some(index);
                place.apply(&mut rec);
                if let (Some(l), Some(f)) = (label, &scoring.label_field) {
                    rec.extra.insert(f.clone(), serde_json::Value::Bool(l));
                }
                if let (Some(d), None) = (scoring.decision, &rec.failed) {
                    d.annotate(&mut rec);
                }
                LogLine::Passage(Box::new(rec))
            }
        };
        log.write(&line)?;
    }
    log.commit()?;
    Ok((passages, tokens))
}

/// The reader side: documents → passages (tokenised) and skips, as items, in order; the
/// first `skip` items are counted but neither tokenised nor sent. Every passage's text, the
/// skipped ones' too, is offered to `sample`.
fn read_items(
    scorer: &Scorer,
    inputs: &[PathBuf],
    opts: &ScanOptions,
    skip: u64,
    sample: &mut Reservoir,
    tx: &pipeline::Sender<Item>,
) -> Result<CollectStats> {
    let mut count = 0u64;
    let mut doc_passages = 0usize;
    let mut lines = chunk::Lines::default();
    let send = |item: Item, count: &mut u64| -> Result<()> {
        *count += 1;
        if *count > skip {
            tx.send(item)?;
        }
        Ok(())
    };
    let keep = |id: &str| match opts.shard {
        Some((i, n)) => shard_of(id, n) == i,
        None => true,
    };
    let tokenizer = scorer.target_tokenizer()?;
    read_collection(inputs, &opts.collect, &keep, &mut |e| match e {
        Event::Segment { doc, offset, text } => {
            for (a, b) in chunk::cut(tokenizer, &doc.id, text, opts.chunk)? {
                let index = doc_passages;
                doc_passages += 1;
                sample.offer(&text[a..b]);
                if count < skip {
                    count += 1;
                    continue;
                }
                let place = Place::of(doc, &mut lines, offset, text, a, b);
                let passage = doc.passage(place.passage_id(&doc.id, index), &text[a..b]);
                let item = PassageItem {
                    prepared: scorer.prepare(passage)?,
                    doc: doc.id.clone(),
                    index,
                    place,
                    label: doc.label,
                };
                send(Item::Passage(Box::new(item)), &mut count)?;
            }
            lines.next_segment(text);
            Ok(())
        }
        Event::End {
            doc,
            bytes,
            problem,
            repaired,
        } => {
            let passages = std::mem::take(&mut doc_passages);
            lines = chunk::Lines::default();
            let item = if passages == 0 {
                Item::Skipped(SkippedLine {
                    source: doc.source.clone(),
                    reason: problem.unwrap_or_else(|| "empty: no text to score".into()),
                })
            } else {
                Item::Document(DocumentLine {
                    id: doc.id.clone(),
                    source: doc.source.clone(),
                    bytes,
                    passages,
                    label: doc.label,
                    problem,
                    repaired,
                })
            };
            send(item, &mut count)
        }
        Event::Skipped { source, reason } => {
            send(Item::Skipped(SkippedLine { source, reason }), &mut count)
        }
    })
}

/// Re-reads the documents of `wanted` (document id, passage index) and scores those
/// passages again with per-token details, for the report's heat maps.
pub fn rescore_with_details(
    scoring: &Scoring,
    inputs: &[PathBuf],
    opts: &ScanOptions,
    wanted: &[(String, usize)],
) -> Result<Vec<PassageRecord>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let docs: HashSet<&str> = wanted.iter().map(|(d, _)| d.as_str()).collect();
    let want: HashSet<(&str, usize)> = wanted.iter().map(|(d, i)| (d.as_str(), *i)).collect();
    let tokenizer = scoring.scorer.target_tokenizer()?;
    let mut found = Vec::new();
    let mut doc_passages = 0usize;
    let mut lines = chunk::Lines::default();
    let keep = |id: &str| docs.contains(id);
    let collect = CollectOptions {
        strict: false,
        ..opts.collect.clone()
    };
    read_collection(inputs, &collect, &keep, &mut |e| {
        match e {
            Event::Segment { doc, offset, text } => {
                for (a, b) in chunk::cut(tokenizer, &doc.id, text, opts.chunk)? {
                    let index = doc_passages;
                    doc_passages += 1;
                    if want.contains(&(doc.id.as_str(), index)) {
                        let place = Place::of(doc, &mut lines, offset, text, a, b);
                        let p = doc.passage(place.passage_id(&doc.id, index), &text[a..b]);
                        found.push((p, doc.id.clone(), index, place));
                    }
                }
                lines.next_segment(text);
            }
            Event::End { .. } => {
                doc_passages = 0;
                lines = chunk::Lines::default();
            }
            Event::Skipped { .. } => {}
        }
        Ok(())
    })?;
    let detailed = scoring.scorer.with_details();
    let prepared = found
        .iter()
        .map(|(p, ..)| detailed.prepare(p.clone()))
        .collect::<Result<Vec<_>>>()?;
    let results = detailed.score_prepared(prepared)?;
    let mut out = Vec::new();
    for (mut rec, (p, doc, index, place)) in results.into_iter().zip(found) {
        rec.document = Some(doc);
        rec.passage = Some(index);
        place.apply(&mut rec);
        rec.extra
            .insert("text".into(), serde_json::Value::String(p.text));
        if let Some(d) = scoring.decision {
            d.annotate(&mut rec);
        }
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_balanced() {
        // fixed values (the first 8 bytes of the id's SHA-256, big-endian, mod the count, as
        // Python's hashlib computes them): a shard assignment must never change between
        // versions, or a resumed or merged run would score some documents twice
        for (id, count, shard) in [
            ("collection/a.txt", 3, 1),
            ("collection/b.md", 3, 1),
            ("doc0", 7, 2),
            ("books/moby.txt#p12", 16, 9),
        ] {
            assert_eq!(shard_of(id, count), shard, "{id} of {count}");
        }
        let counts = (0..3000).fold([0usize; 3], |mut c, i| {
            c[shard_of(&format!("doc{i}"), 3) as usize] += 1;
            c
        });
        assert!(counts.iter().all(|&c| c > 900), "{counts:?}");
    }
}
