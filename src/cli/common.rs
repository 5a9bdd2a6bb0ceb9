//! Argument groups shared by the commands that read passages and score them.

use super::output::Progress;
use super::ModelArgs;
use miascan::calibrate::{Calibration, Decision, Settings};
use miascan::chunk::{cut_passages, ChunkOptions};
use miascan::engine::{is_url, Engine, LocalEngine, RemoteEngine};
use miascan::input::walk::{Filter, WalkOptions};
use miascan::input::{
    read_inputs, CollectOptions, Format, Passage, ReadOptions, Utf8Policy, STDIN,
};
use miascan::model::Tokenizer;
use miascan::record::PassageRecord;
use miascan::score::freq::FreqTable;
use miascan::scorer::{ScoreOptions, Scorer};
use std::io::IsTerminal;
use std::path::PathBuf;

/// How inputs are read.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// How to read inputs: auto (by extension), text, jsonl, html, csv, tsv, parquet.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// JSONL field or CSV/TSV/Parquet column holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// JSONL field or CSV/TSV/Parquet column holding the document id.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Encoding of files that carry no byte-order mark, for legacy archives: a WHATWG label
    /// (windows-1252, latin1, shift_jis, euc-kr, gbk, utf-16le…). Default: UTF-8. Files
    /// with a UTF-16 or UTF-8 byte-order mark are read by it whatever this says.
    #[arg(long, value_parser = parse_encoding)]
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

fn parse_encoding(s: &str) -> Result<&'static encoding_rs::Encoding, String> {
    encoding_rs::Encoding::for_label(s.trim().as_bytes())
        .ok_or_else(|| format!("unknown encoding {s:?} (a WHATWG label, e.g. windows-1252)"))
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "auto" => Ok(Format::Auto),
        "text" => Ok(Format::Text),
        "jsonl" => Ok(Format::Jsonl),
        "html" => Ok(Format::Html),
        "csv" => Ok(Format::Csv),
        "tsv" => Ok(Format::Tsv),
        "parquet" => Ok(Format::Parquet),
        "epub" => Ok(Format::Epub),
        "pdf" => Ok(Format::Pdf),
        "docx" | "odt" => Ok(Format::Office),
        _ => Err(format!(
            "unknown format {s} (auto, text, jsonl, html, csv, tsv, parquet, epub, pdf, docx, odt)"
        )),
    }
}

impl InputArgs {
    pub fn options(&self, label_field: Option<String>) -> ReadOptions {
        ReadOptions {
            format: self.format,
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            label_field,
            encoding: self.encoding,
        }
    }

    /// `inputs`, or stdin when none are given and stdin is not a terminal.
    pub fn inputs_or_stdin(&self, inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
        let mut inputs = inputs.to_vec();
        if inputs.is_empty() {
            if std::io::stdin().is_terminal() {
                anyhow::bail!(miascan::Error::Usage(
                    "no input: give files or directories, or pipe text on stdin".into()
                ));
            }
            inputs.push(PathBuf::from(STDIN));
        }
        Ok(inputs)
    }

    /// Reads `inputs`, or stdin when none are given and stdin is not a terminal.
    pub fn read(
        &self,
        inputs: &[PathBuf],
        label_field: Option<String>,
    ) -> anyhow::Result<Vec<Passage>> {
        let inputs = self.inputs_or_stdin(inputs)?;
        Ok(read_inputs(&inputs, &self.options(label_field))?)
    }
}

/// A calibrated decision (`score`, `scan`).
#[derive(Debug, clap::Args)]
pub struct DecisionArgs {
    /// A calibration from `miascan calibrate` (same model, reference and settings; for a
    /// scan, best made with the same --passage-tokens): adds per-score p-values and flags.
    #[arg(long, group = "decision_source")]
    pub calibration: Option<PathBuf>,
    /// Calibrate on these known non-members first (as `miascan calibrate` would, with this
    /// run's settings and passage length; a scan keeps the file as calibration.json).
    #[arg(long, group = "decision_source", num_args = 1..)]
    pub nonmembers: Vec<PathBuf>,
    /// False-positive rate of the decision: a passage is flagged when the deciding score's
    /// p-value is at most this.
    #[arg(long, default_value_t = 0.01, requires = "decision_source")]
    pub fpr: f64,
    /// The score that decides (default: the calibration's: `ref` with a reference model,
    /// else Min-K%++ at the first k).
    #[arg(long, requires = "decision_source")]
    pub decide_by: Option<String>,
}

