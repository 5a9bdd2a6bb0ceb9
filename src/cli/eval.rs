//! `miascan eval`: how well each score separates known members from known non-members.

use super::common::{score_collect, InputArgs, ScoringArgs};
use super::output::Output;
use miascan::eval::{evaluate, plot};
use miascan::input::scored::read_scored as read_scored_records;
use miascan::input::Passage;
use miascan::record::PassageRecord;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Known members (files or directories, read like `score` inputs).
    #[arg(long, num_args = 1..)]
    pub members: Vec<PathBuf>,
    /// Known non-members.
    #[arg(long, num_args = 1..)]
    pub nonmembers: Vec<PathBuf>,
    /// Labelled JSONL inputs (with --label-field) instead of --members/--nonmembers.
    pub inputs: Vec<PathBuf>,
    /// JSONL field with the label (true/1 = member) of each line of INPUTS.
    #[arg(long)]
    pub label_field: Option<String>,
    /// Write the evaluation as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write ROC curves as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write every passage's scores (JSONL, with its label) here.
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
    /// Seed of the bootstrap and of the blind baseline's folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Bootstrap resamples for the AUROC intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// The inputs are score records (JSONL from `score -o` or `--scores-out`), not passages:
    /// evaluate them without loading any model. All records must come from one model.
    #[arg(long)]
    pub scored: bool,
}

/// Where the labels come from.
enum Sources<'a> {
    /// `--members A --nonmembers B`.
    Sets {
        members: &'a [PathBuf],
        nonmembers: &'a [PathBuf],
    },
    /// `INPUTS --label-field F`.
    Labelled {
        inputs: &'a [PathBuf],
        field: &'a str,
    },
}

impl Args {
    /// Checks that exactly one way of giving labels is used; `no_field` is the message when
    /// labelled inputs come without `--label-field`.
    fn sources(&self, no_field: &str) -> anyhow::Result<Sources<'_>> {
        let usage = |m: &str| anyhow::Error::new(miascan::Error::Usage(m.into()));
        match (
            self.members.is_empty() && self.nonmembers.is_empty(),
            self.inputs.is_empty(),
        ) {
            (false, true) if self.members.is_empty() || self.nonmembers.is_empty() => {
                Err(usage("give both --members and --nonmembers"))
            }
            (false, true) => Ok(Sources::Sets {
                members: &self.members,
                nonmembers: &self.nonmembers,
            }),
            (true, false) => match &self.label_field {
                Some(field) => Ok(Sources::Labelled {
                    inputs: &self.inputs,
                    field,
                }),
                None => Err(usage(no_field)),
            },
            _ => Err(usage(
                "give --members A --nonmembers B, or INPUTS with --label-field",
            )),
        }
    }
}

/// Reads labelled passages from --members/--nonmembers or from labelled inputs.
fn labelled(args: &Args) -> anyhow::Result<Vec<Passage>> {
    Ok(match args.sources("labelled inputs need --label-field")? {
        Sources::Sets {
            members,
            nonmembers,
        } => {
            let mut m = args.input.read(members, None)?;
            m.iter_mut().for_each(|p| p.label = Some(true));
            let mut n = args.input.read(nonmembers, None)?;
            n.iter_mut().for_each(|p| p.label = Some(false));
            m.extend(n);
            m
        }
        Sources::Labelled { inputs, field } => args.input.read(inputs, Some(field.into()))?,
    })
}

fn write(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(miascan::Error::output(path))?;
    Ok(())
}

/// `--scored`: labelled results read back from score records.
fn read_scored(args: &Args) -> anyhow::Result<(Vec<PassageRecord>, Vec<bool>)> {
    let no_field = "score records need --label-field (`--scores-out` writes `member`)";
    let recs = match args.sources(no_field)? {
        Sources::Sets {
            members,
            nonmembers,
        } => {
            let mut all = Vec::new();
            for (files, label) in [(members, true), (nonmembers, false)] {
                all.extend(read_scored_records(files, None)?.into_iter().map(|mut r| {
                    r.label = Some(label);
                    r
                }));
            }
            // one model across both sets
            if all.iter().any(|r| r.models != all[0].models) {
                anyhow::bail!(miascan::Error::Usage(
                    "--members and --nonmembers were scored by different models".into()
                ));
            }
            all
        }
        Sources::Labelled { inputs, field } => read_scored_records(inputs, Some(field))?,
    };
    let labels = recs.iter().map(|r| r.label.unwrap_or(false)).collect();
    Ok((recs.into_iter().map(|r| r.result).collect(), labels))
}

fn run_scored(args: Args) -> anyhow::Result<()> {
    let (results, labels) = read_scored(&args)?;
    let rep = evaluate(&results, &labels, &[], args.seed, args.bootstrap);
    let mut out = Output::open(None)?;
    out.text(&rep.table())?;
    out.text("blind baseline: not run (score records hold no texts)\n")?;
    out.finish()?;
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&rep)?)?;
    }
    if let Some(path) = &args.plot {
        write(path, &roc_plot("ROC: score records", &rep))?;
    }
    Ok(())
}

/// The ROC curves of every score, as SVG.
fn roc_plot(title: &str, rep: &miascan::eval::EvalReport) -> String {
    let curves: Vec<(String, Vec<(f64, f64)>)> = rep
        .scores
        .iter()
        .map(|e| (format!("{} ({:.3})", e.score, e.auroc), e.roc.clone()))
        .collect();
    plot::roc_svg(title, &curves)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.scored {
        return run_scored(args);
    }
    let passages = labelled(&args)?;
    let labels: Vec<bool> = passages.iter().map(|p| p.label.unwrap_or(false)).collect();
    let models = args.scoring.load()?;
    let results = score_collect(&models, &passages, models.options.clone())?;
    if let Some(path) = &args.scores_out {
        let mut s = String::new();
        for (r, &l) in results.iter().zip(&labels) {
            let mut v = r.clone();
            v.extra.insert("member".into(), serde_json::Value::Bool(l));
            s.push_str(&v.to_line());
            s.push('\n');
        }
        write(path, &s)?;
    }
    let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
    let rep = evaluate(&results, &labels, &texts, args.seed, args.bootstrap);
    let mut out = Output::open(None)?;
    out.text(&rep.table())?;
    out.finish()?;
    if let Some(path) = &args.json {
        let mut v = serde_json::to_value(&rep)?;
        v["model"] = serde_json::to_value(models.target.identity())?;
        if let Some(r) = &models.reference {
            v["reference"] = serde_json::to_value(r.identity())?;
        }
        write(path, &serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(path) = &args.plot {
        write(
            path,
            &roc_plot(&format!("ROC: {}", models.target.identity().name), &rep),
        )?;
    }
    Ok(())
}
