//! A finished scan's (or merge's) files in its folder: heat maps, documents, the report, and
//! last the summary (its presence marks the scan finished).

use super::finish;
use super::report;
use super::summary::Outputs;
use crate::error::{Error, Result};
use crate::record::PassageRecord;
use std::path::{Path, PathBuf};

/// Writes heat maps, documents, report and (last: it marks the scan finished) summary.
pub fn write_outputs(out: &Path, o: &Outputs) -> Result<()> {
    let heat: String = o.heatmaps.iter().map(|r| r.to_line() + "\n").collect();
    write_file(&out.join("heatmaps.jsonl"), &heat)?;
    write_documents(out, o)?;
    write_file(&out.join("report.html"), &report::report(o))?;
    let summary = serde_json::to_string_pretty(&o.summary)
        .map_err(|e| Error::Internal(format!("the summary does not serialise: {e}")))?;
    write_file(&out.join("summary.json"), &(summary + "\n"))
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
    w.flush().map_err(Error::output(&path))
}

/// Writes a file whole (through a temporary name, so a reader never sees half of it).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = Error::output(path);
    std::fs::write(&tmp, text).map_err(&io)?;
    std::fs::rename(&tmp, path).map_err(&io)
}
