//! The architectures, in one registry serving both formats: each entry names its GGUF
//! `general.architecture` values and its Hugging Face `model_type` values, and how to read
//! each format's hyper-parameters into a network. The RoPE decoders are one network
//! ([`crate::model::decoder`]); their files here state only what differs.

pub mod gemma;
pub mod gpt2;
pub mod gpt_neox;
pub mod llama;
pub mod olmo2;
pub mod phi3;
pub mod qwen;

use super::decoder::{Decoder, GgufWeights, HfWeights, Norms, QkNormKind, Spec};
use super::gguf::Gguf;
use super::layers::{Activation, RopeStyle};
use super::CausalLm;
use crate::error::{Error, Result};
use candle_core::Device;
use serde_json::Value;
use std::path::Path;

/// More layers than any model has: a corrupted count, refused before anything is sized by it.
pub const MAX_LAYERS: usize = 4096;

/// Reads a decoder's [`Spec`] from a GGUF file's metadata.
type FromGguf = fn(&Gguf) -> Result<Spec>;
/// Reads a decoder's [`Spec`] from a config.json (errors name the key).
type FromHf = fn(&HfConfig) -> std::result::Result<Spec, String>;
/// Loads a network of its own (GPT-2, GPT-NeoX) from a checkpoint folder, its weights kept
/// as stored like the decoders' (`--weights`).
type LoadHf = fn(&HfConfig, &mut HfWeights) -> Result<Box<dyn CausalLm>>;

/// Loads a network with its own config type (GPT-2, GPT-NeoX): config.json deserialised and
/// checked, then the weights read through `w`, every error naming the file.
fn load_own<C, M>(
    c: &HfConfig,
    w: &mut HfWeights,
    check: fn(&C) -> std::result::Result<(), String>,
    load: fn(C, &mut HfWeights) -> Result<M>,
) -> Result<Box<dyn CausalLm>>
where
    C: serde::de::DeserializeOwned,
    M: CausalLm + 'static,
{
    let cfg: C = serde_json::from_value(c.raw.clone())
        .map_err(|e| c.error(format!("{} config: {e}", c.model_type())))?;
    check(&cfg).map_err(|m| c.error(format!("{m} (not supported)")))?;
    Ok(Box::new(load(cfg, w)?))
}

/// How a checkpoint's tensors are read.
pub struct HfSource<'a> {
    pub files: &'a super::safetensors::SafeFiles,
    pub device: Device,
    pub dtype: candle_core::DType,
    pub residency: super::weight::Residency,
}

/// How an architecture is read from a format.
pub enum Reader {
    Decoder(FromHf),
    Own(LoadHf),
}

/// One architecture.
pub struct Arch {
    /// `general.architecture` values (GGUF).
    pub gguf: &'static [&'static str],
    pub from_gguf: Option<FromGguf>,
    /// `model_type` values (config.json).
    pub hf: &'static [&'static str],
    pub from_hf: Option<Reader>,
    /// Measured parity (max |logp diff| against transformers, f32, f64 soft-max), as the
    /// parity tests measure it; shown by `inspect --supported` and the README.
    pub parity: &'static str,
}

