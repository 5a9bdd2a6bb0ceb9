//! The log(s) of a scan → its outputs: `passages.jsonl`, `documents.csv`, `summary.json`
//! and `report.html`. Everything here is recomputed from the logs alone, so a resumed scan
//! and shards joined by `merge` give the same files as one uninterrupted run.

use super::log::{read_lines, DocumentLine, LogLine, RunHeader, SkippedLine};
use super::verdict::{benjamini_hochberg, document_p};
use crate::error::{Error, Result};
use crate::eval::dataset::welch_greater;
use crate::record::PassageRecord;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// False discovery rate at which documents are flagged (Benjamini–Hochberg).
pub const DEFAULT_FDR: f64 = 0.05;

/// One document's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRow {
    pub id: String,
    pub source: String,
    pub bytes: u64,
    pub passages: usize,
    /// Passages with numbers (the others were too short).
    pub scored: usize,
    pub label: Option<bool>,
    pub problem: Option<String>,
    pub repaired: bool,
    /// Mean and max of each score over the scored passages, in `Outputs::scores` order.
    pub mean: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
    /// With a calibration: fraction of passages flagged, the document p-value, its
    /// Benjamini–Hochberg q-value and whether it is flagged at the FDR.
    pub flagged_fraction: Option<f64>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    pub flagged: Option<bool>,
}

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

/// The counts, verdict and listing of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub miascan: String,
    pub header: RunHeader,
    pub documents: usize,
    pub passages: u64,
    pub tokens: u64,
    /// Files or rows not read for a problem of theirs (binary, invalid UTF-8, malformed…).
    pub skipped: Vec<SkippedLine>,
    /// Files and folders left out by an ignore file (`--no-ignore` reads them): listed, and
    /// not a problem (the scan's exit code does not count them).
    pub excluded: Vec<SkippedLine>,
    /// Documents cut short by an error (their text before it was scored).
    pub partial: Vec<SkippedLine>,
    /// Passages that could not be scored (a model server that kept failing): the passage
    /// id and the error. `--resume` scores them again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<SkippedLine>,
    /// Documents whose invalid UTF-8 was replaced.
    pub repaired: usize,
    pub scores: Vec<String>,
    pub verdict: Verdict,
    /// How the results were produced (filled by the scan or the merge).
    pub run: RunInfo,
}

/// `summary.json`'s `run`: how the results were produced. A scan and a merge write the same
/// keys (a merge sums its shards' figures and names them; a scan's lists are empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// Wall-clock seconds of scoring (summed over a merge's shards).
    pub seconds: f64,
    pub passages_scored: u64,
    pub tokens_scored: u64,
    pub tokens_per_second: f64,
    /// Seconds the reader thread spent reading, decoding, cutting and tokenising (busy) and
    /// waiting for the model: a reader busy for most of `seconds` was the bottleneck.
    pub reader_busy_seconds: f64,
    pub reader_waiting_seconds: f64,
    /// Items of the log a resumed scan found already done (0 for a fresh scan or a merge).
    pub resumed_after_items: u64,
    pub files_opened: u64,
    /// Hidden files and folders left out (`--hidden` reads them).
    pub hidden_left_out: u64,
    /// Files `--type`/`--type-not` left out.
    pub type_left_out: u64,
    /// Files and folders `--glob` left out.
    pub glob_left_out: u64,
    /// The calibration's values of the deciding score (for the report's histogram).
    pub calibration_values: Vec<f64>,
    /// The blind baseline's AUROC (scanned passages vs the known non-members'), where it ran;
    /// a merge keeps the largest of its shards'.
    #[serde(default)]
    pub blind_auroc: Option<f64>,
    /// The shard folders a merge read (empty for a scan).
    pub merged_from: Vec<String>,
    /// Shards a merge went without (`--allow-missing`), as `I/N`.
    pub missing_shards: Vec<String>,
}

impl RunInfo {
    /// `tokens_scored / seconds` (0 without time).
    pub fn rate(tokens: u64, seconds: f64) -> f64 {
        if seconds > 0.0 {
            tokens as f64 / seconds
        } else {
            0.0
        }
    }
}

/// The collection's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub decided_by: Option<String>,
    pub fpr: Option<f64>,
    pub calibration_n: Option<usize>,
    pub fdr: f64,
    pub passages_flagged: u64,
    pub documents_tested: usize,
    pub documents_flagged: usize,
    pub collection_p_value: Option<f64>,
    /// How the collection p-value was computed: documents (mean of the deciding score over
    /// their passages) against the calibration's non-member passages, one-sided Welch t.
    pub collection_test: Option<CollectionTest>,
    /// The negative control: the collection test of one random half of the calibration's
    /// non-member passages (as pseudo-documents of the collection's mean size) against the
    /// other half, over several halvings; the verdict is stated only if it does not reject.
    pub control_p_value: Option<f64>,
    /// The blind baseline's AUROC between a sample of the scanned passages and the known
    /// non-members' (a classifier that never sees the model): only where the non-members'
    /// texts are at hand (`--nonmembers`; a calibration file holds scores only).
    pub blind_auroc: Option<f64>,
    /// What may be said: a statistical signal, none, or inconclusive (with why).
    pub finding: Option<crate::eval::control::Finding>,
    /// A caveat for the reader (e.g. a calibration too small to flag documents one by one).
    pub note: Option<String>,
    /// The verdict in one sentence for a reader who was not there.
    pub sentence: String,
}

