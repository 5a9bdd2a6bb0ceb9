//! The log(s) of a scan → its figures, and `passages.jsonl`: documents, counts and the top
//! passages ([`super::summary`]'s schema), recomputed from the logs alone, so a resumed scan
//! and shards joined by `merge` give the same files as one uninterrupted run. The verdict is
//! [`super::verdict::conclude`]'s, the other files [`super::outputs`]'.

use super::log::{read_lines, DocumentLine, LogLine, RunHeader, SkippedLine};
use super::summary::{DocumentRow, Outputs, Summary, Verdict, RANKING_SCORE};
use super::verdict::{benjamini_hochberg, document_p};
use crate::error::{Error, Result};
use crate::record::PassageRecord;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Default)]
struct Acc {
    sums: Vec<f64>,
    counts: Vec<usize>,
    maxes: Vec<Option<f64>>,
    scored: usize,
    flagged: usize,
    decided: usize,
    p: Vec<f64>,
}

/// Orders passage records by `score`, highest first (missing values last).
pub fn best_first(records: &mut [PassageRecord], score: &str) {
    let v = |r: &PassageRecord| r.scores.get(score).unwrap_or(f64::NEG_INFINITY);
    records.sort_by(|a, b| v(b).total_cmp(&v(a)));
}

/// Reads the logs (one, or one per shard), writes `passages.jsonl` into `out` and returns
/// the figures. `top` passages are remembered for heat maps.
pub fn collect(logs: &[PathBuf], out: &Path, fdr: f64, top: usize) -> Result<Outputs> {
    let out_path = out.join("passages.jsonl");
    let io = Error::output(&out_path);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out_path).map_err(&io)?);
    let mut header: Option<RunHeader> = None;
    let mut names: Vec<String> = Vec::new();
    let mut accs: HashMap<String, Acc> = HashMap::new();
    let mut documents = Vec::new();
    let mut skipped = Vec::new();
    let mut excluded = Vec::new();
    let mut partial = Vec::new();
    let mut failed = Vec::new();
    let (mut passages, mut tokens, mut flagged_passages) = (0u64, 0u64, 0u64);
    let mut repaired = 0;
    let mut values = Vec::new();
    let mut decided_by: Option<String> = None;
    let mut fpr = None;
    let mut calibration_n = None;
    let mut seen_docs: HashSet<String> = HashSet::new();
    let mut top_heap: Vec<(String, usize, f64)> = Vec::new();
    for log in logs {
        let h = read_lines(log, |line| {
            match line {
                LogLine::Passage(rec) => {
                    passages += 1;
                    if let Some(why) = &rec.failed {
                        failed.push(SkippedLine {
                            source: rec.id.clone(),
                            reason: why.clone(),
                        });
                    }
                    tokens += rec.n_tokens as u64;
                    if names.is_empty() {
                        names = rec.scores.0.iter().map(|(n, _)| n.clone()).collect();
                    }
                    let doc = rec.document.clone().unwrap_or_default();
                    let acc = accs.entry(doc.clone()).or_insert_with(|| Acc {
                        sums: vec![0.0; names.len()],
                        counts: vec![0; names.len()],
                        maxes: vec![None; names.len()],
                        ..Acc::default()
                    });
                    if rec.n_scored > 0 {
                        acc.scored += 1;
                    }
                    for (i, (_, v)) in rec.scores.0.iter().enumerate().take(names.len()) {
                        if let Some(v) = v.filter(|v| v.is_finite()) {
                            acc.sums[i] += v;
                            acc.counts[i] += 1;
                            acc.maxes[i] = Some(acc.maxes[i].map_or(v, |m: f64| m.max(v)));
                        }
                    }
                    if let Some(by) = &rec.decided_by {
                        decided_by.get_or_insert_with(|| by.clone());
                        fpr = fpr.or(rec.fpr);
                        calibration_n = calibration_n.or(rec.calibration_n);
                    }
                    let by = decided_by.as_deref().unwrap_or(RANKING_SCORE);
                    if let Some(f) = rec.flagged {
                        acc.decided += 1;
                        if f {
                            acc.flagged += 1;
                            flagged_passages += 1;
                        }
                    }
                    if let Some(p) = rec.p_values.as_ref().and_then(|p| p.get(by)) {
                        acc.p.push(p);
                    }
                    if let Some(v) = rec.scores.get(by) {
                        let label = rec.extra.values().find_map(|v| v.as_bool());
                        values.push((v, label));
                        push_top(&mut top_heap, top, (doc, rec.passage.unwrap_or(0), v));
                    }
                    writeln!(w, "{}", rec.to_line()).map_err(&io)?;
                }
                LogLine::Document(d) => {
                    if !seen_docs.insert(d.id.clone()) {
                        return Err(Error::InvalidInput {
                            path: log.clone(),
                            line: None,
                            message: format!(
                                "document {} appears twice (a shard merged twice, or two documents with one id)",
                                d.id
                            ),
                        });
                    }
                    let acc = accs.remove(&d.id).unwrap_or_default();
                    if d.repaired {
                        repaired += 1;
                    }
                    if let Some(p) = &d.problem {
                        partial.push(SkippedLine {
                            source: d.source.clone(),
                            reason: p.clone(),
                        });
                    }
                    documents.push(row(d, acc, names.len()));
                }
                LogLine::Skipped(s) if s.is_exclusion() => excluded.push(s),
                LogLine::Skipped(s) => skipped.push(s),
                LogLine::Header(_) | LogLine::Commit { .. } => {}
            }
            Ok(())
        })?;
        header.get_or_insert(h);
    }
    w.flush().map_err(&io)?;
    let header = header.ok_or_else(|| Error::Internal("no scan log given".into()))?;
    // document p-values → q-values across the collection
    let tested: Vec<usize> = (0..documents.len())
        .filter(|&i| documents[i].p_value.is_some())
        .collect();
    let ps: Vec<f64> = tested
        .iter()
        .map(|&i| documents[i].p_value.unwrap_or(1.0))
        .collect();
    let qs = benjamini_hochberg(&ps);
    for (&i, q) in tested.iter().zip(qs) {
        documents[i].q_value = Some(q);
        documents[i].flagged = Some(q <= fdr);
    }
    let documents_flagged = documents.iter().filter(|d| d.flagged == Some(true)).count();
    let summary = Summary {
        miascan: env!("CARGO_PKG_VERSION").into(),
        header,
        documents: documents.len(),
        passages,
        tokens,
        skipped,
        excluded,
        partial,
        failed,
        repaired,
        scores: names,
        verdict: Verdict {
            decided_by,
            fpr,
            calibration_n,
            fdr,
            passages_flagged: flagged_passages,
            documents_tested: tested.len(),
            documents_flagged,
            collection_p_value: None,
            collection_test: None,
            control_p_value: None,
            blind_auroc: None,
            blind_bound: None,
            finding: None,
            note: None,
            sentence: String::new(),
        },
        run: Default::default(),
    };
    top_heap.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Outputs {
        summary,
        documents,
        values,
        calibration_values: Vec::new(),
        heatmaps: Vec::new(),
        top_passages: top_heap,
    })
}