/// Every architecture miascan runs.
pub static REGISTRY: &[Arch] = &[
    Arch {
        gguf: &["llama"],
        from_gguf: Some(llama::gguf),
        hf: &["llama", "mistral"],
        from_hf: Some(Reader::Decoder(llama::hf)),
        parity: "GGUF: SmolLM2-135M 7.0e-5 (Q4_1 dequantised); checkpoints: tiny llama 8.8e-6, tiny mistral 7.0e-6; Llama 3.1 RoPE scaling: tiny llama31 checkpoint 4.2e-5, GGUF F32 4.5e-5",
    },
    Arch {
        gguf: &["qwen2"],
        from_gguf: Some(qwen::qwen2_gguf),
        hf: &["qwen2"],
        from_hf: Some(Reader::Decoder(qwen::qwen2_hf)),
        parity: "checkpoint 5.0e-6; GGUF F32 5.0e-6, Q8_0 6.3e-6 (tiny qwen2)",
    },
    Arch {
        gguf: &["qwen3"],
        from_gguf: Some(qwen::qwen3_gguf),
        hf: &["qwen3"],
        from_hf: Some(Reader::Decoder(qwen::qwen3_hf)),
        parity: "checkpoint 1.8e-5; GGUF F32 1.8e-5, Q8_0 1.7e-5 (tiny qwen3)",
    },
    Arch {
        gguf: &["gemma2"],
        from_gguf: Some(gemma::gemma2_gguf),
        hf: &["gemma2"],
        from_hf: Some(Reader::Decoder(gemma::gemma2_hf)),
        parity: "checkpoint 1.6e-5; GGUF F32 1.6e-5, Q8_0 1.7e-5 (tiny gemma2)",
    },
    Arch {
        gguf: &["gemma3"],
        from_gguf: Some(gemma::gemma3_gguf),
        hf: &["gemma3_text"],
        from_hf: Some(Reader::Decoder(gemma::gemma3_hf)),
        parity: "GGUF: Gemma 3 270M 6.7e-5 (Q4_K_M dequantised); tiny gemma3_text checkpoint 1.9e-5, GGUF F32 1.9e-5, Q8_0 2.2e-5",
    },
    Arch {
        gguf: &["olmo2"],
        from_gguf: Some(olmo2::gguf),
        hf: &["olmo2"],
        from_hf: Some(Reader::Decoder(olmo2::hf)),
        parity: "checkpoint 1.5e-5; GGUF F32 1.5e-5, Q8_0 1.6e-5 (tiny olmo2)",
    },
    Arch {
        gguf: &["phi3"],
        from_gguf: Some(phi3::gguf),
        hf: &["phi3"],
        from_hf: Some(Reader::Decoder(phi3::hf)),
        parity: "checkpoint 1.4e-5; GGUF F32 1.4e-5, Q8_0 1.8e-5 (tiny phi3)",
    },
    Arch {
        gguf: &[],
        from_gguf: None,
        hf: &["gpt2"],
        from_hf: Some(Reader::Own(gpt2::load)),
        parity: "checkpoint 1.5e-6 (tiny gpt2)",
    },
    Arch {
        gguf: &[],
        from_gguf: None,
        hf: &["gpt_neox"],
        from_hf: Some(Reader::Own(gpt_neox::load)),
        parity: "checkpoint 9.7e-6 (tiny gpt_neox)",
    },
];

/// What is refused, in words (for `inspect --supported` and the README).
pub fn refused() -> Vec<String> {
    vec![
        "any other architecture (refused naming the supported ones)".into(),
        "RoPE scaling other than Llama 3.1's llama3 (YaRN, linear, dynamic, Phi-3 longrope)".into(),
        "Qwen with use_sliding_window = true; OLMo with a sliding window (OLMo 3)".into(),
        "Gemma 3 with soft-capping; value heads of a different size than key heads".into(),
    ]
}

/// GGUF architectures, for messages, `inspect` and the README.
pub fn supported_gguf() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .flat_map(|a| a.gguf.iter().copied())
        .collect()
}

/// Hugging Face `model_type`s.
pub fn supported_hf() -> Vec<&'static str> {
    REGISTRY.iter().flat_map(|a| a.hf.iter().copied()).collect()
}

/// Loads the network a GGUF file describes.
pub fn load_gguf(g: &mut Gguf, device: &Device) -> Result<Box<dyn CausalLm>> {
    let arch = g.str("general.architecture")?.to_string();
    let from = REGISTRY
        .iter()
        .find(|a| a.gguf.contains(&arch.as_str()))
        .and_then(|a| a.from_gguf)
        .ok_or_else(|| {
            g.unsupported(format!(
                "architecture {} is not supported (supported GGUF architectures: {})",
                arch.escape_debug(),
                supported_gguf().join(", ")
            ))
        })?;
    let mut spec = from(g)?;
    if g.has_tensor("rope_freqs.weight") {
        let n = spec.rope_dim / 2;
        let f = g.tensor("rope_freqs.weight", &[n], &Device::Cpu)?;
        spec.rope_factors = Some(
            f.to_vec1::<f32>()
                .map_err(|e| g.invalid(format!("rope_freqs: {}", crate::error::plain(&e))))?,
        );
    }
    spec.validate()
        .map_err(|m| g.invalid(format!("{arch}: {m}")))?;
    let mut w = GgufWeights {
        g,
        device: device.clone(),
    };
    Ok(Box::new(Decoder::load(spec, &mut w)?))
}

