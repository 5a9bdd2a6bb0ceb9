//! A finished scan's (or merge's) files in its folder: heat maps, documents, the report, and
//! last the summary (its presence marks the scan finished); and how the results were
//! produced, typed the same for a scan and a merge.

use super::finish::{self, Outputs};
use crate::error::{Error, Result};
use crate::report::PassageRecord;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// Items of the log a resumed scan found already done (0 for a fresh scan or a merge).
    pub resumed_after_items: u64,
    pub files_opened: u64,
    /// Hidden files and folders left out (`--hidden` reads them).
    pub hidden_left_out: u64,
    /// The calibration's values of the deciding score (for the report's histogram).
    pub calibration_values: Vec<f64>,
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

/// Writes heat maps, documents, report and (last: it marks the scan finished) summary.
pub fn write_outputs(out: &Path, o: &Outputs) -> Result<()> {
    let heat: String = o.heatmaps.iter().map(|r| r.to_line() + "\n").collect();
    finish::write_file(&out.join("heatmaps.jsonl"), &heat)?;
    finish::write_documents(out, o)?;
    finish::write_file(&out.join("report.html"), &crate::report::html::report(o))?;
    let summary = serde_json::to_string_pretty(&o.summary)
        .map_err(|e| Error::Internal(format!("the summary does not serialise: {e}")))?;
    finish::write_file(&out.join("summary.json"), &(summary + "\n"))
}

/// Heat-map records of several finished scans, best first by `by`, at most `n`.
pub fn merged_heatmaps(dirs: &[PathBuf], by: &str, n: usize) -> Result<Vec<PassageRecord>> {
    let mut all = Vec::new();
    for d in dirs {
        let p = d.join("heatmaps.jsonl");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            all.push(serde_json::from_str::<PassageRecord>(line).map_err(|e| {
                Error::InvalidInput {
                    path: p.clone(),
                    line: Some(i + 1),
                    message: format!("not a passage record: {e}"),
                }
            })?);
        }
    }
    finish::best_first(&mut all, by);
    all.truncate(n);
    Ok(all)
}
