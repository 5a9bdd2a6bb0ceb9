//! `miascan merge`: joins the result directories of `scan --shard I/N` runs into one, as if
//! the collection had been scanned by one process: headers must agree (models, settings,
//! calibration), every shard must be there once and finished, and the document and
//! collection figures are recomputed from all the logs.

use super::scan::closing;
use miascan::scan::{merge, summary};
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
    #[arg(long, default_value_t = summary::DEFAULT_FDR)]
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

pub fn run(args: Args) -> anyhow::Result<i32> {
    let opts = merge::MergeOptions {
        fdr: args.fdr,
        heatmaps: args.heatmaps,
        allow_missing: args.allow_missing,
    };
    let o = merge::merge(&args.dirs, &args.out, &opts)?;
    Ok(closing(&args.out, &o, args.quiet))
}
