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

/// The engine conditioned on a prefix (ReCaLL's path: the prefix's state computed once,
/// every passage read after it) gives every text token of a passage the statistics that
/// scoring `prefix + passage` as one sequence gives the same tokens: log-prob, mean and
/// spread within 1e-4, on every decoder family with a prefix path, with and without a BOS
/// (the tiny checkpoints add none; Gemma 3's GGUF adds one, asserted below).
#[test]
fn passages_read_after_a_prefix_equal_prefix_and_passage_as_one_sequence() {
    use miascan::engine::{all_scored, Engine, LocalEngine, Seq};
    let prefix = "The harbour committee met on Tuesday. Minutes follow. Present: the chair, \
                  the treasurer and two wardens.";
    // short texts and the tiny corpus's passages (up to ~150 tokens), all in one call: packed
    // into shared batches after the one prefix state
    let tiny = miascan::input::read_inputs(
        &[common::golden().join("tiny/passages.jsonl")],
        &miascan::input::ReadOptions::default(),
    )
    .unwrap();
    let mut texts = vec![
        "The ferry leaves at nine.",
        "Tickets are sold on board, cash only. Dogs travel free.",
        "x",
    ];
    let short = texts.clone();
    texts.extend(tiny.iter().map(|p| p.text.as_str()));
    let mut models: Vec<(String, std::path::PathBuf, &[&str])> =
        ["llama", "qwen3", "gemma2", "gemma3_text", "phi3"]
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    common::golden().join("tiny").join(a),
                    texts.as_slice(),
                )
            })
            .collect();
    // a model that adds a BOS (a real 270M: the short texts only)
    models.push((
        "gemma3 GGUF".into(),
        common::model(common::GEMMA3),
        short.as_slice(),
    ));
    let mut with_bos = Vec::new();
    for (arch, dir, texts) in &models {
        let model = Model::load(dir, &candle_core::Device::Cpu).unwrap();
        let tok = &model.tokenizer;
        let bos: Vec<u32> = tok.bos().into_iter().collect();
        if !bos.is_empty() {
            with_bos.push(arch.clone());
        }
        let p_ids = tok.encode("p", prefix).unwrap();
        let seq = |t: &str| tok.encode("t", t).unwrap();
        let plain = LocalEngine::new(&model, None, 2048);
        let after = LocalEngine::new(&model, None, 2048)
            .conditioned_on(prefix)
            .unwrap();
        let fit = after.prefix_fit().unwrap();
        assert_eq!((fit.tokens, fit.trimmed), (p_ids.len(), 0), "{arch}");
        let got = all_scored(
            after
                .score(
                    texts
                        .iter()
                        .map(|t| Seq::Tokens {
                            ids: seq(t),
                            spans: vec![],
                        })
                        .collect(),
                )
                .unwrap(),
        )
        .unwrap();
        for (t, g) in texts.iter().zip(&got) {
            // the passage's text tokens after the prefix's, in one sequence
            let text_ids = &seq(t)[bos.len()..];
            let whole = [p_ids.as_slice(), text_ids].concat();
            let w = all_scored(
                plain
                    .score(vec![Seq::Tokens {
                        ids: whole,
                        spans: vec![],
                    }])
                    .unwrap(),
            )
            .unwrap()
            .remove(0);
            let want = &w.stats[w.stats.len() - text_ids.len()..];
            assert_eq!(
                g.stats.len(),
                text_ids.len(),
                "{arch}: every text token scored"
            );
            for (a, b) in g.stats.iter().zip(want) {
                let d = (a.logp - b.logp)
                    .abs()
                    .max((a.mu - b.mu).abs())
                    .max((a.sigma - b.sigma).abs());
                assert!(d < 1e-4, "{arch} {t:?}: {a:?} vs {b:?}");
            }
            // and the prefix matters: the same tokens alone score otherwise
            let alone = all_scored(
                plain
                    .score(vec![Seq::Tokens {
                        ids: seq(t),
                        spans: vec![],
                    }])
                    .unwrap(),
            )
            .unwrap()
            .remove(0);
            // (the second text token: within any sliding window of the prefix; alone, it is
            // the first scored position without a BOS, the second with one)
            if let (Some(a), Some(b)) = (alone.stats.get(bos.len()), g.stats.get(1)) {
                assert!(
                    (a.logp - b.logp).abs() > 1e-4,
                    "{arch} {t:?}: the prefix changed nothing"
                );
            }
        }
    }
    assert!(
        with_bos.len() == 1 && with_bos[0] == "gemma3 GGUF",
        "with and without a BOS: {with_bos:?} add one"
    );
}

