//! Llama (and SmolLM2, and Mistral, whose GGUF files say `llama`): the plain pre-norm RoPE
//! decoder with a SwiGLU MLP. Differences: GGUF q/k rows were permuted by llama.cpp's
//! converter so that rotary pairs are adjacent (interleaved rotation); Hugging Face
//! `attention_bias` adds q/k/v biases; Mistral's sliding window covers every layer.

use super::config::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::Spec;
use crate::model::gguf::Gguf;
use crate::model::layers::RopeStyle;

pub fn gguf(g: &Gguf) -> Result<Spec> {
    Ok(Spec {
        rope_style: RopeStyle::Interleaved,
        // llama.cpp ignores a window in `llama` files (Mistral 7B v0.1's 4,096 keys)
        window: None,
        sliding_layers: vec![false; g.usize("llama.block_count")?],
        ..base_gguf(g, "llama")?
    })
}

pub fn hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    let s = base_hf(c)?;
    let window = c.usize_opt("sliding_window")?;
    Ok(Spec {
        window,
        sliding_layers: vec![window.is_some(); s.layers],
        ..s
    })
}
