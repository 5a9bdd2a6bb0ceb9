//! `miascan calibrate`: store each score's distribution on known non-members.

use super::common::{calibrate, InputArgs, ScoringArgs};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Passages known not to be in the training data, from the same distribution as the
    /// passages to be tested.
    #[arg(long, required = true, num_args = 1..)]
    pub nonmembers: Vec<PathBuf>,
    /// Where to write the calibration (JSON).
    #[arg(long, short = 'o', required = true)]
    pub out: PathBuf,
    /// Cut the non-member documents into passages of this many tokens, as `scan
    /// --passage-tokens` does, so that the calibration's passages are alike to a scan's.
    #[arg(long)]
    pub passage_tokens: Option<usize>,
    /// The score that decides when a run using this calibration names none (default: `ref`
    /// with a same-vocabulary reference, `ref_bpb` with another, else Min-K%++ at the first
    /// k; the first computed score when those are not selected). Stored in the file.
    #[arg(long)]
    pub decide_by: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let models = args.scoring.load()?;
    let c = calibrate(
        &models,
        &args.input,
        &args.nonmembers,
        args.passage_tokens,
        args.decide_by,
    )?;
    c.save(&args.out)?;
    eprintln!(
        "calibrated {} scores on {} non-members → {} (deciding score: {})",
        c.scores.len(),
        c.n,
        args.out.display(),
        c.default_score()
    );
    Ok(())
}