/// Loads the network a checkpoint folder's config.json describes.
pub fn load_hf(dir: &Path, cfg: &HfConfig, src: HfSource) -> Result<Box<dyn CausalLm>> {
    let unsupported = |message: String| Error::UnsupportedModel {
        path: dir.to_path_buf(),
        message,
    };
    let model_type = cfg.model_type();
    let reader = REGISTRY
        .iter()
        .find(|a| a.hf.contains(&model_type))
        .and_then(|a| a.from_hf.as_ref())
        .ok_or_else(|| {
            unsupported(format!(
                "model_type {:?} is not supported (supported: {})",
                model_type,
                supported_hf().join(", ")
            ))
        })?;
    let mut w = HfWeights {
        files: src.files,
        device: src.device,
        dtype: src.dtype,
        residency: src.residency,
        dir: dir.to_path_buf(),
    };
    match reader {
        Reader::Own(load) => load(cfg, &mut w),
        Reader::Decoder(from) => {
            let spec = from(cfg).map_err(|m| cfg.error(m))?;
            spec.validate()
                .map_err(|m| cfg.error(format!("{model_type}: {m}")))?;
            Ok(Box::new(Decoder::load(spec, &mut w)?))
        }
    }
}

/// A config.json, read key by key so that a missing or wrong-typed field is an error
/// naming it.
pub struct HfConfig {
    pub path: std::path::PathBuf,
    pub raw: Value,
}

impl HfConfig {
    pub fn model_type(&self) -> &str {
        self.raw["model_type"].as_str().unwrap_or("")
    }

    /// An error about this file (unsupported or invalid: both name the file).
    pub fn error(&self, message: String) -> Error {
        if message.contains("not supported") {
            Error::UnsupportedModel {
                path: self.path.clone(),
                message,
            }
        } else {
            Error::InvalidModel {
                path: self.path.clone(),
                message,
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key).filter(|v| !v.is_null())
    }

    pub fn usize(&self, key: &str) -> std::result::Result<usize, String> {
        match self.get(key) {
            None => Err(format!("config.json has no {key}")),
            Some(v) => v
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| format!("config.json {key} = {v} is not a non-negative integer")),
        }
    }

    pub fn usize_opt(&self, key: &str) -> std::result::Result<Option<usize>, String> {
        self.get(key).map(|_| self.usize(key)).transpose()
    }

    pub fn f64(&self, key: &str) -> std::result::Result<f64, String> {
        match self.get(key) {
            None => Err(format!("config.json has no {key}")),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| format!("config.json {key} = {v} is not a number")),
        }
    }

    pub fn f64_opt(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        self.get(key).map(|_| self.f64(key)).transpose()
    }

    pub fn bool_or(&self, key: &str, default: bool) -> std::result::Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("config.json {key} = {v} is not a boolean")),
        }
    }

    pub fn str_opt(&self, key: &str) -> std::result::Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("config.json {key} = {v} is not a string")),
        }
    }

    /// `rope_parameters` (transformers ≥ 5) or `rope_scaling` / `rope_theta` (older):
    /// `(theta, scaling type)` of the group `group` (Gemma 3 keeps one per layer type).
    pub fn rope(
        &self,
        group: Option<&str>,
    ) -> std::result::Result<(Option<f64>, Option<String>), String> {
        let params = self.get("rope_parameters");
        let params = match (params, group) {
            (Some(p), Some(g)) if p.get(g).is_some() => p.get(g),
            (p, _) => p,
        };
        let theta = match params.and_then(|p| p.get("rope_theta")) {
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| format!("config.json rope_theta = {v} is not a number"))?,
            ),
            None => self.f64_opt("rope_theta")?,
        };
        let kind = params
            .and_then(|p| p.get("rope_type"))
            .or_else(|| {
                self.get("rope_scaling")
                    .and_then(|s| s.get("rope_type").or(s.get("type")))
            })
            .and_then(Value::as_str)
            .filter(|t| *t != "default")
            .map(String::from);
        Ok((theta, kind))
    }
}

