//! The two implementations of the blockwise soft-max statistics — the CPU kernels and the
//! device-agnostic tensor ops (what a GPU runs) — agree to 1e-6 on the goldens' passages,
//! with real vocabularies (SmolLM2 49,152 entries; Gemma 3 262,144 in several blocks) and a
//! final logit soft-cap (the tiny Gemma 2).
use crate::common;

use candle_core::{DType, Device};
use miascan::model::{Batch, Model};
use miascan::stats::{token_stats_with, StatsBackend};

fn compare(model: &Model, golden: &str, passages: usize) -> f64 {
    let text = std::fs::read_to_string(common::golden().join(golden)).unwrap();
    let ids: Vec<Vec<u32>> = text
        .lines()
        .take(passages)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["ids"].clone()).unwrap()
        })
        .collect();
    let mut worst = 0f64;
    for chunk in ids.chunks(8) {
        let mut batch = Batch::default();
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for g in chunk {
            let start = batch.len();
            batch.push(g);
            for (p, &t) in g.iter().enumerate().skip(1) {
                rows.push((start + p - 1) as u32);
                targets.push(t);
            }
        }
        let hidden = model.lm.forward(&batch).unwrap();
        let lm = model.lm.as_ref();
        let a = token_stats_with(StatsBackend::Kernel, lm, &hidden, &rows, &targets).unwrap();
        let b = token_stats_with(StatsBackend::Tensor, lm, &hidden, &rows, &targets).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            for (u, v) in [(x.logp, y.logp), (x.mu, y.mu), (x.sigma, y.sigma)] {
                assert!(u.is_finite() && v.is_finite());
                worst = worst.max((u - v).abs());
            }
        }
    }
    worst
}

#[test]
fn kernel_and_tensor_statistics_agree_on_real_vocabularies() {
    for (file, golden, n) in [
        (common::SMOLLM2, "smollm2-135m-q4_1.jsonl", 43),
        (common::GEMMA3, "gemma3-270m-q4_k_m.jsonl", 8),
    ] {
        let model = Model::load(&common::model(file), &Device::Cpu).unwrap();
        let worst = compare(&model, golden, n);
        eprintln!("{file}: kernel vs tensor statistics, max |diff| = {worst:.2e}");
        assert!(worst < 1e-6, "{file}: {worst:e}");
    }
}

#[test]
fn kernel_and_tensor_statistics_agree_with_a_logit_softcap() {
    let dir = common::golden().join("tiny/gemma2");
    let model = Model::load_with(
        &dir,
        &miascan::model::LoadOptions {
            dtype: DType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(model.lm.logit_softcap().is_some());
    let worst = compare(&model, "tiny/gemma2/golden.jsonl", 40);
    eprintln!("tiny gemma2 (soft-cap): kernel vs tensor statistics, max |diff| = {worst:.2e}");
    assert!(worst < 1e-6, "{worst:e}");
}
