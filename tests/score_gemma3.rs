//! Gemma 3 scoring behaviour beyond the golden: the BOS policy and long-passage windows.
//! (A separate test binary so that the parity test measures its own peak memory.)

mod common;

use common::*;
use miascan::model::Model;

#[test]
fn gemma3_windows_repeat_the_bos_and_score_every_token() {
    let model = Model::load(&model(GEMMA3), &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.tokenizer.bos(), Some(2));
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(12);
    let p = miascan::input::Passage {
        id: "w".into(),
        text,
        source: "w".into(),
        label: None,
    };
    let opts = miascan::scorer::ScoreOptions {
        max_context: Some(32),
        token_details: true,
        lowercase: false,
        ..Default::default()
    };
    let mut out = Vec::new();
    miascan::scorer::Scorer::new(&model, opts)
        .score_all(&[p], |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    let r = &out[0];
    assert!(r.n_tokens > 100);
    assert_eq!(
        r.n_scored,
        r.n_tokens - 1,
        "every token after the BOS is scored once"
    );
    // a repeated sentence is predictable once seen: late tokens score high even in windows
    let d = r.details.as_ref().unwrap();
    let late: f64 = d.stats[60..].iter().map(|s| s.logp).sum::<f64>() / (d.stats.len() - 60) as f64;
    assert!(late > -1.0, "mean late logp {late}");
}
