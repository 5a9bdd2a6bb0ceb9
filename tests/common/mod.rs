//! Helpers shared by the integration tests: where the models and the goldens are.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the repository (CI puts it there).
pub fn shared() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.is_dir(),
        "../shared is missing beside the repository: {}",
        p.display()
    );
    p
}

/// A model from the cache scripts/fetch-models.sh fills. Absent = a failure, not a skip:
/// CI must never pass without having run the real-model tests.
pub fn model(file: &str) -> PathBuf {
    let dir = std::env::var_os("MIASCAN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/miascan/models")
        });
    let p = dir.join(file);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-models.sh all",
        p.display()
    );
    p
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// One golden line.
#[derive(Debug, serde::Deserialize)]
pub struct Golden {
    pub id: String,
    pub ids: Vec<u32>,
    pub zlib_bytes: usize,
    pub logprobs: Vec<f64>,
    pub mu: Vec<f64>,
    pub sigma: Vec<f64>,
    pub scores: Option<std::collections::HashMap<String, Option<f64>>>,
}

pub fn goldens(name: &str) -> Vec<Golden> {
    let text = std::fs::read_to_string(shared().join("golden").join(name)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