/// Keeps the `n` highest values (small `n`: a sorted vector is enough).
fn push_top(top: &mut Vec<(String, usize, f64)>, n: usize, item: (String, usize, f64)) {
    if n == 0 {
        return;
    }
    if top.len() < n {
        top.push(item);
        return;
    }
    let (min_i, min_v) = top
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.2))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("non-empty");
    if item.2 > min_v {
        top[min_i] = item;
    }
}

fn row(d: DocumentLine, acc: Acc, n: usize) -> DocumentRow {
    let mean = (0..n)
        .map(|i| {
            acc.counts
                .get(i)
                .filter(|&&c| c > 0)
                .map(|&c| acc.sums[i] / c as f64)
        })
        .collect();
    let max = (0..n)
        .map(|i| acc.maxes.get(i).copied().flatten())
        .collect();
    DocumentRow {
        id: d.id,
        source: d.source,
        bytes: d.bytes,
        passages: d.passages,
        scored: acc.scored,
        label: d.label,
        problem: d.problem,
        repaired: d.repaired,
        mean,
        max,
        flagged_fraction: (acc.decided > 0).then(|| acc.flagged as f64 / acc.decided as f64),
        p_value: document_p(&acc.p),
        q_value: None,
        flagged: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_highest() {
        let mut t = Vec::new();
        for (i, v) in [3.0, 1.0, 5.0, 2.0, 4.0].iter().enumerate() {
            push_top(&mut t, 2, ("d".into(), i, *v));
        }
        let mut v: Vec<f64> = t.iter().map(|x| x.2).collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(v, [4.0, 5.0]);
    }
}