impl DecisionArgs {
    /// The calibration (if any) checked against this run: `settings` are the run's, with
    /// `passage_tokens` taken from the calibration (the caller compares those itself).
    ///
    /// With `--nonmembers` the calibration is made here, on passages of `passage_tokens`
    /// (`None`: each input passage whole), and returned beside the decision to be saved.
    pub fn load(
        &self,
        models: &Models,
        opts: &ScoreOptions,
        input: &InputArgs,
        passage_tokens: Option<usize>,
    ) -> anyhow::Result<Option<(Decision, Option<Calibration>)>> {
        let (calibration, made) = match &self.calibration {
            Some(path) => (Calibration::load(path)?, false),
            None if self.nonmembers.is_empty() => return Ok(None),
            None => {
                let c = calibrate(models, opts, input, &self.nonmembers, passage_tokens, None)?;
                (c, true)
            }
        };
        let kept = made.then(|| calibration.clone());
        let mut settings = Settings::new(
            models.target.identity(),
            models.reference.as_ref().map(|r| r.identity()),
            opts,
        );
        settings.passage_tokens = calibration.settings.passage_tokens;
        let d = Decision::new(
            calibration,
            &settings,
            self.decide_by.as_deref(),
            self.fpr,
            |w| eprintln!("warning: {w}"),
        )?;
        Ok(Some((d, kept)))
    }
}

/// Which scores to compute and how.
#[derive(Debug, clap::Args)]
pub struct ScoringArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Reference model (file, folder, hub id or a server's http(s)://…/v1) scoring the same
    /// passages: adds `ref` (same vocabulary), `ref_mink_k` and `ref_bpb`.
    #[arg(long)]
    pub reference: Option<String>,
    /// The model name to ask the reference's server for (default: the one it lists).
    #[arg(long)]
    pub reference_served_model: Option<String>,
    /// Fraction(s) k for Min-K%, Min-K%++, Gap-K%, SURP and ref_mink (repeat or
    /// comma-separate): every k from the same pass.
    #[arg(long = "k", value_delimiter = ',', default_value = "0.2")]
    pub ks: Vec<f64>,
    /// Skip the lowercase score (saves its second forward pass).
    #[arg(long)]
    pub no_lowercase: bool,
    /// Scores to compute, comma-separated: names (neg_loss, mink_0.2, minkpp_0.2, gapk_0.2,
    /// surp_0.2, zlib, lowercase, ref, ref_mink_0.2, ref_llr, ref_bpb, ez, ez_llr, wbc,
    /// ref_info, recall, conrecall_0.5, dcpdd, extraction_50_50) and groups: default
    /// (every score the run's passes pay for), finetune (ez, ez_llr, wbc, ref_info; needs a same-vocabulary --reference),
    /// all. Only the forward passes they need run.
    #[arg(long, value_delimiter = ',')]
    pub scores: Option<Vec<String>>,
    /// Verbatim extraction: the probability of each window's SUFFIX tokens given its PREFIX
    /// tokens, windows every STRIDE tokens (default 10); adds `extraction_P_S` and each
    /// passage's best window (PREFIX:SUFFIX[:STRIDE], e.g. 50:50).
    #[arg(long, value_parser = parse_extraction)]
    pub extraction: Option<miascan::score::extraction::Extraction>,
    /// Window length in tokens for long passages (default and maximum: the model's context).
    #[arg(long)]
    pub max_context: Option<usize>,
    /// Tokens packed into one forward pass.
    #[arg(long, default_value_t = 2048)]
    pub batch_tokens: usize,
    /// ReCaLL: read every passage after this non-member prefix too (a name from prompts/,
    /// e.g. recall-written-2026, or a file), its key/value state computed once; adds
    /// `recall`. A local target only. A prefix over half the context is cut from its front.
    #[arg(long, value_name = "NAME|FILE")]
    pub recall_prefix: Option<String>,
    /// Con-ReCall: also read every passage after this member prefix (text the model was
    /// trained on: a name from prompts/, e.g. member-public-domain, or a file); with
    /// --recall-prefix, adds `conrecall_G` for each --gamma.
    #[arg(long, value_name = "NAME|FILE", requires = "recall_prefix")]
    pub member_prefix: Option<String>,
    /// Con-ReCall's contrast weights γ (comma-separate), one score each.
    #[arg(long = "gamma", value_delimiter = ',', default_value = "0.1,0.5,1.0")]
    pub gammas: Vec<f64>,
    /// DC-PDD: token frequencies of a reference corpus in the target's vocabulary (made by
    /// `miascan freq build --model M`); adds `dcpdd`. A local target only.
    #[arg(long, value_name = "FILE")]
    pub freq_table: Option<PathBuf>,
}

fn parse_extraction(s: &str) -> Result<miascan::score::extraction::Extraction, String> {
    miascan::score::extraction::Extraction::parse(s).map_err(|e| e.to_string())
}

