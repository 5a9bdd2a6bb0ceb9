//! `miascan merge`: joins the result directories of `scan --shard I/N` runs into one, as if
//! the collection had been scanned by one process: headers must agree (models, settings,
//! calibration), every shard must be there once and finished, and the document and
//! collection figures are recomputed from all the logs.

use super::scan::{closing, merged_heatmaps, write_outputs};
use miascan::scan::finish;
use miascan::scan::log::{self, read_committed};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shards' result directories (`scan --out`).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Directory for the merged results.
    #[arg(long, short = 'o', required = true)]
    pub out: PathBuf,
    /// False discovery rate at which documents are flagged.
    #[arg(long, default_value_t = finish::DEFAULT_FDR)]
    pub fdr: f64,
    /// Passages shown token by token in the report.
    #[arg(long, default_value_t = 10)]
    pub heatmaps: usize,
    /// Merge even if some shards are missing (the report says which).
    #[arg(long)]
    pub allow_missing: bool,
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn usage(msg: String) -> anyhow::Error {
    miascan::Error::Usage(msg).into()
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mut headers = Vec::new();
    let mut runs = Vec::new();
    for d in &args.dirs {
        let c = read_committed(&log::path(d))?;
        let summary = std::fs::read_to_string(d.join("summary.json")).map_err(|_| {
            usage(format!(
                "{} holds no finished scan (no summary.json): finish it with `miascan scan --resume`",
                d.display()
            ))
        })?;
        let s: serde_json::Value = serde_json::from_str(&summary)?;
        runs.push(s["run"].clone());
        headers.push(c.header);
    }
    let first = &headers[0];
    for (h, d) in headers.iter().zip(&args.dirs).skip(1) {
        let diffs = first.differences(h, true);
        if !diffs.is_empty() {
            return Err(usage(format!(
                "{} was scanned differently from {}: {}",
                d.display(),
                args.dirs[0].display(),
                diffs.join("; ")
            )));
        }
    }
    let n = first.shard.map_or(1, |s| s[1]);
    let mut seen: Vec<Vec<&PathBuf>> = vec![Vec::new(); n as usize];
    for (h, d) in headers.iter().zip(&args.dirs) {
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
        return Err(usage(dup.join("; ")));
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_empty())
        .map(|(i, _)| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() && !args.allow_missing {
        return Err(usage(format!(
            "missing shard(s) {}: scan them, or merge with --allow-missing",
            missing.join(", ")
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|source| miascan::Error::OutputIo {
        path: args.out.clone(),
        source,
    })?;
    let logs: Vec<PathBuf> = args.dirs.iter().map(|d| log::path(d)).collect();
    let mut o = finish::collect(&logs, &args.out, args.fdr, 0)?;
    o.summary.header.shard = None;
    let by = o.summary.verdict.score().to_string();
    o.heatmaps = merged_heatmaps(&args.dirs, &by, args.heatmaps)?;
    o.calibration_values = runs
        .first()
        .and_then(|r| serde_json::from_value(r["calibration_values"].clone()).ok())
        .unwrap_or_default();
    finish::conclude(&mut o);
    let sum = |k: &str| runs.iter().filter_map(|r| r[k].as_f64()).sum::<f64>();
    o.summary.run = serde_json::json!({
        "merged_from": args.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "missing_shards": missing,
        "seconds": sum("seconds"),
        "tokens_scored": sum("tokens_scored"),
        "hidden_left_out": sum("hidden_left_out"),
        "calibration_values": o.calibration_values,
    });
    // the merged log header, for a later merge or resume of the merged directory
    write_outputs(&args.out, &o)?;
    Ok(closing(&args.out, &o, args.quiet))
}
