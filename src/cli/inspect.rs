//! `miascan inspect MODEL`.

use miascan::model::{parse_device, Model};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a .gguf file, a checkpoint folder, or a hub id org/name[@revision].
    pub model: String,
    /// Never download: use the local Hugging Face cache only (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::open(&args.model, args.offline, &parse_device("cpu")?)?;
    let a = model.lm.describe();
    let t = &model.tokenizer;
    let info = json!({
        "path": args.model,
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
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let millions = model.parameters as f64 / 1e6;
    println!("model           {}", args.model);
    println!("sha256          {}…", model.identity.sha256);
    if let Some(rev) = &model.identity.revision {
        println!("revision        {rev}");
    }
    println!("architecture    {}", a.architecture);
    println!("parameters      {} ({millions:.1} M)", model.parameters);
    println!("file dtypes     {}", model.file_dtypes);
    println!(
        "compute         {} on {}",
        model.identity.compute, model.identity.device
    );
    println!("layers          {}", a.layers);
    println!("hidden          {}", a.hidden);
    println!(
        "heads           {} (kv {}, head dim {})",
        a.heads, a.kv_heads, a.head_dim
    );
    println!("context length  {}", a.context_length);
    if let Some(w) = a.sliding_window {
        println!("sliding window  {w}");
    }
    println!("vocabulary      {}", t.vocab_size());
    println!("tokenizer       {}", t.kind());
    println!("BOS policy      {}", t.bos_policy());
    Ok(())
}
