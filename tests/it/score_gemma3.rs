//! Gemma 3 scoring behaviour beyond the golden: the BOS policy and long-passage windows.
//! (A separate test binary so that the parity test measures its own peak memory.)

use crate::common::*;
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
    let engine = opts.local_engine(&model);
    miascan::scorer::Scorer::new(&engine, opts)
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
    let (ids, stats) = (r.token_ids.clone().unwrap(), r.token_stats().unwrap());
    assert_eq!(ids[0], 2, "the passage starts with the BOS");
    // the second window (context 32, stride 16) scores positions 32..48 after the BOS and
    // the 31 ids before position 48: recompute those positions from such a window directly,
    // and from the same span without the BOS (which a window that dropped it would give)
    let stats_of = |window: &[u32], scored: std::ops::Range<usize>, first: usize| {
        let mut b = miascan::model::Batch::default();
        b.push(window);
        let h = model.lm.forward(&b).unwrap();
        let rows: Vec<u32> = scored.clone().map(|p| (p - 1 - first) as u32).collect();
        let targets: Vec<u32> = scored.map(|p| ids[p]).collect();
        miascan::stats::token_stats(model.lm.as_ref(), &h, &rows, &targets).unwrap()
    };
    let with_bos: Vec<u32> = std::iter::once(2)
        .chain(ids[17..48].iter().copied())
        .collect();
    // window index i holds position 17 + i - 1 (index 0 is the BOS)
    let want = stats_of(&with_bos, 32..48, 16);
    let without = stats_of(&ids[16..48], 32..48, 16);
    let mut bos_matters = 0f64;
    for (k, p) in (32..48).enumerate() {
        let got = stats[p - 1].logp;
        assert!(
            (got - want[k].logp).abs() < 1e-4,
            "position {p}: scored {got}, a BOS window gives {}",
            want[k].logp
        );
        bos_matters = bos_matters.max((want[k].logp - without[k].logp).abs());
    }
    assert!(
        bos_matters > 1e-3,
        "the check above could not tell a window without its BOS ({bos_matters})"
    );
    // a repeated sentence is predictable once seen: late tokens score high even in windows
    let late: f64 = stats[60..].iter().map(|s| s.logp).sum::<f64>() / (stats.len() - 60) as f64;
    assert!(late > -1.0, "mean late logp {late}");
}
