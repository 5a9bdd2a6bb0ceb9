//! A finished scan's (or merge's) files in its folder: heat maps, documents, the report, and
//! last the summary (its presence marks the scan finished).

use super::finish::{self, Outputs};
use super::report;
use crate::error::{Error, Result};
use crate::record::PassageRecord;
use std::path::{Path, PathBuf};

/// Writes heat maps, documents, report and (last: it marks the scan finished) summary.
pub fn write_outputs(out: &Path, o: &Outputs) -> Result<()> {
    let heat: String = o.heatmaps.iter().map(|r| r.to_line() + "\n").collect();
    finish::write_file(&out.join("heatmaps.jsonl"), &heat)?;
    finish::write_documents(out, o)?;
    finish::write_file(&out.join("report.html"), &report::report(o))?;
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
