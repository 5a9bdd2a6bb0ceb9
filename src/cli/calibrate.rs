//! `miascan calibrate`: store each score's distribution on known non-members.

use super::common::{InputArgs, ScoringArgs};
use miascan::calibrate::{Calibration, Settings};
use miascan::chunk::{cut_passages, ChunkOptions};
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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let passages = args.input.read(&args.nonmembers, None)?;
    let models = args.scoring.load()?;
    let opts = args.scoring.options(false);
    let passages = match args.passage_tokens {
        Some(n) if n < 2 => anyhow::bail!(miascan::Error::Usage(
            "--passage-tokens must be at least 2".into()
        )),
        Some(n) => cut_passages(
            &models.target.tokenizer,
            passages,
            ChunkOptions {
                passage_tokens: n,
                overlap: 0,
            },
        )?,
        None => passages,
    };
    let results = models.score_collect(&passages, opts.clone())?;
    let mut settings = Settings::new(
        &models.target.identity,
        models.reference.as_ref().map(|r| &r.identity),
        &opts,
    );
    settings.passage_tokens = args.passage_tokens;
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
