//! `merge`: the shards of one scan into one result. Every shard must have been scanned with
//! the same models and settings (their run headers agree but for the shard), each shard given
//! once, none missing (unless allowed); the document and collection figures are then
//! recomputed from the shards' logs, as one scan would have computed them.

use super::finish;
use super::log::{self, read_committed};
use super::outputs::{merged_heatmaps, write_outputs};
use super::summary::{Outputs, RunInfo};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// How shards are merged.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// False-discovery rate for the documents.
    pub fdr: f64,
    /// Heat maps kept for the report.
    pub heatmaps: usize,
    /// Merge even if shards are missing (named in the summary).
    pub allow_missing: bool,
}

/// Checks the shard folders `dirs`, merges them into the outputs of `out` and writes them
/// (as [`super::conduct::conduct`] finishes a scan's folder).
pub fn merge(dirs: &[PathBuf], out: &Path, opts: &MergeOptions) -> Result<Outputs> {
    let Some(first_dir) = dirs.first() else {
        return Err(Error::Usage("no scan folder to merge".into()));
    };
    let mut headers = Vec::new();
    let mut runs: Vec<RunInfo> = Vec::new();
    for d in dirs {
        let c = read_committed(&log::path(d))?;
        let path = d.join("summary.json");
        let summary = std::fs::read_to_string(&path).map_err(|_| {
            Error::Usage(format!(
                "{} holds no finished scan (no summary.json): finish it with `miascan scan --resume`",
                d.display()
            ))
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&summary).map_err(|e| Error::InvalidInput {
                path: path.clone(),
                line: None,
                message: format!("not a summary: {e}"),
            })?;
        runs.push(
            serde_json::from_value(v["run"].clone()).map_err(|e| Error::InvalidInput {
                path: path.clone(),
                line: None,
                message: format!("its \"run\" is not a scan's: {e}"),
            })?,
        );
        headers.push(c.header);
    }
    let first = &headers[0];
    for (h, d) in headers.iter().zip(dirs).skip(1) {
        let diffs = first.differences(h, true);
        if !diffs.is_empty() {
            return Err(Error::Usage(format!(
                "{} was scanned differently from {}: {}",
                d.display(),
                first_dir.display(),
                diffs.join("; ")
            )));
        }
    }
    let n = first.shard.map_or(1, |s| s[1]);
    let mut seen: Vec<Vec<&PathBuf>> = vec![Vec::new(); n as usize];
    for (h, d) in headers.iter().zip(dirs) {
        let i = h.shard.map_or(0, |s| s[0]);
        seen[i as usize].push(d);
    }
    let dup: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, v)| v.len() > 1)
        .map(|(i, v)| {
            format!(
                "shard {i}/{n} given {} times ({})",
                v.len(),
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !dup.is_empty() {
        return Err(Error::Usage(dup.join("; ")));
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_empty())
        .map(|(i, _)| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() && !opts.allow_missing {
        return Err(Error::Usage(format!(
            "missing shard(s) {}: scan them, or merge with --allow-missing",
            missing.join(", ")
        )));
    }
    std::fs::create_dir_all(out).map_err(Error::output(out))?;
    let logs: Vec<PathBuf> = dirs.iter().map(|d| log::path(d)).collect();
    let mut o = finish::collect(&logs, out, opts.fdr, 0)?;
    o.summary.header.shard = None;
    let by = o.summary.verdict.score().to_string();
    o.heatmaps = merged_heatmaps(dirs, &by, opts.heatmaps)?;
    o.calibration_values = runs
        .first()
        .map(|r| r.calibration_values.clone())
        .unwrap_or_default();
    // each shard compared its own passages with the non-members: the most separable (the
    // largest margin over its bound) decides
    let most = runs
        .iter()
        .filter_map(|r| {
            Some((
                r.blind_auroc?,
                r.blind_bound.unwrap_or(crate::eval::baseline::WARN_AUROC),
            ))
        })
        .max_by(|a, b| (a.0 - a.1).total_cmp(&(b.0 - b.1)));
    o.summary.verdict.blind_auroc = most.map(|m| m.0);
    o.summary.verdict.blind_bound = most.map(|m| m.1);
    super::verdict::conclude(&mut o);
    let seconds = runs.iter().map(|r| r.seconds).sum();
    let tokens = runs.iter().map(|r| r.tokens_scored).sum();
    o.summary.run = RunInfo {
        seconds,
        passages_scored: runs.iter().map(|r| r.passages_scored).sum(),
        tokens_scored: tokens,
        tokens_per_second: RunInfo::rate(tokens, seconds),
        reader_busy_seconds: runs.iter().map(|r| r.reader_busy_seconds).sum(),
        reader_waiting_seconds: runs.iter().map(|r| r.reader_waiting_seconds).sum(),
        resumed_after_items: 0,
        files_opened: runs.iter().map(|r| r.files_opened).sum(),
        // every shard walks the whole tree: each counted what the walk left out
        hidden_left_out: runs.first().map_or(0, |r| r.hidden_left_out),
        type_left_out: runs.first().map_or(0, |r| r.type_left_out),
        glob_left_out: runs.first().map_or(0, |r| r.glob_left_out),
        calibration_values: o.calibration_values.clone(),
        blind_auroc: o.summary.verdict.blind_auroc,
        blind_bound: o.summary.verdict.blind_bound,
        merged_from: dirs.iter().map(|d| d.display().to_string()).collect(),
        missing_shards: missing,
    };
    write_outputs(out, &o)?;
    Ok(o)
}