/// The collection-level test.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionTest {
    pub method: String,
    pub documents: usize,
    pub calibration_passages: usize,
    pub mean_documents: f64,
    pub mean_calibration: f64,
    pub t: f64,
    pub df: f64,
}

/// The score that ranks passages without a calibration.
pub const RANKING_SCORE: &str = "neg_loss";

impl Verdict {
    /// The score the verdict is about: the deciding score, else [`RANKING_SCORE`].
    pub fn score(&self) -> &str {
        self.decided_by.as_deref().unwrap_or(RANKING_SCORE)
    }
}

/// Orders passage records by `score`, highest first (missing values last).
pub fn best_first(records: &mut [PassageRecord], score: &str) {
    let v = |r: &PassageRecord| r.scores.get(score).unwrap_or(f64::NEG_INFINITY);
    records.sort_by(|a, b| v(b).total_cmp(&v(a)));
}

/// Everything the outputs are made of.
pub struct Outputs {
    pub summary: Summary,
    pub documents: Vec<DocumentRow>,
    /// Deciding score (or `neg_loss` without calibration) of every scored passage, with its
    /// label when known.
    pub values: Vec<(f64, Option<bool>)>,
    /// The calibration's non-member values of that score (for the histogram).
    pub calibration_values: Vec<f64>,
    /// Passages with per-token details, for the heat maps.
    pub heatmaps: Vec<PassageRecord>,
    /// The top passages by the deciding score: (document, index), best first.
    pub top_passages: Vec<(String, usize, f64)>,
}

/// Reads the logs (one, or one per shard), writes `passages.jsonl` into `out` and returns
/// the figures. `top` passages are remembered for heat maps.
pub fn collect(logs: &[PathBuf], out: &Path, fdr: f64, top: usize) -> Result<Outputs> {
    let out_path = out.join("passages.jsonl");
    let io = |source| Error::OutputIo {
        path: out_path.clone(),
        source,
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out_path).map_err(io)?);
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
                    writeln!(w, "{}", rec.to_line()).map_err(io)?;
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
    w.flush().map_err(io)?;
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

