//! `miascan calibrate`: store each score's distribution on known non-members.

use super::common::{InputArgs, Models, ScoringArgs};
use miascan::calibrate::{Calibration, Settings};
use miascan::chunk::{cut_passages, ChunkOptions};
use miascan::scorer::ScoreOptions;
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
    let opts = args.scoring.options(false);
    let c = calibrate(
        &models,
        &opts,
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

/// The calibration on `nonmembers` (cut into passages of `passage_tokens` when given),
/// deciding by `decide_by` when given: `calibrate`'s work, also done by `scan --nonmembers`.
pub fn calibrate(
    models: &Models,
    opts: &ScoreOptions,
    input: &InputArgs,
    nonmembers: &[PathBuf],
    passage_tokens: Option<usize>,
    decide_by: Option<String>,
) -> anyhow::Result<Calibration> {
    let passages = input.read(nonmembers, None)?;
    let passages = match passage_tokens {
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
        opts,
    );
    settings.passage_tokens = passage_tokens;
    let mut c = Calibration::from_results(settings, &results);
    if let Some(by) = decide_by {
        if !c.scores.contains_key(&by) {
            let known: Vec<&str> = c.scores.keys().map(String::as_str).collect();
            anyhow::bail!(miascan::Error::Usage(format!(
                "--decide-by {by}: not among the calibrated scores ({})",
                known.join(", ")
            )));
        }
        c.decide_by = Some(by);
    }
    Ok(c)
}