/// A prefix longer than half the context is cut from the front (after its BOS) to half, and
/// the cut is reported; passages are then still read after what is kept.
#[test]
fn a_long_prefix_is_trimmed_from_the_front_and_the_trim_reported() {
    use miascan::engine::{all_scored, Engine, LocalEngine, Seq};
    let dir = common::golden().join("tiny").join("llama");
    let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    let long = "word after word, ".repeat(40);
    let n = model.tokenizer.encode("p", &long).unwrap().len();
    let engine = LocalEngine::new(&model, Some(32), 2048)
        .conditioned_on(&long)
        .unwrap();
    let fit = engine.prefix_fit().unwrap();
    assert_eq!(fit.tokens, 16);
    assert_eq!(fit.trimmed, n - 16);
    // a passage longer than the room left (32 − 15) is read in windows after the prefix:
    // every text token scored once
    let ids = model
        .tokenizer
        .encode("t", &"one two three four five ".repeat(8))
        .unwrap();
    let bos = usize::from(model.tokenizer.bos().is_some());
    let s = all_scored(
        engine
            .score(vec![Seq::Tokens {
                ids: ids.clone(),
                spans: vec![],
            }])
            .unwrap(),
    )
    .unwrap()
    .remove(0);
    assert!(ids.len() - bos > 17);
    assert_eq!(s.stats.len(), ids.len() - bos);
    assert!(s.stats.iter().all(|t| t.logp.is_finite() && t.logp <= 0.0));
    assert!(LocalEngine::new(&model, None, 2048)
        .conditioned_on("")
        .is_err());
}

/// The two passages of the CLI tests.
const TEXTS: [&str; 2] = [
    "The ferry leaves at nine.",
    "Tickets are sold on board, cash only.",
];

/// `TEXTS` as a JSONL file in `dir`.
fn passages_file(dir: &std::path::Path) -> String {
    let lines: Vec<String> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("p{i}"), "text": t}).to_string())
        .collect();
    let f = dir.join("in.jsonl");
    std::fs::write(&f, lines.join("\n")).unwrap();
    f.to_str().unwrap().to_string()
}

/// A prefix file with a header (which is not part of the prefix).
fn prefix_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let f = dir.join(name);
    std::fs::write(
        &f,
        format!("# source: written here\n# licence: CC0\n\n{text}\n"),
    )
    .unwrap();
    f.to_str().unwrap().to_string()
}

/// The records of a run that must succeed.
fn records(out: std::process::Output) -> Vec<serde_json::Value> {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Exit 2 with `needle` in the error.
fn refused(out: std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "{err}");
}

/// The mean log-prob of `text`'s tokens read after `prefix`'s in one forward of the plain
/// engine (no prefix state: the reference the conditioned path must equal).
fn ll_after(model: &Model, prefix: &str, text: &str) -> f64 {
    use miascan::engine::{all_scored, Engine, LocalEngine, Seq};
    let tok = &model.tokenizer;
    let ids = tok.encode("t", text).unwrap();
    let bos = usize::from(tok.bos().is_some());
    let whole = [tok.encode("p", prefix).unwrap().as_slice(), &ids[bos..]].concat();
    let seq = Seq::Tokens {
        ids: whole,
        spans: vec![],
    };
    let w = all_scored(
        LocalEngine::new(model, None, 2048)
            .score(vec![seq])
            .unwrap(),
    )
    .unwrap()
    .remove(0);
    let n = ids.len() - bos;
    w.stats[w.stats.len() - n..]
        .iter()
        .map(|s| s.logp)
        .sum::<f64>()
        / n as f64
}

