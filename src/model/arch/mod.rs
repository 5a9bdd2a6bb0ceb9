//! One file per architecture: its `Config` (from the file's metadata), `load`, `forward`.

pub mod gemma3;
pub mod gpt2;
pub mod gpt_neox;
pub mod llama;

use super::gguf::Gguf;
use super::CausalLm;
use crate::error::Result;
use candle_core::Device;

/// Architectures a GGUF file may declare in `general.architecture`.
pub const SUPPORTED_GGUF: &[&str] = &["llama", "gemma3"];

/// Loads the network a GGUF file describes.
pub fn load_gguf(g: &mut Gguf, device: &Device) -> Result<Box<dyn CausalLm>> {
    let arch = g.str("general.architecture")?.to_string();
    match arch.as_str() {
        "llama" => Ok(Box::new(llama::Llama::load_gguf(g, device)?)),
        "gemma3" => Ok(Box::new(gemma3::Gemma3::load_gguf(g, device)?)),
        other => Err(g.unsupported(format!(
            "architecture {other} is not supported (supported GGUF architectures: {})",
            SUPPORTED_GGUF.join(", ")
        ))),
    }
}
