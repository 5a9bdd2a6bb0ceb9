//! Gemma 2 and 3: norms before and after both attention and MLP, GELU-tanh MLP, embeddings
//! scaled by sqrt(hidden), sliding-window layers interleaved with global ones. Gemma 3 adds
//! per-head q/k RMS norms and a RoPE base per layer kind (1e6 global, 1e4 local by default);
//! Gemma 2 instead soft-caps the attention scores and the logits, and alternates sliding and
//! global layers (even layers slide).
//!
//! Norm weights: transformers' Gemma RMSNorm multiplies by `1 + w`; llama.cpp's converter
//! stores `w + 1`, so GGUF weights are used as they are and checkpoint weights get 1 added.
//! Which layers slide: `layer_types` in config.json (or `sliding_window_pattern`); in GGUF,
//! as llama.cpp reads it, every sixth (Gemma 3) or second (Gemma 2) layer is global.

use super::config::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::{Norms, QkNormKind, Spec};
use crate::model::gguf::Gguf;
use crate::model::layers::Activation;

/// llama.cpp's default Gemma 3 layout: layer `i` is global when `(i + 1) % 6 == 0`.
const GEMMA3_PATTERN: usize = 6;
/// Gemma 2: every second layer is global.
const GEMMA2_PATTERN: usize = 2;

/// What both generations share.
fn gemma(s: Spec) -> Spec {
    Spec {
        norms: Norms::PreAndPost,
        act: Activation::GeluTanh,
        // transformers keeps the scale in the weights' dtype: sqrt(hidden) rounded to f32
        embed_scale: Some((s.hidden as f32).sqrt() as f64),
        ..s
    }
}

fn pattern(layers: usize, every: usize) -> Vec<bool> {
    (0..layers)
        .map(|i| !(i + 1).is_multiple_of(every))
        .collect()
}

/// Which layers slide in a checkpoint: `layer_types`, else every `every`-th layer is global.
fn layer_kinds(
    c: &HfConfig,
    layers: usize,
    every: usize,
) -> std::result::Result<Vec<bool>, String> {
    match c.raw.get("layer_types").and_then(|v| v.as_array()) {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(format!("config.json layer_types has {t}")),
            })
            .collect(),
        None => {
            let p = c
                .usize_opt("sliding_window_pattern")?
                .unwrap_or(every)
                .max(1);
            Ok(pattern(layers, p))
        }
    }
}

fn window(g: &Gguf, s: &Spec, arch: &str) -> Result<usize> {
    s.window
        .ok_or_else(|| g.invalid(format!("{arch}.attention.sliding_window is missing or 0")))
}

pub fn gemma3_gguf(g: &Gguf) -> Result<Spec> {
    let s = base_gguf(g, "gemma3")?;
    let w = window(g, &s, "gemma3")?;
    Ok(gemma(Spec {
        qk_norm: QkNormKind::PerHead,
        local_rope_base: Some(g.f64_or("gemma3.rope.freq_base_swa", 10_000.0)?),
        rope_base: g.f64_or("gemma3.rope.freq_base", 1_000_000.0)?,
        window: Some(w),
        sliding_layers: pattern(s.layers, GEMMA3_PATTERN),
        ..s
    }))
}

pub fn gemma3_hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    for k in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if c.f64_opt(k)?.is_some() {
            return Err(format!("gemma3_text with {k} is not supported"));
        }
    }
    // (the generic reader finds no top-level theta in the per-layer-type groups)
    let s = base_hf(c)?;
    let (global, global_kind) = c.rope(Some("full_attention"))?;
    let (local, local_kind) = c.rope(Some("sliding_attention"))?;
    if let Some(kind) = local_kind.or(global_kind) {
        return Err(format!("RoPE scaling '{kind}' is not supported yet"));
    }
    let grouped = c
        .raw
        .get("rope_parameters")
        .and_then(|p| p.get("sliding_attention"))
        .is_some();
    let local = local
        .filter(|_| grouped)
        .or(c.f64_opt("rope_local_base_freq")?)
        .unwrap_or(10_000.0);
    let sliding_layers = layer_kinds(c, s.layers, GEMMA3_PATTERN)?;
    let scalar = c
        .f64_opt("query_pre_attn_scalar")?
        .unwrap_or(s.head_dim as f64);
    Ok(gemma(Spec {
        qk_norm: QkNormKind::PerHead,
        rope_base: global.unwrap_or(1_000_000.0),
        local_rope_base: Some(local),
        window: Some(c.usize("sliding_window")?),
        sliding_layers,
        attn_scale: 1.0 / scalar.sqrt(),
        norm_offset: 1.0,
        ..s
    }))
}

pub fn gemma2_gguf(g: &Gguf) -> Result<Spec> {
    let s = base_gguf(g, "gemma2")?;
    let w = window(g, &s, "gemma2")?;
    let cap = |k: &str| -> Result<Option<f64>> {
        let key = format!("gemma2.{k}");
        Ok(if g.has(&key) {
            Some(g.f64(&key)?)
        } else {
            None
        })
    };
    Ok(gemma(Spec {
        attn_softcap: cap("attn_logit_softcapping")?,
        final_softcap: cap("final_logit_softcapping")?,
        window: Some(w),
        sliding_layers: pattern(s.layers, GEMMA2_PATTERN),
        ..s
    }))
}

pub fn gemma2_hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    let s = base_hf(c)?;
    let sliding_layers = layer_kinds(c, s.layers, GEMMA2_PATTERN)?;
    let scalar = c
        .f64_opt("query_pre_attn_scalar")?
        .unwrap_or(s.head_dim as f64);
    Ok(gemma(Spec {
        attn_softcap: c.f64_opt("attn_logit_softcapping")?,
        final_softcap: c.f64_opt("final_logit_softcapping")?,
        window: Some(c.usize("sliding_window")?),
        sliding_layers,
        attn_scale: 1.0 / scalar.sqrt(),
        norm_offset: 1.0,
        ..s
    }))
}