/// `|a − b|` within `tol` relative to `max(1, |b|)`.
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// `score --recall-prefix`: the `recall` score is `LL(x | P) / LL(x)` with `LL(x | P)` the
/// mean log-prob of the passage's text tokens in one sequence `P + x` (the parity above), a
/// prefix file's header is not read as prefix, the prefix's hash goes into calibrations
/// (another prefix is refused), and a server target or a missing prefix is refused.
#[test]
fn the_recall_score_is_the_loss_after_the_prefix_over_the_loss() {
    let dir = common::golden().join("tiny").join("llama");
    let m = dir.to_str().unwrap();
    let d = tempfile::tempdir().unwrap();
    let prefix = "Minutes of the harbour committee. Present: the chair and two wardens.";
    let pf = prefix_file(d.path(), "prefix.txt", prefix);
    let input = passages_file(d.path());
    let recs = records(
        common::miascan()
            .args([
                "score",
                "--model",
                m,
                "--no-lowercase",
                "--recall-prefix",
                &pf,
                &input,
            ])
            .output()
            .unwrap(),
    );
    let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(recs.len(), TEXTS.len(), "one record per passage");
    for (t, r) in TEXTS.iter().zip(&recs) {
        let want = ll_after(&model, prefix, t) / -r["stats"]["loss"].as_f64().unwrap();
        let got = r["scores"]["recall"].as_f64().unwrap();
        assert!(close(got, want, 1e-4), "{t}: recall {got} vs {want}");
    }
    // calibrated with this prefix; scoring with another (the bundled one) is refused
    let cal = d.path().join("cal.json");
    let cal = cal.to_str().unwrap();
    let ok = common::miascan()
        .args([
            "calibrate",
            "--model",
            m,
            "--no-lowercase",
            "--recall-prefix",
            &pf,
        ])
        .args(["-o", cal, "--nonmembers", &input])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let other = common::miascan()
        .args([
            "score",
            "--model",
            m,
            "--no-lowercase",
            "--calibration",
            cal,
        ])
        .args(["--recall-prefix", "recall-written-2026", &input])
        .output()
        .unwrap();
    refused(other, "ReCaLL prefix");
    // the score without a prefix, and a prefix with a server, are refused by name
    let o = common::miascan()
        .args(["score", "--model", m, "--scores", "recall", &input])
        .output()
        .unwrap();
    refused(o, "--recall-prefix");
    let o = common::miascan()
        .args(["score", "--model", "http://127.0.0.1:9/v1"])
        .args(["--recall-prefix", "recall-written-2026", &input])
        .output()
        .unwrap();
    refused(o, "needs a local model");
}

