//! Hugging Face checkpoint folders: `config.json`, `*.safetensors` (one file, or shards
//! listed in `model.safetensors.index.json`) and `tokenizer.json`. The architecture is chosen
//! by `config.json`'s `model_type`.

use super::arch::{self, HfConfig};
use super::{CausalLm, Tokenizer};
use crate::error::{Error, Result};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

fn invalid(dir: &Path, message: String) -> Error {
    Error::InvalidModel {
        path: dir.to_path_buf(),
        message,
    }
}

/// The weight files of a checkpoint folder, in a stable order.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| Error::ModelIo {
            path: index.clone(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| invalid(&index, format!("malformed index: {e}")))?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| invalid(&index, "no weight_map".into()))?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        let files: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(invalid(
                dir,
                format!("shard {} listed in the index is missing", missing.display()),
            ));
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(invalid(
        dir,
        "no model.safetensors or model.safetensors.index.json".into(),
    ))
}

/// A loaded checkpoint folder.
pub struct Checkpoint {
    pub tokenizer: Tokenizer,
    pub lm: Box<dyn CausalLm>,
    /// The safetensors files read, in name order.
    pub files: Vec<PathBuf>,
    /// Number of weights in those files.
    pub parameters: u64,
}

/// Loads the network and the tokenizer of a checkpoint folder (in `dtype` on `device`).
pub fn load(
    dir: &Path,
    device: &Device,
    dtype: DType,
    residency: super::weight::Residency,
) -> Result<Checkpoint> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::ModelIo {
        path: cfg_path.clone(),
        source,
    })?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| invalid(&cfg_path, format!("malformed JSON: {e}")))?;
    let cfg = HfConfig {
        path: cfg_path.clone(),
        raw,
    };
    let model_type = cfg.model_type().to_string();
    if !arch::supported_hf().contains(&model_type.as_str()) {
        return Err(Error::UnsupportedModel {
            path: dir.to_path_buf(),
            message: format!(
                "model_type {model_type:?} is not supported (supported: {})",
                arch::supported_hf().join(", ")
            ),
        });
    }
    let tokenizer = Tokenizer::from_json_file(&dir.join("tokenizer.json"))?;
    let files = weight_files(dir)?;
    let st = super::safetensors::SafeFiles::open(&files)?;
    let parameters = st.parameters();
    let src = arch::HfSource {
        files: &st,
        device: device.clone(),
        dtype,
        residency,
    };
    let lm: Box<dyn CausalLm> = arch::load_hf(dir, &cfg, src)?;
    Ok(Checkpoint {
        tokenizer,
        lm,
        files,
        parameters,
    })
}