/// The models of a run, loaded once, each behind its engine.
pub struct Models {
    pub target: Box<dyn Engine>,
    pub reference: Option<Box<dyn Engine>>,
    /// The target reading passages after the ReCaLL prefix (`--recall-prefix`).
    pub prefixed: Option<Box<dyn Engine>>,
    /// The target reading passages after Con-ReCall's member prefix (`--member-prefix`).
    pub member_prefixed: Option<Box<dyn Engine>>,
    /// With a server as target: the tokenizer that cuts documents (`--tokenizer`).
    pub cutter: Option<Tokenizer>,
    /// DC-PDD's token frequencies (`--freq-table`).
    pub freq: Option<FreqTable>,
}

impl ScoringArgs {
    /// Checks the options, sizes the thread pools and loads the models.
    pub fn load(&self) -> anyhow::Result<Models> {
        for &k in &self.ks {
            if !(k > 0.0 && k <= 1.0) {
                anyhow::bail!(miascan::Error::Usage(format!("--k {k}: must be in (0, 1]")));
            }
        }
        if self.batch_tokens == 0 || self.max_context.is_some_and(|c| c < 2) {
            anyhow::bail!(miascan::Error::Usage(
                "--batch-tokens must be >= 1 and --max-context >= 2".into()
            ));
        }
        self.model.setup_threads()?;
        let server = &self.model.server;
        if self.gammas.iter().any(|g| !(g.is_finite() && *g >= 0.0)) {
            anyhow::bail!(miascan::Error::Usage(format!(
                "--gamma {:?}: each must be a number >= 0",
                self.gammas
            )));
        }
        let load = |flag: &str, spec: &Option<String>| {
            spec.as_deref()
                .map(|s| miascan::score::prefix::load_as(flag, s))
                .transpose()
        };
        let prefix = load("--recall-prefix", &self.recall_prefix)?;
        let member = load("--member-prefix", &self.member_prefix)?;
        type Boxed = Option<Box<dyn Engine>>;
        let (target, prefixed, member_prefixed): (Box<dyn Engine>, Boxed, Boxed) = match &self
            .model
            .model
        {
            Some(url) if is_url(url) => {
                if prefix.is_some() {
                    anyhow::bail!(miascan::Error::Usage(
                            "--recall-prefix needs a local model: a server gives no way to reuse a prefix's state".into()
                        ));
                }
                (
                    Box::new(RemoteEngine::open(&server.options(url, None))?),
                    None,
                    None,
                )
            }
            _ => {
                let model = std::sync::Arc::new(self.model.load()?);
                let after = |flag: &str,
                             p: &Option<miascan::score::prefix::PrefixText>|
                 -> anyhow::Result<Boxed> {
                    let Some(p) = p else { return Ok(None) };
                    let e = LocalEngine::new(model.clone(), self.max_context, self.batch_tokens)
                        .conditioned_on(&p.text)?;
                    let fit = e.prefix_fit().expect("conditioned");
                    if fit.trimmed > 0 {
                        eprintln!(
                                "miascan: {flag} {}: {} tokens cut from its front to fit half the context; {} kept",
                                p.name, fit.trimmed, fit.tokens
                            );
                    }
                    Ok(Some(Box::new(e)))
                };
                let prefixed = after("--recall-prefix", &prefix)?;
                let member_prefixed = after("--member-prefix", &member)?;
                let target = LocalEngine::new(model, self.max_context, self.batch_tokens);
                (Box::new(target), prefixed, member_prefixed)
            }
        };
        let reference: Option<Box<dyn Engine>> = match &self.reference {
            Some(url) if is_url(url) => Some(Box::new(RemoteEngine::open(
                &server.options(url, self.reference_served_model.as_deref()),
            )?)),
            Some(r) => Some(Box::new(LocalEngine::new(
                self.model.load_other(r)?,
                self.max_context,
                self.batch_tokens,
            ))),
            None => None,
        };
        let cutter = match &server.tokenizer {
            Some(spec) if target.tokenizer().is_none() => {
                Some(Tokenizer::open(spec, self.model.offline)?)
            }
            _ => None,
        };
        let freq = self
            .freq_table
            .as_deref()
            .map(FreqTable::load)
            .transpose()?;
        Ok(Models {
            target,
            reference,
            prefixed,
            member_prefixed,
            cutter,
            freq,
        })
    }

