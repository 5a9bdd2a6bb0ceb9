//! The key/value prefix path (`CausalLm::prefix` + `forward_after`): a sequence conditioned
//! on a prefix computed once gets the same hidden states, and so the same log-probs, as the
//! same positions of one forward over `prefix + sequence` — on the tiny checkpoints of the
//! decoder families (rotary halves, q/k norms, sliding windows with soft-caps).

use crate::common;
use miascan::model::{Batch, Model};

fn rows(t: &candle_core::Tensor, from: usize, n: usize) -> Vec<Vec<f32>> {
    t.narrow(0, from, n).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn a_prefix_computed_once_equals_scoring_prefix_and_text_as_one_sequence() {
    for arch in ["llama", "qwen3", "gemma2", "gemma3_text", "phi3"] {
        let dir = common::golden().join("tiny").join(arch);
        let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
        let tok = &model.tokenizer;
        // the prefix as a passage is tokenised (with the BOS where the model adds one)
        let prefix: Vec<u32> = tok
            .encode(
                "p",
                "The harbour committee met on Tuesday. Minutes follow. ",
            )
            .unwrap();
        let texts = [
            "The ferry leaves at nine.",
            "Tickets are sold on board, cash only.",
        ];
        // the texts' own tokens, no BOS: they continue the prefix
        let seqs: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| tok.pieces("t", t).unwrap().iter().map(|p| p.0).collect())
            .collect();
        let state = model.lm.prefix(&prefix).unwrap();
        assert_eq!(state.len, prefix.len());
        // both sequences after the prefix in one batch
        let mut after = Batch::default();
        for s in &seqs {
            after.push_after(s, prefix.len());
        }
        let h_after = model.lm.forward_after(&after, &state).unwrap();
        for (k, s) in seqs.iter().enumerate() {
            let mut whole = Batch::default();
            whole.push(&[prefix.as_slice(), s].concat());
            let h_whole = model.lm.forward(&whole).unwrap();
            let want = rows(&h_whole, prefix.len(), s.len());
            let got = rows(&h_after, after.spans[k].0, s.len());
            let d = max_diff(&want, &got);
            assert!(d < 1e-4, "{arch}, sequence {k}: max |hidden diff| {d}");
            // and without the prefix the same positions differ: the check can fail
            let mut alone = Batch::default();
            alone.push(s);
            let h_alone = model.lm.forward(&alone).unwrap();
            let d0 = max_diff(&want, &rows(&h_alone, 0, s.len()));
            assert!(d0 > 1e-3, "{arch}: the prefix changed nothing ({d0})");
        }
        // a batch whose positions do not continue the prefix is refused
        let mut wrong = Batch::default();
        wrong.push(&seqs[0]);
        assert!(model.lm.forward_after(&wrong, &state).is_err(), "{arch}");
    }
}
