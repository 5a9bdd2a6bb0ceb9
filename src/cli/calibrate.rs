//! `miascan calibrate`: store each score's distribution on known non-members.

use super::common::{InputArgs, ScoringArgs};
use miascan::calibrate::{Calibration, Settings};
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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let passages = args.input.read(&args.nonmembers, None)?;
    let models = args.scoring.load()?;
    let opts = args.scoring.options(false);
    let results = models.score_collect(&passages, opts.clone())?;
    let settings = Settings::new(
        &models.target.identity,
        models.reference.as_ref().map(|r| &r.identity),
        &opts,
    );
    let c = Calibration::from_results(settings, &results);
    c.save(&args.out)?;
    eprintln!(
        "calibrated {} scores on {} non-members → {}",
        c.scores.len(),
        c.n,
        args.out.display()
    );
    Ok(())
}
