//! `miascan score`: passages in, one JSON line (or a table row) per passage out.

use super::common::{with_details, DecisionArgs, InputArgs, ScoringArgs};
use super::output::{Output, Progress};
use miascan::report;
use miascan::scan::pipeline::score_inputs;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Text files (one passage each), JSONL files (one per line), directories (every file
    /// below, sorted), or - for stdin. Default: stdin.
    pub inputs: Vec<PathBuf>,
    /// Write JSONL here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Print a table for people instead of JSONL.
    #[arg(long)]
    pub table: bool,
    /// Add per-token arrays: token_ids, tokens, token_logprobs, token_mu, token_sigma,
    /// token_top1, token_ranks.
    #[arg(long)]
    pub token_logprobs: bool,
    #[command(flatten)]
    pub decision: DecisionArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let inputs = args.input.inputs_or_stdin(&args.inputs)?;
    let read = args.input.options(None);
    let models = args.scoring.load()?;
    let scorer = if args.token_logprobs {
        models.scorer_with(with_details(&models.options))?
    } else {
        models.scorer()?
    };
    let decision = args
        .decision
        .load(&models, &args.input, None)?
        .map(|d| d.decision);

    let mut out = Output::open(args.out.as_deref())?;
    let progress = Progress::new(None, "passages");
    let mut rows = Vec::new();
    let mut n = 0usize;
    score_inputs(&scorer, &inputs, &read, |mut rec| {
        n += 1;
        progress.tick(n);
        if args.table {
            rows.push(rec);
            return Ok(());
        }
        if let Some(d) = &decision {
            d.annotate(&mut rec);
        }
        out.line(&rec.to_line())
    })?;
    progress.done(n);
    if n == 0 {
        let names: Vec<_> = inputs.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!(miascan::Error::EmptyInput(format!(
            "{} held no passage",
            names.join(", ")
        )));
    }
    if args.table {
        let p_values: Vec<Option<f64>> = match &decision {
            Some(d) => rows.iter().map(|r| d.p_value(&r.scores)).collect(),
            None => Vec::new(),
        };
        let shown = decision.as_ref().map(|d| report::TableDecision {
            by: &d.by,
            fpr: d.fpr,
            p_values: &p_values,
        });
        out.text(&report::table(&rows, shown.as_ref()))?;
    }
    out.finish()
}
