//! `miascan scan`: a whole collection into a directory of results (see the library's
//! `scan` module for the pipeline and `scan::finish` for the outputs).

use super::common::{DecisionArgs, InputArgs, ScoringArgs, WalkArgs};
use super::output::Progress;
use miascan::chunk::ChunkOptions;
use miascan::input::walk::WalkOptions;
use miascan::scan::finish::RunInfo;
use miascan::scan::finish::{self, Outputs};
use miascan::scan::log::{self, LogWriter, RunHeader, ScanSettings};
use miascan::scan::outputs::write_outputs;
use miascan::scan::{self, ScanOptions, Scoring};
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
    #[arg(long, default_value_t = finish::DEFAULT_FDR)]
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
    fn scan_options(&self) -> miascan::Result<ScanOptions> {
        Ok(ScanOptions {
            collect: self
                .walk
                .collect_options(self.input.options(self.label_field.clone()))?,
            chunk: ChunkOptions {
                passage_tokens: self.passage_tokens,
                overlap: self.overlap,
            },
            shard: self.shard,
        })
    }

    /// Everything the results depend on besides the models (a resume must match it).
    fn settings(&self) -> ScanSettings {
        let opts = self.scoring.options(false);
        ScanSettings {
            ks: self.scoring.ks.clone(),
            lowercase: !self.scoring.no_lowercase,
            max_context: self.scoring.max_context,
            batch_tokens: self.scoring.batch_tokens,
            dtype: self.scoring.model.dtype.clone(),
            passage_tokens: self.passage_tokens,
            overlap: self.overlap,
            format: format!("{:?}", self.input.format).to_lowercase(),
            text_field: self.input.text_field.clone(),
            id_field: self.input.id_field.clone(),
            label_field: self.label_field.clone(),
            hidden: self.walk.hidden,
            follow_links: self.walk.follow_links,
            ignore_files: !self.walk.no_ignore,
            types: self.walk.types.clone(),
            type_not: self.walk.type_not.clone(),
            globs: self.walk.glob.clone(),
            encoding: self.input.encoding.map(|e| e.name().to_string()),
            invalid_utf8: self.walk.invalid_utf8.clone(),
            segment_bytes: self.walk.segment_bytes,
            inputs: self
                .inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            scores: self.scoring.scores.clone(),
            extraction: self.scoring.extraction,
            gammas: opts.member_prefix.is_some().then_some(opts.gammas),
            recall_prefix: opts.recall_prefix,
            member_prefix: opts.member_prefix,
            freq_table: opts.freq_table,
        }
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
    let out_dir = args
        .out
        .clone()
        .expect("clap requires --out without --type-list");
    let sopts = args.scan_options()?;
    if args.passage_tokens < 2 || args.overlap >= args.passage_tokens {
        anyhow::bail!(miascan::Error::Usage(
            "--passage-tokens must be at least 2 and --overlap smaller than it".into()
        ));
    }
    if !(args.fdr > 0.0 && args.fdr < 1.0) {
        anyhow::bail!(miascan::Error::Usage(format!(
            "--fdr {}: must be in (0, 1)",
            args.fdr
        )));
    }
    std::fs::create_dir_all(&out_dir).map_err(|source| miascan::Error::OutputIo {
        path: out_dir.clone(),
        source,
    })?;
    let models = args.scoring.load()?;
    let opts = args.scoring.options(false);
    let scorer = models.scorer(opts.clone())?;
    let ref_identity = models.reference.as_ref().map(|r| r.identity());
    let loaded = args
        .decision
        .load(&models, &opts, &args.input, Some(args.passage_tokens))?;
    // a calibration made here is written once the folder is known to be free for this scan
    let (decision, made) = match loaded {
        Some((d, made)) => (Some(d), made.map(|c| c.to_json())),
        None => (None, None),
    };
    let calibration_header = match (&decision, &args.decision.calibration, &made) {
        (Some(d), _, Some(json)) => Some(log::calibration_ref_of(json.as_bytes(), d)),
        (Some(d), Some(path), None) => {
            let cal_tokens = d.calibration.settings.passage_tokens;
            if cal_tokens != Some(args.passage_tokens) && !args.quiet {
                eprintln!(
                    "warning: the calibration's passages ({}) differ from this scan's ({} tokens): p-values assume alike passages; calibrate with --passage-tokens {}",
                    cal_tokens.map_or("whole inputs".to_string(), |p| format!("{p} tokens")),
                    args.passage_tokens,
                    args.passage_tokens
                );
            }
            Some(log::calibration_ref(path, d)?)
        }
        _ => None,
    };
    let header = RunHeader::new(
        models.target.identity(),
        ref_identity,
        &args.settings(),
        calibration_header,
        args.shard,
    )?;
    let mut log = if args.resume {
        LogWriter::resume(&out_dir, &header)?
    } else {
        LogWriter::create(&out_dir, &header, args.force)?
    };
    // a previous summary says the scan was finished; it is written again at the end
    let _ = std::fs::remove_file(out_dir.join("summary.json"));
    if let Some(json) = &made {
        let path = out_dir.join("calibration.json");
        std::fs::write(&path, json).map_err(|source| miascan::Error::OutputIo { path, source })?;
    }
    let scoring = Scoring {
        scorer: &scorer,
        decision: decision.as_ref(),
        label_field: args.label_field.clone(),
    };
    let progress = Progress::bytes(args.quiet);
    if progress.shown() {
        // the bar's length (for the ETA): the bytes of the files to read, counted aside
        let (bar, inputs) = (progress.handle(), args.inputs.clone());
        let walk = sopts.collect.walk.clone();
        std::thread::spawn(move || bar.set_length(total_bytes(&inputs, &walk)));
    }
    let resumed_items = log.items();
    let stats = scan::run(
        &scoring,
        &args.inputs,
        &sopts,
        &mut log,
        |docs, passages, bytes| {
            progress.tick(bytes as usize);
            progress.message(format!("{docs} documents, {passages} passages"));
        },
    )?;
    progress.done_with(&format!(
        "scanned {} passages ({} tokens) in {:.1} s",
        stats.passages, stats.tokens, stats.seconds
    ));
    drop(log);

    let mut o = finish::collect(&[log::path(&out_dir)], &out_dir, args.fdr, args.heatmaps)?;
    let wanted: Vec<(String, usize)> = o
        .top_passages
        .iter()
        .map(|(d, i, _)| (d.clone(), *i))
        .collect();
    o.heatmaps = scan::rescore_with_details(&scoring, &args.inputs, &sopts, &wanted)?;
    finish::best_first(&mut o.heatmaps, o.summary.verdict.score());
    if let Some(d) = &decision {
        o.calibration_values = d.calibration.scores.get(&d.by).cloned().unwrap_or_default();
        if !args.decision.nonmembers.is_empty() {
            o.summary.verdict.blind_auroc = blind_baseline(&args, &scorer, &sopts)?;
        }
    }
    finish::conclude(&mut o);
    o.summary.run = RunInfo {
        seconds: stats.seconds,
        passages_scored: stats.passages,
        tokens_scored: stats.tokens,
        tokens_per_second: RunInfo::rate(stats.tokens, stats.seconds),
        reader_busy_seconds: stats.reader.busy_seconds,
        reader_waiting_seconds: stats.reader.waiting_seconds,
        resumed_after_items: resumed_items,
        files_opened: stats.collect.files as u64,
        hidden_left_out: stats.collect.hidden as u64,
        type_left_out: stats.collect.by_type as u64,
        glob_left_out: stats.collect.by_glob as u64,
        calibration_values: o.calibration_values.clone(),
        blind_auroc: o.summary.verdict.blind_auroc,
        merged_from: Vec::new(),
        missing_shards: Vec::new(),
    };
    write_outputs(&out_dir, &o)?;
    Ok(closing(&out_dir, &o, args.quiet))
}

