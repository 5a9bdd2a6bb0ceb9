//! Parity with tests/data/golden/gemma3-270m-q4_k_m.jsonl: SentencePiece ids identical to
//! llama.cpp's (BOS added), per-token log-probs, mu and sigma within 1e-3 of transformers
//! f32 — including the passages longer than the 512-token sliding window — and the memory
//! bound: peak RSS while scoring the corpus at most 1.6 GiB.

#[path = "it/common/mod.rs"]
mod common;

use common::*;
use miascan::model::Model;

/// Peak resident set size of this process, from /proc (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn gemma3_matches_the_golden_token_for_token_within_the_memory_bound() {
    let model = Model::load(&model(GEMMA3), &candle_core::Device::Cpu).unwrap();
    let golden = goldens("gemma3-270m-q4_k_m.jsonl");
    assert!(
        golden.iter().any(|g| g.ids.len() > 600),
        "the golden must exercise the sliding window"
    );
    check_parity(&model, "gemma3-270m-q4_k_m.jsonl", 1e-3);
    if let Some(rss) = peak_rss() {
        eprintln!("peak RSS {:.2} GiB", rss as f64 / (1u64 << 30) as f64);
        assert!(rss <= 1_717_986_918, "peak RSS {rss} bytes > 1.6 GiB");
    }
}
