//! `miascan scan`: a whole collection into a directory of results (see the library's
//! `scan` module for the pipeline and `scan::finish` for the outputs).

use super::common::{DecisionArgs, InputArgs, ScoringArgs, WalkArgs};
use super::output::Progress;
use miascan::chunk::ChunkOptions;
use miascan::input::walk::WalkOptions;
use miascan::scan::conduct::{conduct, CalibrationSource, Event, ScanDecision, ScanJob, Start};
use miascan::scan::summary::{self, Outputs};
use miascan::scan::ScanOptions;
use std::path::{Path, PathBuf};

/// Exit code of a scan that finished but skipped some files or rows, or could not score
/// some passages (listed in `summary.json`).
pub const EXIT_SKIPPED: i32 = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Files and directories to scan (every supported file below a directory), or - for
    /// stdin.
    #[arg(required_unless_present = "type_list")]
    pub inputs: Vec<PathBuf>,
    /// Directory for the results (created if needed).
    #[arg(long, short = 'o', required_unless_present = "type_list")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub decision: DecisionArgs,
    /// False discovery rate at which documents are flagged (Benjamini–Hochberg).
    #[arg(long, default_value_t = summary::DEFAULT_FDR)]
    pub fdr: f64,
    /// Documents are cut into passages of this many tokens of the target model.
    #[arg(long, default_value_t = 128)]
    pub passage_tokens: usize,
    /// Tokens shared by consecutive passages.
    #[arg(long, default_value_t = 0)]
    pub overlap: usize,
    /// JSONL/CSV field holding a membership label (true/false, 1/0): adds a ROC curve.
    #[arg(long)]
    pub label_field: Option<String>,
    /// Finish an interrupted scan in --out (refused if models or settings differ).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start over even if --out holds a scan.
    #[arg(long)]
    pub force: bool,
    /// Scan only shard I of N (I/N, from 0): documents are split by a hash of their id, so
    /// N processes on N machines split one collection; join them with `miascan merge`.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// List the file types --type knows, with their globs, and exit.
    #[arg(long)]
    pub type_list: bool,
    /// Passages shown token by token in the report.
    #[arg(long, default_value_t = 10)]
    pub heatmaps: usize,
    /// No progress bar and no closing lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--shard {s}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

impl Args {
    /// The library's scan job of these flags.
    fn job(&self, out: PathBuf) -> miascan::Result<ScanJob> {
        Ok(ScanJob {
            inputs: self.inputs.clone(),
            out,
            options: ScanOptions {
                collect: self
                    .walk
                    .collect_options(self.input.options(self.label_field.clone()))?,
                chunk: ChunkOptions {
                    passage_tokens: self.passage_tokens,
                    overlap: self.overlap,
                },
                shard: self.shard,
            },
            fdr: self.fdr,
            heatmaps: self.heatmaps,
            start: match (self.resume, self.force) {
                (true, _) => Start::Resume,
                (false, true) => Start::Force,
                (false, false) => Start::New,
            },
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    if args.type_list {
        let mut out = super::output::Output::open(None)?;
        for (name, globs) in miascan::input::walk::type_list() {
            out.text(&format!("{name}: {}\n", globs.join(", ")))?;
        }
        out.finish()?;
        return Ok(0);
    }
    let out = args
        .out
        .clone()
        .expect("clap requires --out without --type-list");
    let job = args.job(out)?;
    let models = args.scoring.load()?;
    let decision = args
        .decision
        .load(&models, &args.input, Some(args.passage_tokens))?
        .map(|d| -> anyhow::Result<ScanDecision> {
            let source = match (d.made, &args.decision.calibration) {
                (Some(made), _) => CalibrationSource::Made {
                    json: made.to_json(),
                },
                (None, Some(path)) => CalibrationSource::File(path.clone()),
                (None, None) => anyhow::bail!(miascan::Error::Internal(
                    "a decision neither made nor loaded".into()
                )),
            };
            Ok(ScanDecision {
                decision: d.decision,
                source,
            })
        })
        .transpose()?;
    let progress = Progress::bytes(args.quiet);
    if progress.shown() {
        // the bar's length (for the ETA): the bytes of the files to read, counted aside
        let (bar, inputs) = (progress.handle(), args.inputs.clone());
        let walk = job.options.collect.walk.clone();
        std::thread::spawn(move || bar.set_length(total_bytes(&inputs, &walk)));
    }
    let quiet = args.quiet;
    let o = conduct(&job, &models, decision.as_ref(), &mut |e| match e {
        Event::Warning(w) if !quiet => eprintln!("warning: {w}"),
        Event::Warning(_) => {}
        Event::Progress {
            documents,
            passages,
            bytes,
        } => {
            progress.tick(bytes as usize);
            progress.message(format!("{documents} documents, {passages} passages"));
        }
        Event::Scanned(stats) => progress.done_with(&format!(
            "scanned {} passages ({} tokens) in {:.1} s",
            stats.passages, stats.tokens, stats.seconds
        )),
    })?;
    Ok(closing(&job.out, &o, args.quiet))
}

/// The closing lines on stderr, and the exit code.
pub fn closing(out: &Path, o: &Outputs, quiet: bool) -> i32 {
    let s = &o.summary;
    let problems = s.skipped.len() + s.partial.len() + s.failed.len();
    if !quiet {
        eprintln!("{}", s.verdict.sentence);
        if let Some(n) = &s.verdict.note {
            eprintln!("note: {n}");
        }
        eprintln!(
            "{} documents, {} passages, {} tokens; {} skipped{}{}",
            s.documents,
            s.passages,
            s.tokens,
            s.skipped.len(),
            if s.partial.is_empty() {
                String::new()
            } else {
                format!(", {} read in part", s.partial.len())
            },
            if s.excluded.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} left out by ignore files (--no-ignore reads them)",
                    s.excluded.len()
                )
            }
        );
        if let Some(first) = s.failed.first() {
            eprintln!(
                "{} passages failed ({} …: {}); run again with --resume to score them",
                s.failed.len(),
                first.source,
                first.reason
            );
        }
        eprintln!("report: {}", out.join("report.html").display());
    }
    if problems > 0 {
        EXIT_SKIPPED
    } else {
        0
    }
}

/// Bytes of the files below `inputs` that a scan reads (a quick walk, for the ETA).
fn total_bytes(inputs: &[PathBuf], walk: &WalkOptions) -> u64 {
    let mut total = 0;
    let _ = miascan::input::walk::walk::<()>(inputs, walk, |f| {
        if let miascan::input::walk::Found::File(e) = f {
            if miascan::input::open::detect(&e.path).is_ok() {
                total += std::fs::metadata(&e.path).map_or(0, |m| m.len());
            }
        }
        Ok(())
    });
    total
}
