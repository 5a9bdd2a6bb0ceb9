//! Argument groups shared by the commands that read passages and score them.

use super::output::Progress;
use miascan::calibrate::{Calibration, Decision};
use miascan::input::walk::{Filter, WalkOptions};
use miascan::input::{
    read_inputs, CollectOptions, Format, Passage, ReadOptions, Utf8Policy, STDIN,
};
use miascan::models::{ModelSpec, Models};
use miascan::record::PassageRecord;
use miascan::scorer::ScoreOptions;
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

/// A run's decision, as [`DecisionArgs::load`] made it.
pub struct Decided {
    pub decision: Decision,
    /// The calibration made here from `--nonmembers` (to be saved), if it was.
    pub made: Option<Calibration>,
}

impl DecisionArgs {
    /// The calibration (if any) checked against this run's models and options, with
    /// `passage_tokens` taken from the calibration (the caller compares those itself).
    ///
    /// With `--nonmembers` the calibration is made here, on passages of `passage_tokens`
    /// (`None`: each input passage whole).
    pub fn load(
        &self,
        models: &Models,
        input: &InputArgs,
        passage_tokens: Option<usize>,
    ) -> anyhow::Result<Option<Decided>> {
        let (calibration, made) = match &self.calibration {
            Some(path) => (Calibration::load(path)?, false),
            None if self.nonmembers.is_empty() => return Ok(None),
            None => {
                let c = calibrate(models, input, &self.nonmembers, passage_tokens, None)?;
                (c, true)
            }
        };
        let made = made.then(|| calibration.clone());
        let mut settings = models.settings();
        settings.passage_tokens = calibration.settings.passage_tokens;
        let decision = Decision::new(
            calibration,
            &settings,
            self.decide_by.as_deref(),
            self.fpr,
            |w| eprintln!("warning: {w}"),
        )?;
        Ok(Some(Decided { decision, made }))
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

impl ScoringArgs {
    /// Sizes the thread pools and loads the models, once: the score options every command
    /// of the run uses are `Models::options` (the prefixes and the table hashed as read).
    pub fn load(&self) -> anyhow::Result<Models> {
        self.model.setup_threads()?;
        let spec = ModelSpec {
            reference: self.reference.clone(),
            reference_served_model: self.reference_served_model.clone(),
            recall_prefix: self.recall_prefix.clone(),
            member_prefix: self.member_prefix.clone(),
            freq_table: self.freq_table.clone(),
            ..self.model.spec()?
        };
        let options = ScoreOptions {
            ks: self.ks.clone(),
            lowercase: !self.no_lowercase,
            scores: self.scores.clone(),
            extraction: self.extraction,
            gammas: self.gammas.clone(),
            max_context: self.max_context,
            batch_tokens: self.batch_tokens,
            ..ScoreOptions::default()
        };
        let models = Models::load(&spec, options)?;
        for note in &models.notes {
            eprintln!("miascan: {note}");
        }
        Ok(models)
    }
}

/// Score options with per-token details (log-probs, and ranks: they come from the same
/// pass as the log-probs, free with the details).
pub fn with_details(opts: &ScoreOptions) -> ScoreOptions {
    ScoreOptions {
        token_details: true,
        token_ranks: true,
        ..opts.clone()
    }
}

/// Scores every passage with `opts`, with a progress bar on a terminal.
pub fn score_collect(
    models: &Models,
    passages: &[Passage],
    opts: ScoreOptions,
) -> anyhow::Result<Vec<PassageRecord>> {
    let progress = Progress::new(Some(passages.len() as u64), "passages");
    let out = models.score_passages(passages, opts, |n| progress.tick(n))?;
    progress.done(out.len());
    Ok(out)
}

/// The calibration on `nonmembers` (cut into passages of `passage_tokens` when given),
/// deciding by `decide_by` when given, with a progress bar.
pub fn calibrate(
    models: &Models,
    input: &InputArgs,
    nonmembers: &[PathBuf],
    passage_tokens: Option<usize>,
    decide_by: Option<String>,
) -> anyhow::Result<Calibration> {
    let passages = input.read(nonmembers, None)?;
    let passages = match passage_tokens {
        Some(n) => models.cut(passages, n)?,
        None => passages,
    };
    let progress = Progress::new(Some(passages.len() as u64), "passages");
    let c = models.calibrate(&passages, passage_tokens, decide_by, |n| progress.tick(n))?;
    progress.done(passages.len());
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
    /// Bytes a compressed file (.gz, .zst) may expand to; past it — or past 200 expanded
    /// bytes per compressed byte once over 1 MiB, as for ZIP entries — it is skipped, the
    /// bound named (a compression bomb is a file, not days of scoring).
    #[arg(long, default_value_t = miascan::input::open::DEFAULT_MAX_EXPANDED)]
    pub max_expanded_bytes: u64,
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
            max_expanded_bytes: self.max_expanded_bytes,
            utf8: if self.invalid_utf8 == "replace" {
                Utf8Policy::Replace
            } else {
                Utf8Policy::Skip
            },
        })
    }
}

