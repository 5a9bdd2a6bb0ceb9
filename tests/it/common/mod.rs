//! Helpers shared by the integration tests: where the models and the goldens are.
#![allow(dead_code)]

use miascan::input::{read_inputs, ReadOptions};
use miascan::model::Model;
use miascan::scorer::{ScoreOptions, Scorer};
use std::path::PathBuf;

/// The goldens and tiny checkpoints, kept in the repository (`tests/data/golden`, copied
/// from the project's ground truth; see tests/data/README.md), so a fresh clone tests them.
pub fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// A large artefact only the project's own machines have, in `../shared` beside the
/// repository (the fine-tuned audit model, WikiMIA). Absent: `None`, and the test says it
/// was not run and why; but where `MIASCAN_REQUIRE_SHARED` is set (CI), absence fails.
pub fn shared_large(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("MIASCAN_REQUIRE_SHARED").is_none(),
        "{} is missing and MIASCAN_REQUIRE_SHARED is set",
        p.display()
    );
    eprintln!(
        "NOT RUN: {} is not here (only the project's machines have ../shared)",
        p.display()
    );
    None
}

/// A model from the cache scripts/fetch/fetch-models.sh fills. Absent = a failure, not a skip:
/// CI must never pass without having run the real-model tests.
pub fn model(file: &str) -> PathBuf {
    let dir = std::env::var_os("MIASCAN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/miascan/models")
        });
    let p = dir.join(file);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch/fetch-models.sh all",
        p.display()
    );
    p
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// One golden line.
#[derive(Debug, serde::Deserialize)]
pub struct Golden {
    pub id: String,
    pub ids: Vec<u32>,
    pub zlib_bytes: usize,
    pub logprobs: Vec<f64>,
    pub mu: Vec<f64>,
    pub sigma: Vec<f64>,
    pub scores: Option<std::collections::HashMap<String, Option<f64>>>,
}

pub fn goldens(name: &str) -> Vec<Golden> {
    let text = std::fs::read_to_string(golden().join(name)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first `take` passages of the golden corpus scored with per-token details (ids, log-probs,
/// mu, sigma), one record each.
pub fn score_corpus<M: std::borrow::Borrow<Model> + Send + Sync>(
    model: M,
    take: usize,
) -> Vec<miascan::record::PassageRecord> {
    let mut passages = read_inputs(
        &[self::golden().join("corpus.jsonl")],
        &ReadOptions::default(),
    )
    .unwrap();
    passages.truncate(take);
    let opts = ScoreOptions {
        token_details: true,
        ..ScoreOptions::default()
    };
    let mut results = Vec::new();
    let engine = opts.local_engine(model);
    Scorer::new(&engine, opts)
        .score_all(&passages, |r| {
            results.push(r);
            Ok(())
        })
        .unwrap();
    results
}

/// Scores the golden corpus and compares ids, per-token statistics and scores with a golden
/// file. Returns the largest |logp diff|.
pub fn check_parity(model: &Model, golden: &str, tol: f64) -> f64 {
    let golden = goldens(golden);
    let results = score_corpus(model, usize::MAX);
    let mut max_diff = 0f64;
    let mut worst = String::new();
    // every passage has a result: a scorer that dropped the last ones must not pass
    assert_eq!(
        results.len(),
        golden.len(),
        "results against golden passages"
    );
    for (r, g) in results.iter().zip(&golden) {
        assert_eq!(r.id, g.id);
        let (ids, stats) = (r.token_ids.clone().unwrap(), r.token_stats().unwrap());
        assert_eq!(ids, g.ids, "token ids of {}", g.id);
        assert_eq!(r.stats.zlib_bytes, g.zlib_bytes, "zlib_bytes of {}", g.id);
        assert_eq!(stats.len(), g.logprobs.len(), "{}", g.id);
        for (i, s) in stats.iter().enumerate() {
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
        let scores: std::collections::HashMap<_, _> = r.scores.iter().cloned().collect();
        let gs = g.scores.clone().unwrap_or_default();
        for (name, got) in [
            ("loss", r.stats.loss),
            ("ppl", r.stats.ppl),
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
    max_diff
}

/// llama.cpp's tokenizer suite, as scripts/fetch/fetch-vocabs.sh puts it in the cache. Absent = a
/// failure (the README's test command fetches it).
pub fn vocabs() -> PathBuf {
    let dir = std::env::var_os("MIASCAN_VOCABS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/miascan/vocabs")
        });
    assert!(
        dir.join("SOURCE").is_file(),
        "{} is missing: run scripts/fetch/fetch-vocabs.sh",
        dir.display()
    );
    dir
}

/// The miascan binary as every CLI test runs it: no backtrace, no API key from the
/// environment, standard input closed (a test that pipes text sets its own).
pub fn miascan() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_miascan"));
    c.env("RUST_BACKTRACE", "0")
        .env_remove("OPENAI_API_KEY")
        .stdin(std::process::Stdio::null());
    c
}

/// `miascan ARGS…`, run to its end.
pub fn cli(args: &[&str]) -> std::process::Output {
    miascan()
        .args(args)
        .output()
        .expect("the miascan binary runs")
}

/// The `text` field of every line of a JSONL file.
pub fn jsonl_texts(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}
