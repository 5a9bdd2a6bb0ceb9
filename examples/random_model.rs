//! Writes a Llama-shaped model with random weights at a real model's size, to measure memory
//! and speed at scale (parity is checked on the trained models, not here):
//!
//! - `DIR/random-1b-q8_0.gguf`: GGUF, Q8_0 matrices, F32 norms, with SmolLM2's tokenizer
//!   (its `tokenizer.ggml.*` metadata copied from the SmolLM2 GGUF);
//! - `DIR/random-1b-bf16/`: a Hugging Face folder (config.json, bf16 model.safetensors,
//!   tokenizer.json copied from the tiny test checkpoints).
//!
//! usage: cargo run --release --example random_model -- SMOLLM2.gguf TOKENIZER.json DIR
//! (scripts/bench/bench-memory.sh runs it; about 1.07 B weights each.)

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

const HIDDEN: usize = 2048;
const FFN: usize = 5632;
const HEADS: usize = 32;
const KV_HEADS: usize = 4;
const LAYERS_GGUF: usize = 22;
const LAYERS_HF: usize = 24;

/// `(name, shape [rows, cols])` of every matrix of a layer, GGUF and HF names.
fn layer(i: usize) -> Vec<(String, String, [usize; 2])> {
    let kv = HIDDEN / HEADS * KV_HEADS;
    [
        ("attn_q", "self_attn.q_proj", [HIDDEN, HIDDEN]),
        ("attn_k", "self_attn.k_proj", [kv, HIDDEN]),
        ("attn_v", "self_attn.v_proj", [kv, HIDDEN]),
        ("attn_output", "self_attn.o_proj", [HIDDEN, HIDDEN]),
        ("ffn_gate", "mlp.gate_proj", [FFN, HIDDEN]),
        ("ffn_up", "mlp.up_proj", [FFN, HIDDEN]),
        ("ffn_down", "mlp.down_proj", [HIDDEN, FFN]),
    ]
    .into_iter()
    .map(|(g, h, s)| {
        (
            format!("blk.{i}.{g}.weight"),
            format!("model.layers.{i}.{h}.weight"),
            s,
        )
    })
    .collect()
}

fn random(shape: [usize; 2]) -> candle_core::Result<Tensor> {
    Tensor::randn(0f32, 0.02, (shape[0], shape[1]), &Device::Cpu)
}

fn main() -> candle_core::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [smollm, tokenizer, dir] = args.as_slice() else {
        eprintln!("usage: random_model SMOLLM2.gguf TOKENIZER.json DIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(dir)?;

    // GGUF
    let mut f = std::fs::File::open(smollm)?;
    let src = gguf_file::Content::read(&mut f)?;
    let vocab = match src.metadata.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => a.len(),
        _ => candle_core::bail!("no vocabulary in {}", smollm.display()),
    };
    let mut meta: Vec<(String, Value)> = src
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let u = |x: usize| Value::U32(x as u32);
    meta.extend([
        ("general.architecture".into(), Value::String("llama".into())),
        (
            "general.name".into(),
            Value::String("random 1B (miascan fixture)".into()),
        ),
        ("llama.block_count".into(), u(LAYERS_GGUF)),
        ("llama.context_length".into(), u(2048)),
        ("llama.embedding_length".into(), u(HIDDEN)),
        ("llama.feed_forward_length".into(), u(FFN)),
        ("llama.attention.head_count".into(), u(HEADS)),
        ("llama.attention.head_count_kv".into(), u(KV_HEADS)),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
    ]);
    let ones =
        |n: usize| QTensor::quantize(&Tensor::ones(n, DType::F32, &Device::Cpu)?, GgmlDType::F32);
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            QTensor::quantize(&random([vocab, HIDDEN])?, GgmlDType::Q8_0)?,
        ),
        ("output_norm.weight".into(), ones(HIDDEN)?),
    ];
    for i in 0..LAYERS_GGUF {
        tensors.push((format!("blk.{i}.attn_norm.weight"), ones(HIDDEN)?));
        tensors.push((format!("blk.{i}.ffn_norm.weight"), ones(HIDDEN)?));
        for (g, _, s) in layer(i) {
            tensors.push((g, QTensor::quantize(&random(s)?, GgmlDType::Q8_0)?));
        }
    }
    let params: usize = tensors.iter().map(|(_, t)| t.shape().elem_count()).sum();
    let path = dir.join("random-1b-q8_0.gguf");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut out, &m, &t)?;
    drop(out);
    drop(tensors);
    eprintln!("{}: {params} weights", path.display());

    // bf16 checkpoint folder
    let hf = dir.join("random-1b-bf16");
    std::fs::create_dir_all(&hf)?;
    let hf_vocab = 512;
    let bf = |t: Tensor| t.to_dtype(DType::BF16);
    let mut st: HashMap<String, Tensor> = HashMap::new();
    st.insert(
        "model.embed_tokens.weight".into(),
        bf(random([hf_vocab, HIDDEN])?)?,
    );
    st.insert(
        "model.norm.weight".into(),
        bf(Tensor::ones(HIDDEN, DType::F32, &Device::Cpu)?)?,
    );
    for i in 0..LAYERS_HF {
        for n in ["input_layernorm", "post_attention_layernorm"] {
            let ones = Tensor::ones(HIDDEN, DType::F32, &Device::Cpu)?;
            st.insert(format!("model.layers.{i}.{n}.weight"), bf(ones)?);
        }
        for (_, h, s) in layer(i) {
            st.insert(h, bf(random(s)?)?);
        }
    }
    let params: usize = st.values().map(|t| t.elem_count()).sum();
    candle_core::safetensors::save(&st, hf.join("model.safetensors"))?;
    let config = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS_HF,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": hf_vocab, "tie_word_embeddings": true, "hidden_act": "silu",
        "torch_dtype": "bfloat16"
    });
    std::fs::write(hf.join("config.json"), config.to_string())?;
    std::fs::copy(tokenizer, hf.join("tokenizer.json"))?;
    eprintln!("{}: {params} weights", hf.display());
    Ok(())
}
