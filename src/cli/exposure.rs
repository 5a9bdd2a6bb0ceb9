//! `miascan exposure`: how exposed is one secret? Its rank among random fills of its
//! template (Carlini et al. 2019), one JSON line per secret.

use super::common::{score_collect, ScoringArgs};
use super::output::Output;
use miascan::exposure::{fills, measure, Template};
use miascan::input::Passage;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// The secrets' template: text with slots {digits:N}, {letters:N} (lowercase a-z) and
    /// {words:FILE} (one word per line); {{ and }} are literal braces. Example:
    /// "my account number is {digits:9}".
    #[arg(long, required = true)]
    pub template: String,
    /// Secrets to test, each a fill of the template (repeat the flag).
    #[arg(long = "secret", required = true, num_args = 1..)]
    pub secrets: Vec<String>,
    /// Random fills to rank each secret among; all fills when the template has no more.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Seed of the random fills.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write JSONL here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let template = Template::parse(&args.template)?;
    if args.samples == 0 {
        anyhow::bail!(miascan::Error::Usage("--samples must be at least 1".into()));
    }
    for s in &args.secrets {
        if !template.matches(s) {
            anyhow::bail!(miascan::Error::Usage(format!(
                "--secret {s:?} is not a fill of the template {:?}",
                template.source()
            )));
        }
    }
    let models = args.scoring.load()?;
    let mut opts = models.options.clone();
    opts.lowercase = false;
    opts.scores = Some(vec!["neg_loss".into()]);
    let fills = fills(&template, args.samples, args.seed);
    let passage = |kind: &str, i: usize, text: &str| Passage {
        id: format!("{kind}{i}"),
        source: kind.to_string(),
        text: text.to_string(),
        label: None,
    };
    let passages: Vec<Passage> = args
        .secrets
        .iter()
        .enumerate()
        .map(|(i, s)| passage("secret", i, s))
        .chain(
            fills
                .texts
                .iter()
                .enumerate()
                .map(|(i, f)| passage("fill", i, f)),
        )
        .collect();
    let results = score_collect(&models, &passages, opts)?;
    // the total log-likelihood of each text: its mean loss times its scored tokens
    let total: Vec<f64> = results
        .iter()
        .map(|r| r.stats.loss.map_or(0.0, |l| -l * r.n_scored as f64))
        .collect();
    let (secret_lp, fill_lp) = total.split_at(args.secrets.len());
    let mut out = Output::open(args.out.as_deref())?;
    for (s, &lp) in args.secrets.iter().zip(secret_lp) {
        let e = measure(&template, &fills, (s, lp), fill_lp);
        out.line(&serde_json::to_string(&e)?)?;
    }
    out.finish()
}
