//! The architectures, in one registry serving both formats: each entry names its GGUF
//! `general.architecture` values and its Hugging Face `model_type` values, and how to read
//! each format's hyper-parameters into a network. The RoPE decoders are one network
//! ([`crate::model::decoder`]); their files here state only what differs.

pub mod config;
pub mod gemma;
pub mod gpt2;
pub mod gpt_neox;
pub mod llama;
pub mod olmo2;
pub mod phi3;
pub mod qwen;

use super::decoder::{Decoder, GgufWeights, HfWeights, Spec};
use super::gguf::Gguf;
use super::CausalLm;
use crate::error::{Error, Result};
use candle_core::Device;
pub use config::HfConfig;
use std::path::Path;

/// Reads a decoder's [`Spec`] from a GGUF file's metadata.
type FromGguf = fn(&Gguf) -> Result<Spec>;
/// Reads a decoder's [`Spec`] from a config.json (errors name the key).
type FromHf = fn(&HfConfig) -> std::result::Result<Spec, String>;
/// Loads a network of its own (GPT-2, GPT-NeoX) from a checkpoint folder, its weights kept
/// as stored like the decoders' (`--weights`).
type LoadHf = fn(&HfConfig, &mut HfWeights) -> Result<Box<dyn CausalLm>>;

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