/// The decoder shape every Hugging Face RoPE model states the same way; architecture files
/// change what differs.
pub fn base_hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    let (theta, scaling) = c.rope(None)?;
    let hidden = c.usize("hidden_size")?;
    let heads = c.usize("num_attention_heads")?;
    let kv_heads = c.usize_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = match c.usize_opt("head_dim")? {
        Some(d) => d,
        None if heads > 0 => hidden / heads,
        None => return Err("num_attention_heads is 0".into()),
    };
    if head_dim == 0 || head_dim > 1 << 12 {
        return Err(format!("config.json head_dim = {head_dim} is out of range"));
    }
    let rope_factors = match scaling.as_deref() {
        None => None,
        Some("llama3") => Some(llama3_factors(c, theta.unwrap_or(10_000.0), head_dim)?),
        Some(kind) => return Err(format!("RoPE scaling '{kind}' is not supported yet")),
    };
    let act = match c
        .str_opt("hidden_act")?
        .or(c.str_opt("hidden_activation")?)
        .unwrap_or("silu")
    {
        "silu" => Activation::Silu,
        "gelu_pytorch_tanh" | "gelu_new" => Activation::GeluTanh,
        other => return Err(format!("hidden_act {other} is not supported")),
    };
    let layers = c.usize("num_hidden_layers")?;
    if layers > MAX_LAYERS {
        return Err(format!(
            "config.json num_hidden_layers = {layers} is out of range"
        ));
    }
    Ok(Spec {
        arch: c.model_type().to_string(),
        layers,
        hidden,
        ffn: c.usize("intermediate_size")?,
        heads,
        kv_heads,
        head_dim,
        rope_dim: head_dim,
        rope_base: theta.unwrap_or(10_000.0),
        local_rope_base: None,
        rope_style: RopeStyle::Halves,
        rope_factors,
        rms_eps: c.f64("rms_norm_eps")?,
        context_length: c.usize("max_position_embeddings")?,
        vocab: c.usize("vocab_size")?,
        norms: Norms::Pre,
        qk_norm: QkNormKind::None,
        qkv_bias: c.bool_or("attention_bias", false)?,
        fused_qkv: false,
        fused_gate_up: false,
        act,
        embed_scale: None,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        window: None,
        sliding_layers: vec![false; layers],
        norm_offset: 0.0,
        attn_softcap: None,
        final_softcap: None,
    })
}