    pub fn options(&self, token_details: bool) -> ScoreOptions {
        ScoreOptions {
            ks: self.ks.clone(),
            lowercase: !self.no_lowercase,
            scores: self.scores.clone(),
            extraction: self.extraction,
            // checked with its error by `load`
            recall_prefix: self
                .recall_prefix
                .as_deref()
                .and_then(|p| miascan::score::prefix::load(p).ok())
                .map(|p| p.sha256),
            member_prefix: self
                .member_prefix
                .as_deref()
                .and_then(|p| miascan::score::prefix::load(p).ok())
                .map(|p| p.sha256),
            gammas: self.gammas.clone(),
            // checked with its error by `load`
            freq_table: self
                .freq_table
                .as_deref()
                .and_then(|p| FreqTable::load(p).ok())
                .map(|t| t.sha256().to_string()),
            max_context: self.max_context,
            batch_tokens: self.batch_tokens,
            token_details,
            // ranks come from the same pass as the log-probs: free with the details
            token_ranks: token_details,
        }
    }
}

impl Models {
    /// The run's scorer, its `--scores` checked against the models.
    pub fn scorer(&self, opts: ScoreOptions) -> miascan::Result<Scorer<'_>> {
        let mut s = Scorer::new(self.target.as_ref(), opts).with_cutter(self.cutter.as_ref());
        if let Some(r) = &self.reference {
            s = s.with_reference(r.as_ref());
        }
        if let Some(p) = &self.prefixed {
            s = s.with_prefixed(p.as_ref());
        }
        if let Some(m) = &self.member_prefixed {
            s = s.with_member_prefixed(m.as_ref());
        }
        if let Some(t) = &self.freq {
            s = s.with_freq(t)?;
        }
        s.select()
    }

    /// Scores every passage, with a progress bar on a terminal.
    pub fn score_collect(
        &self,
        passages: &[Passage],
        opts: ScoreOptions,
    ) -> anyhow::Result<Vec<PassageRecord>> {
        let mut out = Vec::with_capacity(passages.len());
        let progress = Progress::new(Some(passages.len() as u64), "passages");
        self.scorer(opts)?.score_all(passages, |r| {
            progress.tick(out.len() + 1);
            out.push(r);
            Ok(())
        })?;
        progress.done(out.len());
        Ok(out)
    }
}

/// The calibration on `nonmembers` (cut into passages of `passage_tokens` when given),
/// deciding by `decide_by` when given: `miascan calibrate`'s work, also done by `scan --nonmembers` and `score --nonmembers`.
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
            models.scorer(opts.clone())?.target_tokenizer()?,
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
        models.target.identity(),
        models.reference.as_ref().map(|r| r.identity()),
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

/// How a collection is walked and read, as `scan` reads it: leniently (a file or row that
/// cannot be read is skipped with its reason), ids relative to each input, large text files
/// streamed in segments.
#[derive(Debug, clap::Args)]
pub struct WalkArgs {
    /// Follow symbolic links (loops are detected, a file reached twice is read once).
    #[arg(long)]
    pub follow_links: bool,
    /// Also read hidden files and folders (`.git` and the like).
    #[arg(long)]
    pub hidden: bool,
    /// Also read what `.gitignore` (in a git repository), `.ignore` and `.git/info/exclude`
    /// exclude. Without it they are left out as ripgrep leaves them out, each listed in
    /// summary.json's `excluded` and the report.
    #[arg(long)]
    pub no_ignore: bool,
    /// Only files of this type (ripgrep's names: rust, py, c, cpp, js, java, go, markdown,
    /// …; see --type-list). Repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// No files of this type. Repeatable.
    #[arg(long, value_name = "TYPE")]
    pub type_not: Vec<String>,
    /// Only paths matching this glob, relative to each input folder (`!GLOB`: leave these
    /// out; gitignore syntax, as ripgrep's --glob). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub glob: Vec<String>,
    /// Text that is not valid UTF-8: skip the file (default) or replace bad bytes (U+FFFD).
    #[arg(long, default_value = "skip", value_parser = ["skip", "replace"])]
    pub invalid_utf8: String,
    /// Text files are streamed in segments of this many bytes.
    #[arg(long, default_value_t = 1 << 20, hide = true)]
    pub segment_bytes: usize,
}

impl WalkArgs {
    /// The reader's options for these flags and `read`.
    pub fn collect_options(&self, read: ReadOptions) -> miascan::Result<CollectOptions> {
        Ok(CollectOptions {
            read,
            walk: WalkOptions {
                hidden: self.hidden,
                follow_links: self.follow_links,
                ignore_files: !self.no_ignore,
                filter: Filter::new(&self.types, &self.type_not, &self.glob)?,
            },
            strict: false,
            relative_ids: true,
            segment_bytes: self.segment_bytes,
            max_record_bytes: 256 << 20,
            utf8: if self.invalid_utf8 == "replace" {
                Utf8Policy::Replace
            } else {
                Utf8Policy::Skip
            },
        })
    }
}
