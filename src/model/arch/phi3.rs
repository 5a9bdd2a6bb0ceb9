//! Phi-3: the Llama decoder with fused projections in both formats (`qkv_proj` /
//! `attn_qkv` holding q, k, v rows in that order; `gate_up_proj` / `ffn_up` holding gate
//! then up) and an optional partial rotation. Long-context variants (`longrope` scaling) are
//! refused.

use super::config::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::Spec;
use crate::model::gguf::Gguf;

pub fn gguf(g: &Gguf) -> Result<Spec> {
    if g.has("phi3.rope.scaling.attn_factor") || g.has("rope_factors_long.weight") {
        return Err(
            g.unsupported("Phi-3 with long-context RoPE factors is not supported yet".into())
        );
    }
    Ok(Spec {
        fused_qkv: true,
        fused_gate_up: true,
        ..base_gguf(g, "phi3")?
    })
}

pub fn hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    let s = base_hf(c)?;
    let factor = match c
        .raw
        .get("rope_parameters")
        .and_then(|p| p.get("partial_rotary_factor"))
    {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("config.json partial_rotary_factor = {v} is not a number"))?,
        None => c.f64_opt("partial_rotary_factor")?.unwrap_or(1.0),
    };
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(format!(
            "config.json partial_rotary_factor = {factor} is out of range"
        ));
    }
    let window = c.usize_opt("sliding_window")?;
    Ok(Spec {
        fused_qkv: true,
        fused_gate_up: true,
        rope_dim: (s.head_dim as f64 * factor) as usize,
        window,
        sliding_layers: vec![window.is_some(); s.layers],
        ..s
    })
}