/// Completes the verdict once the calibration's values of the deciding score are known
/// (`o.calibration_values`): the collection test and the sentence.
///
/// **Collection test.** Documents are the independent units: each document's mean of the
/// deciding score over its passages is compared with the calibration's non-member passages
/// by a one-sided Welch t-test (H1: the documents score higher on average) — the test of
/// the dataset-inference literature (Maini et al. 2024) with documents as units and one
/// score. Passages of one document are not independent, documents are; under the null
/// (no document was trained on, passages exchangeable with the calibration's) a document's
/// mean has the calibration's mean, and Welch allows the variances to differ (a mean of m
/// passages varies less than one passage). The calibration's passages are treated as
/// independent: cut from long documents, they are not quite, which the test's false-positive
/// check in `tests/scan_fpr.rs` measures.
pub fn conclude(o: &mut Outputs) {
    let s = &mut o.summary;
    let v = &mut s.verdict;
    if let (Some(by), false) = (&v.decided_by, o.calibration_values.is_empty()) {
        if let Some(i) = s.scores.iter().position(|n| n == by) {
            let means: Vec<f64> = o
                .documents
                .iter()
                .filter_map(|d| d.mean.get(i).copied().flatten())
                .collect();
            let scored: usize = o
                .documents
                .iter()
                .filter(|d| d.mean.get(i).copied().flatten().is_some())
                .map(|d| d.scored)
                .sum();
            let per_document = (scored as f64 / means.len().max(1) as f64).round() as usize;
            v.control_p_value = collection_control(&o.calibration_values, per_document, 0);
            if let Some((t, df, p)) = welch_greater(&means, &o.calibration_values) {
                let avg = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
                v.collection_p_value = Some(p);
                v.collection_test = Some(CollectionTest {
                    method: "one-sided Welch t-test: document means of the deciding score vs the calibration's non-member passages".into(),
                    documents: means.len(),
                    calibration_passages: o.calibration_values.len(),
                    mean_documents: avg(&means),
                    mean_calibration: avg(&o.calibration_values),
                    t,
                    df,
                });
            }
        }
        // BH flags a lone document only if its p-value can reach fdr / N
        let n_cal = v.calibration_n.unwrap_or(0);
        let need = (v.documents_tested as f64 / v.fdr).ceil() as usize;
        if v.documents_tested > 1 && n_cal + 1 < need {
            v.note = Some(format!(
                "With {n_cal} calibration passages no p-value is below 1/{}, so among {} documents one can be flagged on its own only with at least {} calibration passages: documents are flagged here only when many of them score high together. Calibrate on more non-members for document-level findings.",
                n_cal + 1,
                v.documents_tested,
                need - 1
            ));
        }
    }
    let guarded = v
        .collection_p_value
        .map(|p| Guarded::judge(p, COLLECTION_ALPHA, v.control_p_value, v.blind_auroc));
    v.finding = guarded.as_ref().map(|g| g.finding);
    v.sentence = sentence(
        &s.header,
        v.decided_by.as_deref(),
        s.documents,
        v.documents_tested,
        v.documents_flagged,
        guarded.as_ref(),
        v.fdr,
    );
    if let Some(fpr) = v.fpr {
        let stated = matches!(v.finding, Some(Finding::Signal | Finding::NoSignal));
        v.sentence.push_str(&if stated {
            format!(
                " {} of {} passages are flagged on their own (p-value at most {fpr}).",
                v.passages_flagged, s.passages
            )
        } else {
            format!(
                " {} of {} passages reach the passage threshold (p-value at most {fpr}), which for the same reason is no finding.",
                v.passages_flagged, s.passages
            )
        });
    }
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

/// Level of the collection test and its negative control.
pub const COLLECTION_ALPHA: f64 = 0.01;

/// The collection test's negative control: the calibration's non-member passages split into
/// two random halves (seeded: a rerun gives the same answer; the scan uses seed 0); one
/// half grouped into
/// pseudo-documents of `per_document` passages (the collection's mean; single passages when
/// that leaves fewer than two), their means tested against the other half's passages by
/// the same one-sided Welch test. `None` with fewer than 8 calibration passages.
pub fn collection_control(calibration: &[f64], per_document: usize, seed: u64) -> Option<f64> {
    if calibration.len() < 8 {
        return None;
    }
    let (a, b) = crate::eval::control::halves(calibration.len(), seed);
    let m = if a.len() / per_document.max(1) >= 2 {
        per_document.max(1)
    } else {
        1
    };
    let means: Vec<f64> = a
        .chunks_exact(m)
        .map(|c| c.iter().map(|&k| calibration[k]).sum::<f64>() / m as f64)
        .collect();
    let rest: Vec<f64> = b.iter().map(|&k| calibration[k]).collect();
    welch_greater(&means, &rest).map(|r| r.2)
}

fn sentence(
    header: &RunHeader,
    by: Option<&str>,
    documents: usize,
    tested: usize,
    flagged: usize,
    guarded: Option<&Guarded>,
    fdr: f64,
) -> String {
    let model = &header.model.name;
    match (by, guarded) {
        (Some(by), Some(g)) => {
            let verdict = g.sentence("the collection", "text known not to be in the training data");
            let flags = match g.finding {
                Finding::Signal | Finding::NoSignal => format!(
                    "{flagged} of {tested} documents are flagged as likely training data at a {:.0}% false discovery rate.",
                    fdr * 100.0
                ),
                _ => format!(
                    "{flagged} of {tested} documents reach the flagging threshold ({:.0}% false discovery rate), but with the check failing they are not findings.",
                    fdr * 100.0
                ),
            };
            format!("{verdict} (Decided by {by} on {model}.) {flags}")
        }
        _ => format!(
            "{documents} documents were scored with {model}. Without a calibration on known non-members there is no verdict: the scores rank documents, but say nothing about how unusual a score is (scan with --nonmembers FILES, text known not to be training data, or with --calibration from `miascan calibrate`)."
        ),
    }
}

pub use crate::eval::control::fmt_p;
use crate::eval::control::{Finding, Guarded};

/// Writes `documents.csv`.
pub fn write_documents(out: &Path, o: &Outputs) -> Result<()> {
    let path = out.join("documents.csv");
    let err = |e: csv::Error| Error::OutputIo {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut w = csv::Writer::from_path(&path).map_err(err)?;
    let mut head: Vec<String> = [
        "id",
        "source",
        "bytes",
        "passages",
        "scored",
        "label",
        "p_value",
        "q_value",
        "flagged",
        "flagged_fraction",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in &o.summary.scores {
        head.push(format!("mean_{n}"));
        head.push(format!("max_{n}"));
    }
    head.push("problem".into());
    w.write_record(&head).map_err(err)?;
    let f = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    for d in &o.documents {
        let mut r = vec![
            d.id.clone(),
            d.source.clone(),
            d.bytes.to_string(),
            d.passages.to_string(),
            d.scored.to_string(),
            d.label.map(|l| l.to_string()).unwrap_or_default(),
            f(d.p_value),
            f(d.q_value),
            d.flagged.map(|l| l.to_string()).unwrap_or_default(),
            f(d.flagged_fraction),
        ];
        for i in 0..o.summary.scores.len() {
            r.push(f(d.mean.get(i).copied().flatten()));
            r.push(f(d.max.get(i).copied().flatten()));
        }
        r.push(d.problem.clone().unwrap_or_default());
        w.write_record(&r).map_err(err)?;
    }
    w.flush().map_err(|source| Error::OutputIo {
        path: path.clone(),
        source,
    })
}

/// Writes a file whole (through a temporary name, so a reader never sees half of it).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::OutputIo {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
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

    #[test]
    fn p_values_print_for_people() {
        assert_eq!(fmt_p(0.0312), "0.031");
        assert_eq!(fmt_p(5.2e-54), "5.20e-54");
    }
}
