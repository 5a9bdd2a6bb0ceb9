//! Behaviour of the scoring pipeline on the real SmolLM2 model: windows, packing, special
//! tokens, the lowercase score, too-short passages, and the CLI's JSON schema.
use crate::common;

use miascan::input::Passage;
use miascan::model::Model;
use miascan::record::PassageRecord;
use miascan::scorer::{ScoreOptions, Scorer};
use std::sync::OnceLock;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::load(&common::model(common::SMOLLM2), &candle_core::Device::Cpu).unwrap()
    })
}

fn passage(id: &str, text: &str) -> Passage {
    Passage {
        id: id.into(),
        text: text.into(),
        source: id.into(),
        label: None,
    }
}

fn score(passages: &[Passage], opts: ScoreOptions) -> Vec<PassageRecord> {
    let mut out = Vec::new();
    let engine = opts.local_engine(model());
    Scorer::new(&engine, opts)
        .score_all(passages, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

fn details() -> ScoreOptions {
    ScoreOptions {
        token_details: true,
        ..ScoreOptions::default()
    }
}

fn long_text() -> String {
    let corpus = std::fs::read_to_string(common::golden().join("corpus.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(corpus.lines().next().unwrap()).unwrap();
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn long_passages_are_windowed_never_truncated() {
    let text = long_text();
    let full = &score(&[passage("p", &text)], details())[0];
    let ctx = 64;
    let windowed = &score(
        &[passage("p", &text)],
        ScoreOptions {
            max_context: Some(ctx),
            ..details()
        },
    )[0];
    let n = full.n_tokens;
    assert!(n > 3 * ctx, "test passage too short: {n}");
    assert_eq!(windowed.n_scored, n - 1, "every token scored once");
    let (a, b) = (
        &full.token_stats().unwrap(),
        &windowed.token_stats().unwrap(),
    );
    // the first window sees exactly what the full pass sees
    for i in 0..ctx - 1 {
        assert!((a[i].logp - b[i].logp).abs() < 1e-4, "token {i}");
    }
    // later tokens lose context: different, but the same order of magnitude
    let mean =
        |s: &[miascan::stats::TokenStat]| s.iter().map(|t| t.logp).sum::<f64>() / s.len() as f64;
    let (ma, mb) = (mean(&a[ctx..]), mean(&b[ctx..]));
    assert!(
        mb <= ma + 0.05 && mb > ma - 1.5,
        "full {ma} vs windowed {mb}"
    );
}

#[test]
fn packing_does_not_change_results() {
    let ps = [
        passage("a", "The quick brown fox jumps over the lazy dog."),
        passage("b", "def add(a, b):\n    return a + b\n"),
        passage(
            "c",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        ),
    ];
    let packed = score(&ps, details());
    let single = score(
        &ps,
        ScoreOptions {
            batch_tokens: 1,
            ..details()
        },
    );
    assert_eq!((packed.len(), single.len()), (3, 3), "a result per passage");
    for (p, s) in packed.iter().zip(&single) {
        assert_eq!(p.id, s.id);
        let (p, s) = (&p.token_stats().unwrap(), &s.token_stats().unwrap());
        assert_eq!(p.len(), s.len(), "scored tokens");
        for (x, y) in p.iter().zip(s.iter()) {
            assert!((x.logp - y.logp).abs() < 1e-4 && (x.sigma - y.sigma).abs() < 1e-4);
        }
    }
}

#[test]
fn special_token_strings_are_plain_text() {
    let r = &score(&[passage("s", "<|im_start|>user\nhi<|im_end|>")], details())[0];
    let ids = &r.token_ids.as_ref().unwrap();
    assert!(
        !ids.contains(&1) && !ids.contains(&2),
        "control tokens matched in text: {ids:?}"
    );
    assert!(ids.len() > 6);
}

#[test]
fn lowercase_score_is_the_ratio_of_two_forwards() {
    let text = "Alice Went To The Market In Paris On Tuesday.";
    let r = &score(
        &[passage("x", text), passage("y", &text.to_lowercase())],
        ScoreOptions::default(),
    );
    let lc = r[0]
        .scores
        .iter()
        .find(|(n, _)| n == "lowercase")
        .unwrap()
        .1
        .unwrap();
    let want = r[1].stats.loss.unwrap() / r[0].stats.loss.unwrap();
    assert!((lc - want).abs() < 1e-6, "{lc} vs {want}");
}

#[test]
fn first_token_policy_without_bos() {
    // SmolLM2 adds no BOS: the first token is context only, N = n - 1.
    let r = &score(
        &[
            passage("one", "Hello"),
            passage("two", "Hello world"),
            passage("empty", ""),
        ],
        details(),
    );
    assert_eq!((r[0].n_tokens, r[0].n_scored), (1, 0));
    assert!(r[0].reason.as_deref().unwrap().contains("too short"));
    assert!(r[0].scores.iter().all(|(_, v)| v.is_none()));
    assert_eq!((r[1].n_tokens, r[1].n_scored), (2, 1));
    assert_eq!(r[1].token_stats().unwrap().len(), 1);
    assert_eq!((r[2].n_tokens, r[2].n_scored), (0, 0));
}

#[test]
fn cli_writes_the_documented_schema() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\": \"p1\", \"text\": \"The capital of France is Paris.\"}\n{\"id\": 2, \"text\": \"x\"}\n").unwrap();
    let out = d.path().join("out.jsonl");
    let m = common::model(common::SMOLLM2);
    let st = common::miascan()
        .args([
            "score",
            "--threads",
            "1",
            "--k",
            "0.1,0.2",
            "--token-logprobs",
            "-m",
        ])
        .arg(&m)
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let a = &lines[0];
    assert_eq!(a["id"], "p1");
    assert_eq!(
        a["n_scored"].as_u64().unwrap() + 1,
        a["n_tokens"].as_u64().unwrap()
    );
    for k in ["loss", "ppl", "bits_per_byte", "zlib_bytes"] {
        assert!(a["stats"][k].is_number(), "{k}");
    }
    for k in [
        "neg_loss",
        "mink_0.1",
        "mink_0.2",
        "minkpp_0.1",
        "minkpp_0.2",
        "zlib",
        "lowercase",
    ] {
        assert!(a["scores"][k].is_number(), "{k}");
    }
    assert_eq!(a["model"]["sha256"], "b179c9523d0e6a0f");
    assert_eq!(a["model"]["compute"], "f32");
    let n = a["n_scored"].as_u64().unwrap() as usize;
    assert_eq!(a["token_ids"].as_array().unwrap().len(), n + 1);
    assert_eq!(a["tokens"].as_array().unwrap().len(), n + 1);
    for k in ["token_logprobs", "token_mu", "token_sigma"] {
        assert_eq!(a[k].as_array().unwrap().len(), n, "{k}");
    }
    let b = &lines[1];
    assert_eq!(b["id"], "2");
    assert_eq!(b["n_scored"], 0);
    assert!(b["stats"]["loss"].is_null() && b["scores"]["minkpp_0.2"].is_null());
    assert!(b["reason"].as_str().unwrap().contains("too short"));
}