/// Options shared by commands that load a model.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Model: a .gguf file, a checkpoint folder (config.json, *.safetensors, tokenizer.json),
    /// a Hugging Face hub id org/name[@revision], or a server's API root
    /// http(s)://HOST[:PORT]/v1 (vLLM, SGLang, an OpenAI-compatible host that returns prompt
    /// log-probs). Default: SmolLM2-135M-Instruct (Q4_1) in the model cache, as fetched by
    /// scripts/fetch/fetch-models.sh.
    #[arg(long, short = 'm', env = "MIASCAN_MODEL")]
    pub model: Option<String>,
    /// Never download: hub models come from the local Hugging Face cache only (also
    /// HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Compute device: cpu, cuda, cuda:N or metal (the latter two need the cargo features).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype: f32 (default; the parity reference), f16, or bf16 (GPU only).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Worker threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How weights are held: stored (default; kept as the file stores them, quantised or
    /// 16-bit, and expanded to f32 layer by layer as each runs: memory ≈ file size) or
    /// expanded (all in f32 at load: 4 bytes per weight). Same numbers either way.
    #[arg(long, default_value = "stored", value_parser = parse_residency)]
    pub weights: miascan::model::Residency,
    /// How GGUF weights are multiplied: exact (default; blocks expanded to f32, the numbers
    /// the parity tests hold) or fast (blocks multiplied as stored with activations rounded
    /// to 8 bits, as llama.cpp does, within a measured bound of exact; see docs/speed.md).
    /// The mode is part of every output's identity: outputs of the two modes are never
    /// mixed. Hidden until its kernels beat the exact mode (docs/speed.md says where they
    /// stand).
    #[arg(long, default_value = "exact", value_parser = parse_compute, hide = true)]
    pub compute: miascan::model::Compute,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How to use a model server (`--model http(s)://…/v1`).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The model name to ask a server for (default: the one its /v1/models lists).
    #[arg(long)]
    pub served_model: Option<String>,
    /// The environment variable holding the server's API key (sent as a bearer token, to
    /// that server only; never written anywhere). Unset or empty: no key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Allow sending the API key over plain http to another machine (a private network).
    #[arg(long)]
    pub allow_plain_http_key: bool,
    /// Requests in flight at once (a continuous-batching server batches them together).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Passages sent in one request.
    #[arg(long, default_value_t = 4)]
    pub prompts_per_request: usize,
    /// Tries of a failed request (connection errors, time-outs, 408/429/5xx) before the run
    /// stops, the first included; waits double from 0.5 s to 30 s, with jitter.
    #[arg(long, default_value_t = 8)]
    pub retries: u32,
    /// Seconds one request may take before it is retried.
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// How to ask a server for prompt log-probs: prompt_logprobs (vLLM's, with token ids and
    /// ranks), echo (OpenAI completions' echo + logprobs) or auto (ask: prompt_logprobs first).
    #[arg(long, default_value = "auto", value_parser = ["auto", "prompt_logprobs", "echo"])]
    pub server_protocol: String,
    /// With a server: the model's tokenizer here (.gguf, tokenizer.json, checkpoint folder or
    /// hub id), to cut documents into passages of N tokens. The server's own tokens are the
    /// ones scored.
    #[arg(long)]
    pub tokenizer: Option<String>,
}

impl ServerArgs {
    /// The options of a server at `url` serving `served` (or the flag's model).
    pub fn options(
        &self,
        url: &str,
        served: Option<&str>,
    ) -> miascan::engine::remote::RemoteOptions {
        let key = std::env::var(&self.api_key_env)
            .ok()
            .and_then(miascan::engine::remote::client::Secret::new);
        miascan::engine::remote::RemoteOptions {
            served_model: served
                .map(String::from)
                .or_else(|| self.served_model.clone()),
            api_key: key,
            allow_plain_http_key: self.allow_plain_http_key,
            concurrency: self.concurrency,
            prompts_per_request: self.prompts_per_request,
            timeout: std::time::Duration::from_secs(self.request_timeout.max(1)),
            protocol: miascan::engine::remote::protocol::Protocol::parse(&self.server_protocol),
            attempts: self.retries,
            ..miascan::engine::remote::RemoteOptions::new(url)
        }
    }
}

fn parse_compute(s: &str) -> Result<miascan::model::Compute, String> {
    miascan::model::Compute::parse(s).ok_or_else(|| format!("unknown --compute {s} (exact, fast)"))
}

fn parse_residency(s: &str) -> Result<miascan::model::Residency, String> {
    match s {
        "stored" => Ok(miascan::model::Residency::Stored),
        "expanded" => Ok(miascan::model::Residency::Expanded),
        _ => Err(format!("unknown --weights {s} (stored, expanded)")),
    }
}

/// File name of the default model.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where scripts/fetch/fetch-models.sh puts models: `$MIASCAN_MODELS`, else
/// `~/.cache/miascan/models`.
pub fn model_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("MIASCAN_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/miascan/models")
}

impl ModelArgs {
    /// The library's model spec of these flags: `--model`, or the default model in the
    /// cache (with a hint when it has not been fetched).
    pub fn spec(&self) -> anyhow::Result<miascan::models::ModelSpec> {
        let model = match &self.model {
            Some(m) => m.clone(),
            None => self.default_model()?.display().to_string(),
        };
        Ok(miascan::models::ModelSpec {
            server: self.server.options(&model, None),
            model,
            reference: None,
            offline: self.offline,
            device: self.device.clone(),
            dtype: self.dtype.clone(),
            weights: self.weights,
            compute: self.compute,
            reference_served_model: None,
            tokenizer: self.server.tokenizer.clone(),
            recall_prefix: None,
            member_prefix: None,
            freq_table: None,
        })
    }

    fn default_model(&self) -> anyhow::Result<PathBuf> {
        let p = model_cache().join(DEFAULT_MODEL);
        if !p.exists() {
            anyhow::bail!(miascan::Error::ModelIo {
                path: p,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the default model is not in the cache; run scripts/fetch/fetch-models.sh (or pass --model)",
                ),
            });
        }
        Ok(p)
    }

    /// Sizes the thread pools (rayon's, and candle's matmul, which reads RAYON_NUM_THREADS).
    pub fn setup_threads(&self) -> anyhow::Result<()> {
        if let Some(n) = self.threads {
            if n == 0 {
                anyhow::bail!(miascan::Error::Usage("--threads must be at least 1".into()));
            }
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()?;
        }
        Ok(())
    }
}
