//! `miascan inspect MODEL`.

use super::output::Output;
use miascan::model::Model;
use serde_json::json;
use std::fmt::Write as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a .gguf file, a checkpoint folder, or a hub id org/name[@revision].
    #[arg(required_unless_present = "supported")]
    pub model: Option<String>,
    /// List the supported architectures (per format, with measured parity), tokenizers,
    /// and what is refused, instead of describing a model.
    #[arg(long)]
    pub supported: bool,
    /// Never download: use the local Hugging Face cache only (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `inspect --supported`: the registry, in words.
fn supported(json: bool) -> anyhow::Result<String> {
    let mut o = String::new();
    use miascan::model::{arch, tokenizer};
    let archs: Vec<_> = arch::REGISTRY
        .iter()
        .map(|a| json!({"gguf": a.gguf, "checkpoint": a.hf, "parity": a.parity}))
        .collect();
    let toks: Vec<_> = tokenizer::support()
        .into_iter()
        .map(|(k, d)| json!({"tokenizer": k, "detail": d}))
        .collect();
    let refused: Vec<String> = tokenizer::refused()
        .into_iter()
        .chain(arch::refused())
        .collect();
    if json {
        let v = json!({"architectures": archs, "tokenizers": toks, "refused": refused});
        writeln!(o, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(o);
    }
    writeln!(
        o,
        "architectures (GGUF general.architecture | config.json model_type): parity"
    )?;
    for a in arch::REGISTRY {
        let g = if a.gguf.is_empty() {
            "-".to_string()
        } else {
            a.gguf.join(", ")
        };
        writeln!(o, "  {g} | {}: {}", a.hf.join(", "), a.parity)?;
    }
    writeln!(o, "tokenizers")?;
    for (k, d) in tokenizer::support() {
        writeln!(o, "  {k}: {d}")?;
    }
    writeln!(o, "refused")?;
    for r in refused {
        writeln!(o, "  {r}")?;
    }
    Ok(o)
}

/// What `inspect` prints, written in one piece (a closed pipe is `main`'s to handle).
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = if args.supported {
        supported(args.json)?
    } else {
        describe(&args)?
    };
    let mut out = Output::open(None)?;
    out.text(&text)?;
    out.finish()
}

fn describe(args: &Args) -> anyhow::Result<String> {
    let mut o = String::new();
    let spec = args.model.clone().unwrap_or_default();
    let model = Model::open(
        &spec,
        &miascan::model::LoadOptions {
            offline: args.offline,
            ..Default::default()
        },
    )?;
    let a = model.lm.describe();
    let t = &model.tokenizer;
    let info = json!({
        "path": spec,
        "identity": model.identity,
        "architecture": a.architecture,
        "parameters": model.parameters,
        "file_dtypes": model.file_dtypes,
        "layers": a.layers,
        "hidden": a.hidden,
        "heads": a.heads,
        "kv_heads": a.kv_heads,
        "head_dim": a.head_dim,
        "context_length": a.context_length,
        "sliding_window": a.sliding_window,
        "vocab_size": t.vocab_size(),
        "tokenizer": t.kind(),
        "vocab_hash": t.vocab_hash(),
        "bos_policy": t.bos_policy(),
    });
    if args.json {
        writeln!(o, "{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(o);
    }
    let millions = model.parameters as f64 / 1e6;
    writeln!(o, "model           {spec}")?;
    writeln!(o, "sha256          {}…", model.identity.sha256)?;
    if let Some(rev) = &model.identity.revision {
        writeln!(o, "revision        {rev}")?;
    }
    writeln!(o, "architecture    {}", a.architecture)?;
    writeln!(o, "parameters      {} ({millions:.1} M)", model.parameters)?;
    writeln!(o, "file dtypes     {}", model.file_dtypes)?;
    writeln!(
        o,
        "compute         {} on {}",
        model.identity.compute, model.identity.device
    )?;
    writeln!(o, "layers          {}", a.layers)?;
    writeln!(o, "hidden          {}", a.hidden)?;
    writeln!(
        o,
        "heads           {} (kv {}, head dim {})",
        a.heads, a.kv_heads, a.head_dim
    )?;
    writeln!(o, "context length  {}", a.context_length)?;
    if let Some(w) = a.sliding_window {
        writeln!(o, "sliding window  {w}")?;
    }
    writeln!(o, "vocabulary      {}", t.vocab_size())?;
    writeln!(o, "tokenizer       {}", t.kind())?;
    writeln!(o, "BOS policy      {}", t.bos_policy())?;
    Ok(o)
}
