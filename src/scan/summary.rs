//! A scan's output schema: the figures `summary.json`, `documents.csv`, `heatmaps.jsonl` and
//! the report are made of. [`super::finish`] fills them from the logs, [`super::verdict`]
//! concludes, [`super::outputs`] writes them.

use super::log::{RunHeader, SkippedLine};
use crate::record::PassageRecord;
use serde::{Deserialize, Serialize};

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
    /// The AUROC it is judged against (0.6, or higher on small sets: what chance reaches).
    #[serde(default)]
    pub blind_bound: Option<f64>,
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
    /// texts are at hand (the calibration's sample of them; calibrations of earlier versions
    /// hold none).
    pub blind_auroc: Option<f64>,
    /// The AUROC at or above which the sets count as different (0.6, or on small sets what
    /// chance reaches 5% of the time).
    pub blind_bound: Option<f64>,
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