/// Passages drawn for the blind baseline from each side.
const BLIND_SAMPLE: usize = 2000;

/// The blind baseline of a scan calibrated with `--nonmembers`: a sample of the scanned
/// passages against the non-members cut as the calibration cut them, by a classifier that
/// never sees the model. `None` when a side has too few passages.
fn blind_baseline(
    args: &Args,
    scorer: &miascan::scorer::Scorer,
    sopts: &scan::ScanOptions,
) -> anyhow::Result<Option<f64>> {
    let tokenizer = scorer.target_tokenizer()?;
    let scanned = scan::sample_passages(tokenizer, &args.inputs, sopts, BLIND_SAMPLE, 0)?;
    let non = miascan::chunk::cut_passages(
        tokenizer,
        args.input.read(&args.decision.nonmembers, None)?,
        ChunkOptions {
            passage_tokens: args.passage_tokens,
            overlap: 0,
        },
    )?;
    let mut texts: Vec<&str> = scanned.iter().map(String::as_str).collect();
    texts.extend(non.iter().take(BLIND_SAMPLE).map(|p| p.text.as_str()));
    let is_scanned: Vec<bool> = (0..texts.len()).map(|i| i < scanned.len()).collect();
    Ok(miascan::eval::baseline::blind_auroc(&texts, &is_scanned, 0))
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
