//! The command line: argument types and one function per subcommand. Kept thin: the library
//! does the work.

pub mod calibrate;
pub mod common;
pub mod dataset_test;
pub mod eval;
pub mod exposure;
pub mod freq;
pub mod inspect;
pub mod merge;
pub mod output;
pub mod scan;
pub mod score;
pub mod tokenize;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "miascan",
    version,
    about = "Was this text in a language model's training data?"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a collection: documents of every format cut into passages, scored as they are
    /// read, with document and collection verdicts, a crash-safe log (--resume), shards
    /// (--shard I/N) and a report (DIR/report.html).
    Scan(Box<scan::Args>),
    /// Join the result directories of `scan --shard I/N` runs.
    Merge(merge::Args),
    /// Score passages: per-token log-probs in one forward pass, every score from them.
    Score(Box<score::Args>),
    /// Store each score's distribution on known non-members, for p-values and decisions.
    Calibrate(Box<calibrate::Args>),
    /// Evaluate every score on known members and non-members: AUROC with bootstrap
    /// interval, TPR at 0.1/1/5% FPR, ROC plot, blind baseline.
    Eval(Box<eval::Args>),
    /// Dataset inference: does a suspect collection score higher than a validation
    /// collection, as a whole (Welch t-test on a learned combination of the scores)?
    DatasetTest(Box<dataset_test::Args>),
    /// Canary exposure: rank each secret's likelihood among random fills of its template
    /// (Carlini et al. 2019): rank, exact p-value, exposure in bits.
    Exposure(Box<exposure::Args>),
    /// DC-PDD's token frequency table: `freq build` counts a reference corpus in a
    /// model's vocabulary, `freq show` describes a table.
    Freq(freq::Args),
    /// Describe a model file: architecture, size, context, vocabulary, tokenizer, BOS policy.
    Inspect(inspect::Args),
    /// The model's own tokenisation of each input: JSONL {id, ids, tokens, spans}, from a
    /// .gguf (vocabulary-only files too), a tokenizer.json or a checkpoint folder.
    Tokenize(tokenize::Args),
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