/// ReCaLL against an independent implementation: the authors' formula over llama.cpp's
/// forward of the same F32 GGUF files (`golden-recall.jsonl`,
/// scripts/fixtures/golden-recall.py): the same tokens, `LL(x)` within 2e-3 and `recall`
/// within 2e-3 relative (llama.cpp keeps its key/value cache in f16: per-token log-probs
/// differ by up to ~8e-3).
#[test]
fn recall_matches_the_authors_formula_over_llama_cpps_forward() {
    use miascan::scorer::{ScoreOptions, Scorer};
    for arch in ["qwen2", "qwen3", "gemma2", "gemma3_text"] {
        let dir = common::golden().join("tiny").join(arch);
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(dir.join("golden-recall.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let prefix = lines[0]["prefix"].as_str().unwrap();
        let model = Model::load(&dir.join("model-f32.gguf"), &candle_core::Device::Cpu).unwrap();
        let want_prefix: Vec<u32> = serde_json::from_value(lines[0]["prefix_ids"].clone()).unwrap();
        assert_eq!(
            model.tokenizer.encode("p", prefix).unwrap(),
            want_prefix,
            "{arch}"
        );
        let passages = miascan::input::read_inputs(
            &[common::golden().join("tiny/passages.jsonl")],
            &miascan::input::ReadOptions::default(),
        )
        .unwrap();
        let opts = ScoreOptions {
            lowercase: false,
            scores: Some(vec!["recall".into()]),
            token_details: true,
            ..Default::default()
        };
        let target = opts.local_engine(&model);
        let after = opts.local_engine(&model).conditioned_on(prefix).unwrap();
        let (mut i, mut worst) = (0, 0f64);
        Scorer::new(&target, opts)
            .with_prefixed(&after)
            .select()
            .unwrap()
            .score_all(&passages, |r| {
                let g = &lines[i + 1];
                i += 1;
                let ids: Vec<u32> = serde_json::from_value(g["ids"].clone()).unwrap();
                assert_eq!(r.token_ids.as_ref().unwrap(), &ids, "{arch} {}", r.id);
                let ll = -r.stats.loss.unwrap();
                let recall = r.scores.get("recall").unwrap();
                // relative: a memorised passage's LL(x) is near 0 and its recall large
                let want = g["recall"].as_f64().unwrap();
                let (d_ll, d_r) = (
                    (ll - g["ll"].as_f64().unwrap()).abs(),
                    (recall - want).abs() / want.abs().max(1.0),
                );
                worst = worst.max(d_r);
                assert!(
                    d_ll < 2e-3 && d_r < 2e-3,
                    "{arch} {}: ll {d_ll}, recall {recall} vs {want}",
                    r.id
                );
                Ok(())
            })
            .unwrap();
        assert_eq!(i, lines.len() - 1);
        eprintln!("{arch}: recall max relative diff vs llama.cpp {worst:.1e}");
    }
}

/// Con-ReCall: `conrecall_G = (LL(x | P_non) − G·LL(x | P_mem)) / LL(x)`, each side the mean
/// log-prob of the passage's text tokens after that prefix in one sequence; one score per
/// `--gamma`; the member prefix needs the non-member one.
#[test]
fn conrecall_contrasts_the_member_and_non_member_prefixes() {
    let dir = common::golden().join("tiny").join("qwen2");
    let m = dir.to_str().unwrap();
    let d = tempfile::tempdir().unwrap();
    let (non, mem) = (
        "Minutes of the harbour committee. Present: the chair and two wardens.",
        "Return true if the object argument is an instance of the classinfo argument.",
    );
    let (non_f, mem_f) = (
        prefix_file(d.path(), "non.txt", non),
        prefix_file(d.path(), "mem.txt", mem),
    );
    let input = passages_file(d.path());
    let recs = records(
        common::miascan()
            .args([
                "score",
                "--model",
                m,
                "--no-lowercase",
                "--recall-prefix",
                &non_f,
            ])
            .args(["--member-prefix", &mem_f, "--gamma", "0.3,1", &input])
            .output()
            .unwrap(),
    );
    let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(recs.len(), TEXTS.len(), "one record per passage");
    for (t, r) in TEXTS.iter().zip(&recs) {
        let ll = -r["stats"]["loss"].as_f64().unwrap();
        let (n, mm) = (ll_after(&model, non, t), ll_after(&model, mem, t));
        for (name, g) in [("conrecall_0.3", 0.3), ("conrecall_1", 1.0)] {
            let got = r["scores"][name].as_f64().unwrap();
            let want = (n - g * mm) / ll;
            assert!(close(got, want, 1e-4), "{t} {name}: {got} vs {want}");
        }
        assert!(close(r["scores"]["recall"].as_f64().unwrap(), n / ll, 1e-4));
    }
    // a member prefix alone, or conrecall without one, is refused by name
    let o = common::miascan()
        .args(["score", "--model", m, "--member-prefix", &mem_f, &input])
        .output()
        .unwrap();
    refused(o, "--recall-prefix");
    let o = common::miascan()
        .args(["score", "--model", m, "--recall-prefix", &non_f])
        .args(["--scores", "conrecall_0.5", &input])
        .output()
        .unwrap();
    refused(o, "member prefix");
    // the bundled member prefix: longer than half the tiny context, cut and said so
    let o = common::miascan()
        .args(["score", "--model", m, "--recall-prefix", &non_f])
        .args(["--member-prefix", "member-public-domain", &input])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("--member-prefix member-public-domain") && err.contains("cut from its front"),
        "{err}"
    );
}

/// A scan's log records the prefixes' hashes: `--resume` with another ReCaLL prefix is
/// refused (the records before and after would not be comparable).
#[test]
fn a_scan_resumed_with_another_prefix_is_refused() {
    let dir = common::golden().join("tiny").join("llama");
    let m = dir.to_str().unwrap();
    let d = tempfile::tempdir().unwrap();
    let docs = d.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), TEXTS.join(" ")).unwrap();
    let pf = prefix_file(d.path(), "prefix.txt", "Minutes of the harbour committee.");
    let out = d.path().join("out");
    let scan = |prefix: &str, extra: &[&str]| {
        common::miascan()
            .args([
                "scan",
                docs.to_str().unwrap(),
                "--model",
                m,
                "--no-lowercase",
                "-q",
            ])
            .args(["--recall-prefix", prefix, "--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let first = scan(&pf, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let recs = std::fs::read_to_string(out.join("passages.jsonl")).unwrap();
    assert!(recs.contains("\"recall\":"), "{recs}");
    refused(
        scan("recall-written-2026", &["--resume"]),
        "run differently",
    );
    // the same prefix resumes
    let again = scan(&pf, &["--resume"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