/// Llama 3.1's frequency divisors from `rope_parameters` (or `rope_scaling`): frequencies
/// whose wavelength exceeds the original context are divided by `factor`, short ones kept,
/// those between blended (transformers' `_compute_llama3_parameters`, which llama.cpp's
/// converter writes as `rope_freqs`).
fn llama3_factors(c: &HfConfig, base: f64, dim: usize) -> std::result::Result<Vec<f32>, String> {
    let p = c
        .get("rope_parameters")
        .or(c.get("rope_scaling"))
        .ok_or("llama3 RoPE scaling without its parameters")?;
    let num = |k: &str, default: Option<f64>| -> std::result::Result<f32, String> {
        match p.get(k) {
            Some(v) => v
                .as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| format!("config.json rope {k} = {v} is not a number")),
            None => default
                .map(|x| x as f32)
                .ok_or_else(|| format!("config.json rope parameters lack {k}")),
        }
    };
    let factor = num("factor", None)?;
    let low = num("low_freq_factor", Some(1.0))?;
    let high = num("high_freq_factor", Some(4.0))?;
    let old = num("original_max_position_embeddings", None)?;
    if !(factor > 0.0 && low > 0.0 && high > low && old > 0.0) {
        return Err(format!(
            "llama3 RoPE parameters out of range: factor {factor}, low {low}, high {high}, original context {old}"
        ));
    }
    let (low_wl, high_wl) = (old / low, old / high);
    let base = base as f32;
    Ok((0..dim / 2)
        .map(|i| {
            let freq = 1.0 / base.powf((2 * i) as f32 / dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < high_wl {
                1.0
            } else if wavelen > low_wl {
                factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect())
}

/// The decoder shape as llama.cpp's GGUF metadata states it under `ARCH.*`.
pub fn base_gguf(g: &Gguf, arch: &str) -> Result<Spec> {
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = g.usize(&key("embedding_length"))?;
    let heads = g.usize(&key("attention.head_count"))?;
    if heads == 0 {
        return Err(g.invalid(format!("{} is 0", key("attention.head_count"))));
    }
    let kv_heads = g.usize_or(&key("attention.head_count_kv"), heads)?;
    let head_dim = g.usize_or(&key("attention.key_length"), hidden / heads)?;
    let v_dim = g.usize_or(&key("attention.value_length"), head_dim)?;
    if v_dim != head_dim {
        return Err(g.unsupported(format!(
            "value length {v_dim} differs from key length {head_dim}: not supported"
        )));
    }
    let rope_dim = g.usize_or(&key("rope.dimension_count"), head_dim)?;
    if let Some(kind) = g.str_opt(&key("rope.scaling.type"))? {
        if kind != "none" {
            return Err(g.unsupported(format!("RoPE scaling '{kind}' is not supported yet")));
        }
    }
    for k in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if g.has(&key(k)) && arch != "gemma2" {
            return Err(g.unsupported(format!("{} is not supported", key(k))));
        }
    }
    let rope_base = g.f64_or(&key("rope.freq_base"), 10_000.0)?;
    let rms_eps = g.f64(&key("attention.layer_norm_rms_epsilon"))?;
    let bad = |k: &str, why: String| Err(g.invalid(format!("{} {why}", key(k))));
    if !(rope_base.is_finite() && rope_base > 1.0 && rope_base <= 1e12) {
        return bad(
            "rope.freq_base",
            format!("= {rope_base} is out of range (1, 1e12]"),
        );
    }
    if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps <= 0.1) {
        return bad(
            "attention.layer_norm_rms_epsilon",
            format!("= {rms_eps} is out of range (0, 0.1]"),
        );
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return bad(
            "attention.head_count_kv",
            format!("= {kv_heads} does not divide attention.head_count = {heads}"),
        );
    }
    if rope_dim == 0 || rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
        return bad(
            "rope.dimension_count",
            format!("= {rope_dim} does not fit the head dimension {head_dim}"),
        );
    }
    let layers = g.usize(&key("block_count"))?;
    if layers > MAX_LAYERS {
        return bad("block_count", format!("= {layers} is out of range"));
    }
    let window = g.usize_or(&key("attention.sliding_window"), 0)?;
    Ok(Spec {
        arch: arch.to_string(),
        layers,
        hidden,
        ffn: g.usize(&key("feed_forward_length"))?,
        heads,
        kv_heads,
        head_dim,
        rope_dim,
        rope_base,
        local_rope_base: None,
        rope_style: RopeStyle::Halves,
        rope_factors: None,
        rms_eps,
        context_length: g.usize(&key("context_length"))?,
        vocab: g.tensor_shape("token_embd.weight")?[0],
        norms: Norms::Pre,
        qk_norm: QkNormKind::None,
        qkv_bias: false,
        fused_qkv: false,
        fused_gate_up: false,
        act: Activation::Silu,
        embed_scale: None,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        window: (window > 0).then_some(window),
        sliding_layers: vec![window > 0; layers],
        norm_offset: 0.0,
        attn_softcap: None,
        final_softcap: None,
    })
}
