//! Parity with tests/data/golden/smollm2-135m-q4_1.jsonl: llama.cpp's token ids, transformers'
//! f32 log-probs (f64 soft-max). Ids identical; |logp|, mu, sigma within 1e-3; scores within
//! 1e-3 relative.

use crate::common::*;
use miascan::model::Model;

#[test]
fn smollm2_matches_the_golden_token_for_token() {
    let model = Model::load(&model(SMOLLM2), &candle_core::Device::Cpu).unwrap();
    check_parity(&model, "smollm2-135m-q4_1.jsonl", 1e-3);
}
