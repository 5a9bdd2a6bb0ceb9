//! Parity of Hugging Face safetensors checkpoints with ../shared/golden/tiny/<arch>/golden.jsonl
//! (transformers f32, f64 soft-max): ids identical, |logp diff| <= 1e-4 per token.

mod common;

use miascan::input::{read_inputs, ReadOptions};
use miascan::model::Model;
use miascan::scorer::{ScoreOptions, Scorer};

fn check(arch: &str) {
    let dir = common::shared().join("golden/tiny").join(arch);
    let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    let passages = read_inputs(
        &[common::shared().join("golden/tiny/passages.jsonl")],
        &ReadOptions::default(),
    )
    .unwrap();
    let golden: Vec<common::Golden> = std::fs::read_to_string(dir.join("golden.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(passages.len(), golden.len());
    let opts = ScoreOptions {
        token_details: true,
        lowercase: false,
        ..Default::default()
    };
    let mut max_diff = 0f64;
    let mut i = 0;
    Scorer::new(&model, opts)
        .score_all(&passages, |r| {
            let g = &golden[i];
            i += 1;
            let d = r.details.as_ref().unwrap();
            assert_eq!(d.ids, g.ids, "{arch}: ids of {}", g.id);
            assert_eq!(d.stats.len(), g.logprobs.len());
            for (j, s) in d.stats.iter().enumerate() {
                let diff = (s.logp - g.logprobs[j]).abs();
                max_diff = max_diff.max(diff);
                assert!(
                    diff <= 1e-4,
                    "{arch}: {} token {j}: {} vs {}",
                    g.id,
                    s.logp,
                    g.logprobs[j]
                );
                assert!((s.mu - g.mu[j]).abs() <= 1e-4 && (s.sigma - g.sigma[j]).abs() <= 1e-4);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(i, golden.len());
    eprintln!("{arch}: max |logp diff| = {max_diff:.2e}");
}

#[test]
fn gpt2_safetensors() {
    check("gpt2");
}

#[test]
fn gpt_neox_safetensors_partial_rotary_parallel_residual() {
    check("gpt_neox");
}

#[test]
fn llama_safetensors() {
    check("llama");
}

#[test]
fn qwen2_safetensors() {
    check("qwen2");
}

#[test]
fn mistral_safetensors_with_sliding_window() {
    check("mistral");
}

#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let e = Model::load(d.path(), &candle_core::Device::Cpu).unwrap_err();
    assert!(matches!(e, miascan::Error::UnsupportedModel { .. }), "{e}");
    assert!(
        e.to_string().contains("mamba") && e.to_string().contains("llama"),
        "{e}"
    );
}
