//! Qwen 2 and Qwen 3: the Llama decoder with q/k/v biases (Qwen 2) or per-head q/k RMS norms
//! and no biases (Qwen 3). Their GGUF q/k rows are not permuted (half-split rotation). The
//! sliding window applies only with `use_sliding_window`, which no released model sets.

use super::config::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::{QkNormKind, Spec};
use crate::model::gguf::Gguf;

fn no_window(c: &HfConfig) -> std::result::Result<(), String> {
    if c.bool_or("use_sliding_window", false)? {
        return Err(format!(
            "{} with use_sliding_window = true is not supported yet",
            c.model_type()
        ));
    }
    Ok(())
}

pub fn qwen2_gguf(g: &Gguf) -> Result<Spec> {
    Ok(Spec {
        qkv_bias: true,
        ..base_gguf(g, "qwen2")?
    })
}

pub fn qwen2_hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    no_window(c)?;
    Ok(Spec {
        qkv_bias: true,
        ..base_hf(c)?
    })
}

pub fn qwen3_gguf(g: &Gguf) -> Result<Spec> {
    Ok(Spec {
        qk_norm: QkNormKind::PerHead,
        ..base_gguf(g, "qwen3")?
    })
}

pub fn qwen3_hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    no_window(c)?;
    Ok(Spec {
        qk_norm: QkNormKind::PerHead,
        ..base_hf(c)?
    })
}
