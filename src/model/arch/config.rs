//! What the architectures' files share: a config.json read key by key ([`HfConfig`]), the
//! hyper-parameters every RoPE decoder reads the same way from either format ([`base_hf`],
//! [`base_gguf`]), and the loader of networks with a config type of their own. The registry
//! (`mod.rs`) imports the members, the members import this file, and this file imports
//! neither: arrows in the folder run one way.

use crate::error::{Error, Result};
use crate::model::decoder::{HfWeights, Norms, QkNormKind, Spec};
use crate::model::gguf::Gguf;
use crate::model::layers::{Activation, RopeStyle};
use crate::model::CausalLm;
use serde_json::Value;

/// More layers than any model has: a corrupted count, refused before anything is sized by it.
pub const MAX_LAYERS: usize = 4096;

/// Loads a network with its own config type (GPT-2, GPT-NeoX): config.json deserialised and
/// checked, then the weights read through `w`, every error naming the file.
pub(super) fn load_own<C, M>(
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
