//! Parity with ../shared/golden/smollm2-135m-q4_1.jsonl: llama.cpp's token ids, transformers'
//! f32 log-probs (f64 soft-max). Ids identical; |logp|, mu, sigma within 1e-3; scores within
//! 1e-3 relative.

mod common;

use common::*;
use miascan::input::{read_inputs, ReadOptions};
use miascan::model::Model;
use miascan::scorer::{ScoreOptions, Scorer};

#[test]
fn smollm2_matches_the_golden_token_for_token() {
    let model = Model::load(&model(SMOLLM2), &candle_core::Device::Cpu).unwrap();
    check_parity(&model, "smollm2-135m-q4_1.jsonl", 1e-3);
}

pub fn check_parity(model: &Model, golden: &str, tol: f64) {
    let passages = read_inputs(
        &[shared().join("golden/corpus.jsonl")],
        &ReadOptions::default(),
    )
    .unwrap();
    let golden = goldens(golden);
    assert_eq!(passages.len(), golden.len());
    let opts = ScoreOptions {
        token_details: true,
        ..ScoreOptions::default()
    };
    let mut results = Vec::new();
    Scorer::new(model, opts)
        .score_all(&passages, |r| {
            results.push(r);
            Ok(())
        })
        .unwrap();
    let mut max_diff = 0f64;
    let mut worst = String::new();
    for (r, g) in results.iter().zip(&golden) {
        assert_eq!(r.id, g.id);
        let d = r.details.as_ref().unwrap();
        assert_eq!(d.ids, g.ids, "token ids of {}", g.id);
        assert_eq!(
            r.scores.stats.zlib_bytes, g.zlib_bytes,
            "zlib_bytes of {}",
            g.id
        );
        assert_eq!(d.stats.len(), g.logprobs.len(), "{}", g.id);
        for (i, s) in d.stats.iter().enumerate() {
            for (what, got, want) in [
                ("logp", s.logp, g.logprobs[i]),
                ("mu", s.mu, g.mu[i]),
                ("sigma", s.sigma, g.sigma[i]),
            ] {
                let diff = (got - want).abs();
                if what == "logp" && diff > max_diff {
                    max_diff = diff;
                    worst = format!("{} token {i}", g.id);
                }
                assert!(
                    diff <= tol,
                    "{what} of {} token {i}: {got} vs golden {want}",
                    g.id
                );
            }
        }
        let scores: std::collections::HashMap<_, _> = r.scores.scores.iter().cloned().collect();
        let gs = g.scores.clone().unwrap_or_default();
        for (name, got) in [
            ("loss", r.scores.stats.loss),
            ("ppl", r.scores.stats.ppl),
            ("mink_0.2", scores["mink_0.2"]),
            ("minkpp_0.2", scores["minkpp_0.2"]),
            ("zlib", scores["zlib"]),
        ] {
            let want = gs.get(name).copied().flatten();
            match (got, want) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-3 * b.abs().max(1e-9),
                    "{name} of {}: {a} vs {b}",
                    g.id
                ),
                (None, None) => assert_eq!(r.n_scored, 0),
                _ => panic!("{name} of {}: {got:?} vs golden {want:?}", g.id),
            }
        }
    }
    eprintln!("max |logp diff| = {max_diff:.2e} at {worst}");
}
