//! `miascan dataset-test`: is a suspect collection, as a whole, scored higher than a
//! validation collection known not to be in the training data? (Maini et al. 2024)

use super::common::{score_collect, InputArgs, ScoringArgs};
use super::output::Output;
use miascan::eval::baseline::blind;
use miascan::eval::control::Guarded;
use miascan::eval::dataset::{control, dataset_test, score_matrix};
use miascan::eval::plot;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// The suspect passages (files or directories).
    #[arg(long, required = true, num_args = 1..)]
    pub suspect: Vec<PathBuf>,
    /// Passages from the same distribution known not to be in the training data.
    #[arg(long, required = true, num_args = 1..)]
    pub validation: Vec<PathBuf>,
    /// Seed of the split into learning and testing halves (and of the control's halves
    /// and the blind baseline's folds).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Level the test and its negative control are read at.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the p-value against the number of passages as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let suspect = args.input.read(&args.suspect, None)?;
    let validation = args.input.read(&args.validation, None)?;
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        anyhow::bail!(miascan::Error::Usage(format!(
            "--alpha {}: must be in (0, 1)",
            args.alpha
        )));
    }
    let models = args.scoring.load()?;
    let s = score_collect(&models, &suspect, models.options.clone())?;
    let v = score_collect(&models, &validation, models.options.clone())?;
    let m = score_matrix(&s, &v);
    let Some(r) = dataset_test(&m.names, &m.a, &m.b, args.seed) else {
        anyhow::bail!(miascan::Error::Usage(
            "too few scorable passages: each set needs at least 4".into()
        ));
    };
    // the guards: the validation set against itself, and a classifier that never sees the
    // model on the two sets' texts
    let control_p = control(&m.names, &m.b, args.seed);
    let texts: Vec<&str> = suspect
        .iter()
        .chain(&validation)
        .map(|p| p.text.as_str())
        .collect();
    let is_suspect: Vec<bool> = (0..texts.len()).map(|i| i < suspect.len()).collect();
    let blind = blind(&texts, &is_suspect, args.seed);
    let guarded = Guarded::judge(r.p_value, args.alpha, control_p, blind);
    let mut o = String::new();
    writeln!(
        o,
        "dataset test: suspect {} vs validation {} passages ({} without scores left out)",
        m.a.len(),
        m.b.len(),
        m.left_out
    )?;
    writeln!(
        o,
        "learned on {} + {}, tested on {} + {}: t = {:.3}, df = {:.1}, one-sided p = {:.3e}",
        r.n_train.0, r.n_train.1, r.n_test.0, r.n_test.1, r.t, r.df, r.p_value
    )?;
    writeln!(o, "{:>10}  {:>10}", "n per set", "p-value")?;
    for (n, p) in &r.p_by_n {
        writeln!(o, "{n:>10}  {p:>10.3e}")?;
    }
    writeln!(
        o,
        "negative control (one random half of the validation set vs the other): p = {}",
        control_p.map_or(
            "not run: fewer than 8 validation passages".into(),
            |p| format!("{p:.3e}")
        )
    )?;
    writeln!(
        o,
        "blind baseline (suspect vs validation texts, no model): AUROC {}",
        blind.map_or(
            "not run: fewer than 5 passages in a set".into(),
            |b| format!(
                "{:.3} (the sets differ as texts at {:.3} or above)",
                b.auroc, b.bound
            )
        )
    )?;
    writeln!(
        o,
        "{}",
        guarded.sentence("the suspect set", "the validation set")
    )?;
    let mut out = Output::open(None)?;
    out.text(&o)?;
    out.finish()?;
    if let Some(path) = &args.json {
        let mut j = serde_json::to_value(&r)?;
        j["model"] = serde_json::to_value(models.target.identity())?;
        j["seed"] = serde_json::json!(args.seed);
        j["verdict"] = serde_json::to_value(&guarded)?;
        j["verdict"]["sentence"] =
            serde_json::json!(guarded.sentence("the suspect set", "the validation set"));
        std::fs::write(path, serde_json::to_string_pretty(&j)?)
            .map_err(miascan::Error::output(path))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(
            path,
            plot::p_by_n_svg("dataset test: p-value against n", &r.p_by_n),
        )
        .map_err(miascan::Error::output(path))?;
    }
    Ok(())
}
