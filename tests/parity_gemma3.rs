//! Parity with ../shared/golden/gemma3-270m-q4_k_m.jsonl: SentencePiece ids identical to
//! llama.cpp's (BOS added), per-token log-probs, mu and sigma within 1e-3 of transformers
//! f32 — including the passage longer than the 512-token sliding window.

mod common;

use common::*;
use miascan::model::Model;

#[test]
fn gemma3_matches_the_golden_token_for_token() {
    let model = Model::load(&model(GEMMA3), &candle_core::Device::Cpu).unwrap();
    let golden = goldens("gemma3-270m-q4_k_m.jsonl");
    assert!(
        golden.iter().any(|g| g.ids.len() > 600),
        "the golden must exercise the sliding window"
    );
    check_parity(&model, "gemma3-270m-q4_k_m.jsonl", 1e-3);
}
