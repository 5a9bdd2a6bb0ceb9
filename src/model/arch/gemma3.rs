//! Gemma 3: norms before and after both attention and MLP, per-head q/k RMS norms,
//! GELU-tanh MLP, embeddings scaled by sqrt(hidden), sliding-window layers interleaved with
//! global ones, each kind with its own RoPE base (1e6 global, 1e4 local by default).
//!
//! Norm weights: transformers' Gemma RMSNorm multiplies by `1 + w`; llama.cpp's converter
//! stores `w + 1`, so GGUF weights are used as they are and checkpoint weights get 1 added.
//! Which layers slide: `layer_types` in config.json (or `sliding_window_pattern`); in GGUF,
//! as llama.cpp reads it, every sixth layer is global unless the file says otherwise.

use super::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::{Norms, QkNormKind, Spec};
use crate::model::gguf::Gguf;
use crate::model::layers::Activation;

/// llama.cpp's default: layer `i` is global when `(i + 1) % 6 == 0`.
const PATTERN: usize = 6;

fn gemma(s: Spec) -> Spec {
    Spec {
        norms: Norms::PreAndPost,
        qk_norm: QkNormKind::PerHead,
        act: Activation::GeluTanh,
        // transformers keeps the scale in the weights' dtype: sqrt(hidden) rounded to f32
        embed_scale: Some((s.hidden as f32).sqrt() as f64),
        ..s
    }
}

pub fn gguf(g: &Gguf) -> Result<Spec> {
    let s = base_gguf(g, "gemma3")?;
    let Some(window) = s.window else {
        return Err(g.invalid("gemma3.attention.sliding_window is missing or 0".into()));
    };
    let layers = s.layers;
    Ok(gemma(Spec {
        local_rope_base: Some(g.f64_or("gemma3.rope.freq_base_swa", 10_000.0)?),
        rope_base: g.f64_or("gemma3.rope.freq_base", 1_000_000.0)?,
        window: Some(window),
        sliding_layers: (0..layers)
            .map(|i| !(i + 1).is_multiple_of(PATTERN))
            .collect(),
        ..s
    }))
}

pub fn hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    for k in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if c.f64_opt(k)?.is_some() {
            return Err(format!("gemma3_text with {k} is not supported"));
        }
    }
    // (the generic reader finds no top-level theta in the per-layer-type groups)
    let s = base_hf(c)?;
    let (global, _) = c.rope(Some("full_attention"))?;
    let (local, kind) = c.rope(Some("sliding_attention"))?;
    if let Some(kind) = kind.or(c.rope(Some("full_attention"))?.1) {
        return Err(format!("RoPE scaling '{kind}' is not supported yet"));
    }
    let local = local
        .filter(|_| {
            c.raw
                .get("rope_parameters")
                .and_then(|p| p.get("sliding_attention"))
                .is_some()
        })
        .or(c.f64_opt("rope_local_base_freq")?)
        .unwrap_or(10_000.0);
    let sliding_layers: Vec<bool> = match c.raw.get("layer_types").and_then(|v| v.as_array()) {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(format!("config.json layer_types has {t}")),
            })
            .collect::<std::result::Result<_, _>>()?,
        None => {
            let p = c
                .usize_opt("sliding_window_pattern")?
                .unwrap_or(PATTERN)
                .max(1);
            (0..s.layers).map(|i| !(i + 1).is_multiple_of(p)).collect()
        }
    };
    let scalar = c
        .f64_opt("query_pre_attn_scalar")?
        .unwrap_or(s.head_dim as f64);
    Ok(gemma(Spec {
        rope_base: global.unwrap_or(1_000_000.0),
        local_rope_base: Some(local),
        window: Some(c.usize("sliding_window")?),
        sliding_layers,
        attn_scale: 1.0 / scalar.sqrt(),
        norm_offset: 1.0,
        ..s
    }))
}
