//! `miascan score`: passages in, one JSON line (or a table row) per passage out.

use super::common::{InputArgs, Progress, ScoringArgs};
use miascan::calibrate::{Calibration, Settings};
use miascan::report;
use std::io::Write;
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
    /// Add per-token arrays: token_ids, tokens, token_logprobs, token_mu, token_sigma.
    #[arg(long)]
    pub token_logprobs: bool,
    /// A calibration from `miascan calibrate` (same model, reference and settings): adds
    /// per-score p-values and a decision.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// False-positive rate of the decision: flagged when the deciding score's p-value is
    /// at most this.
    #[arg(long, default_value_t = 0.01, requires = "calibration")]
    pub fpr: f64,
    /// The score that decides (default: `ref` with a reference model, else `minkpp_0.2`).
    #[arg(long, requires = "calibration")]
    pub decide_by: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let passages = args.input.read(&args.inputs, None)?;
    let models = args.scoring.load()?;
    let scorer = models.scorer(args.scoring.options(args.token_logprobs));
    let ref_identity = models.reference.as_ref().map(|r| &r.identity);
    let decision = match &args.calibration {
        Some(path) => Some(Decision::new(&args, path, &models)?),
        None => None,
    };

    let out_name = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdout>"));
    let write_err = |source| miascan::Error::OutputIo {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(write_err)?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = Progress::new(passages.len());
    let mut done = 0usize;
    let mut rows = Vec::new();
    scorer.score_all(&passages, |r| {
        done += 1;
        progress.tick(done);
        if args.table {
            rows.push(r);
        } else {
            let mut rec = report::record(&r, &models.target.identity, ref_identity);
            if let Some(d) = &decision {
                d.annotate(&r, &mut rec);
            }
            let line = serde_json::to_string(&rec).expect("JSON values always serialise");
            writeln!(out, "{line}").map_err(write_err)?;
        }
        Ok(())
    })?;
    progress.done();
    if args.table {
        let p_values: Vec<Option<f64>> = match &decision {
            Some(d) => rows.iter().map(|r| d.p_value(r)).collect(),
            None => Vec::new(),
        };
        let shown = decision.as_ref().map(|d| report::TableDecision {
            by: &d.by,
            fpr: d.fpr,
            p_values: &p_values,
        });
        write!(out, "{}", report::table(&rows, shown.as_ref())).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(())
}

/// p-values and the decision from a calibration.
struct Decision {
    calibration: Calibration,
    by: String,
    fpr: f64,
}

impl Decision {
    fn new(
        args: &Args,
        path: &std::path::Path,
        models: &super::common::Models,
    ) -> anyhow::Result<Self> {
        if !(args.fpr > 0.0 && args.fpr < 1.0) {
            anyhow::bail!(miascan::Error::Usage(format!(
                "--fpr {}: must be in (0, 1)",
                args.fpr
            )));
        }
        let calibration = Calibration::load(path)?;
        let current = Settings::new(
            &models.target.identity,
            models.reference.as_ref().map(|r| &r.identity),
            &args.scoring.options(false),
        );
        calibration.check(&current)?;
        let by = match &args.decide_by {
            Some(b) => b.clone(),
            None if models.reference.is_some() && calibration.scores.contains_key("ref") => {
                "ref".into()
            }
            None if models.reference.is_some() => "ref_bpb".into(),
            None => "minkpp_0.2".into(),
        };
        if !calibration.scores.contains_key(&by) {
            let known: Vec<&str> = calibration.scores.keys().map(String::as_str).collect();
            anyhow::bail!(miascan::Error::Usage(format!(
                "--decide-by {by}: the calibration has no such score (it has {})",
                known.join(", ")
            )));
        }
        let min_p = 1.0 / (1 + calibration.n) as f64;
        if args.fpr < min_p {
            eprintln!(
                "warning: with {} calibration non-members no p-value is below {min_p:.4}: nothing can be flagged at --fpr {}",
                calibration.n, args.fpr
            );
        }
        Ok(Decision {
            calibration,
            by,
            fpr: args.fpr,
        })
    }

    /// The p-value of the deciding score (`None` when the passage has no value).
    fn p_value(&self, r: &miascan::scorer::PassageResult) -> Option<f64> {
        r.scores
            .get(&self.by)
            .and_then(|x| self.calibration.p_value(&self.by, x))
    }

    /// Adds `p_values`, `flagged`, `decided_by`, `fpr` and `calibration_n` to a record.
    fn annotate(&self, r: &miascan::scorer::PassageResult, rec: &mut serde_json::Value) {
        let mut p = serde_json::Map::new();
        for (name, v) in &r.scores.scores {
            let pv = v.and_then(|x| self.calibration.p_value(name, x));
            p.insert(
                name.clone(),
                pv.map_or(serde_json::Value::Null, |x| serde_json::json!(x)),
            );
        }
        let decisive = self.p_value(r);
        rec["p_values"] = serde_json::Value::Object(p);
        rec["flagged"] = decisive.map_or(serde_json::Value::Null, |pv| {
            serde_json::json!(pv <= self.fpr)
        });
        rec["decided_by"] = serde_json::json!(self.by);
        rec["fpr"] = serde_json::json!(self.fpr);
        rec["calibration_n"] = serde_json::json!(self.calibration.n);
    }
}
