//! Weights kept as stored (quantised blocks, bf16) and expanded layer by layer give the same
//! numbers as weights expanded to f32 at load: the default path is exact.
use crate::common;

use candle_core::{DType, Device};
use miascan::input::{read_inputs, ReadOptions};
use miascan::model::{Model, Residency};
use miascan::scorer::{ScoreOptions, Scorer};
use std::path::Path;

fn logprobs(model: &Model, passages: &Path) -> Vec<Vec<f64>> {
    let ps = read_inputs(&[passages.to_path_buf()], &ReadOptions::default()).unwrap();
    let opts = ScoreOptions {
        token_details: true,
        lowercase: false,
        ..Default::default()
    };
    let mut out = Vec::new();
    let engine = opts.local_engine(model);
    Scorer::new(&engine, opts)
        .score_all(&ps, |r| {
            out.push(r.token_logprobs.unwrap());
            Ok(())
        })
        .unwrap();
    out
}

fn max_diff(path: &Path, passages: &Path) -> f64 {
    let load = |r| {
        Model::load_with(
            path,
            &miascan::model::LoadOptions {
                residency: r,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let (a, b) = (load(Residency::Stored), load(Residency::Expanded));
    let (x, y) = (logprobs(&a, passages), logprobs(&b, passages));
    assert_eq!(x.len(), y.len());
    let mut max = 0f64;
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p.len(), q.len(), "one log-prob per token in both");
        for (u, v) in p.iter().zip(q) {
            // a NaN on either side is a failure, never a difference of 0 (f64::max drops it)
            assert!(
                u.is_finite() && v.is_finite(),
                "non-finite log-prob: {u} vs {v}"
            );
            max = max.max((u - v).abs());
        }
    }
    max
}

#[test]
fn quantised_gguf_kept_in_blocks_equals_expanded() {
    let d = max_diff(
        &common::model(common::SMOLLM2),
        &common::golden().join("corpus.jsonl"),
    );
    eprintln!("SmolLM2 Q4_1: stored vs expanded max |logp diff| = {d:.1e}");
    assert!(d <= 1e-5, "{d}");
    // fused q/k/v and gate/up split inside Q8_0 blocks
    let tiny = common::golden().join("tiny");
    let d = max_diff(
        &tiny.join("phi3/model-q8_0.gguf"),
        &tiny.join("passages.jsonl"),
    );
    assert!(d <= 1e-5, "{d}");
}

/// A bf16 copy of the tiny checkpoint `arch` in a temporary folder.
fn bf16_copy(arch: &str) -> tempfile::TempDir {
    let src = common::golden().join("tiny").join(arch);
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".json") {
            std::fs::copy(e.path(), d.path().join(&name)).unwrap();
        }
    }
    let st = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let bf16: std::collections::HashMap<String, candle_core::Tensor> = st
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::BF16).unwrap()))
        .collect();
    candle_core::safetensors::save(&bf16, d.path().join("model.safetensors")).unwrap();
    d
}

/// Every checkpoint family — the shared decoder and the networks of their own (GPT-2 with its
/// transposed `Conv1D` weights, GPT-NeoX) — keeps bf16 weights in bf16 under
/// `--weights stored` (the LM head is the witness) and expands them under `expanded`, with
/// the same numbers either way.
#[test]
fn bf16_checkpoints_are_kept_in_bf16_and_equal_expanded() {
    use miascan::model::weight::Weight;
    for arch in ["llama", "gpt2", "gpt_neox"] {
        let d = bf16_copy(arch);
        for (residency, half) in [(Residency::Stored, true), (Residency::Expanded, false)] {
            let m = Model::load_with(
                d.path(),
                &miascan::model::LoadOptions {
                    residency,
                    ..Default::default()
                },
            )
            .unwrap();
            let is_half = matches!(m.lm.lm_head(), Weight::Half { .. });
            assert_eq!(is_half, half, "{arch} {residency:?}: the head's form");
        }
        let diff = max_diff(d.path(), &common::golden().join("tiny/passages.jsonl"));
        assert!(diff <= 1e-5, "{arch}: {diff}");
    }
}
