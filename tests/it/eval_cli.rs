//! `miascan eval` end to end on the tiny trained checkpoints (fast): the known members are
//! found, the JSON and SVG reports are written, and WikiMIA's distribution shift triggers the
//! blind-baseline warning.
use crate::common;

#[test]
fn tiny_checkpoints_reveal_their_members() {
    let passages = common::golden().join("tiny/passages.jsonl");
    let d = tempfile::tempdir().unwrap();
    let archs = [
        "gpt2",
        "gpt_neox",
        "llama",
        "qwen2",
        "mistral",
        "qwen3",
        "gemma3_text",
        "gemma2",
        "olmo2",
        "phi3",
        "qwen3/model-q8_0.gguf",
        "phi3/model-q8_0.gguf",
    ];
    for arch in archs {
        let name = arch.replace('/', "-");
        let json = d.path().join(format!("{name}.json"));
        let svg = d.path().join(format!("{name}.svg"));
        let model = common::golden().join("tiny").join(arch);
        let o = common::cli(&[
            "eval",
            "-m",
            model.to_str().unwrap(),
            "--label-field",
            "member",
            passages.to_str().unwrap(),
            "--bootstrap",
            "200",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let neg_loss = v["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["score"] == "neg_loss")
            .unwrap();
        let auroc = neg_loss["auroc"].as_f64().unwrap();
        assert!(auroc > 0.9, "{arch}: neg_loss AUROC {auroc}");
        assert_eq!(neg_loss["n_members"], 60);
        assert!(
            v["warning"].is_null(),
            "{arch}: same-distribution members must not warn"
        );
        assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    }
}

#[test]
fn wikimia_eval_warns_about_distribution_shift() {
    let Some(wikimia) = common::shared_large("wikimia/32.jsonl") else {
        return;
    };
    let model = common::golden().join("tiny/llama");
    let o = common::cli(&[
        "eval",
        "-m",
        model.to_str().unwrap(),
        "--text-field",
        "input",
        "--label-field",
        "label",
        wikimia.to_str().unwrap(),
        "--bootstrap",
        "100",
        "--no-lowercase",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("WARNING: a blind baseline"), "{out}");
}

#[test]
fn eval_needs_labels() {
    let model = common::golden().join("tiny/llama");
    let o = common::cli(&[
        "eval",
        "-m",
        model.to_str().unwrap(),
        common::golden()
            .join("tiny/passages.jsonl")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--label-field"));
}

/// Writes the tiny passages with the given membership to a JSONL file.
fn tiny_subset(dir: &std::path::Path, member: bool) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::golden().join("tiny/passages.jsonl")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["member"] == member)
        .collect();
    let p = dir.join(format!("member_{member}.jsonl"));
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

#[test]
fn calibrated_scores_carry_p_values_and_decisions() {
    let d = tempfile::tempdir().unwrap();
    let model = common::golden().join("tiny/llama");
    let m = model.to_str().unwrap();
    let (members, nonmembers) = (tiny_subset(d.path(), true), tiny_subset(d.path(), false));
    let calib = d.path().join("calib.json");
    let o = common::cli(&[
        "calibrate",
        "-m",
        m,
        "--nonmembers",
        nonmembers.to_str().unwrap(),
        "-o",
        calib.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = common::cli(&[
        "score",
        "-m",
        m,
        members.to_str().unwrap(),
        "--calibration",
        calib.to_str().unwrap(),
        "--fpr",
        "0.05",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 60);
    let flagged = rows.iter().filter(|r| r["flagged"] == true).count();
    for r in &rows {
        assert_eq!(r["decided_by"], "minkpp_0.2");
        let p = r["p_values"]["minkpp_0.2"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0);
        assert_eq!(r["flagged"], p <= 0.05);
    }
    // members of a model trained on them: most (more than half; 48 measured) are flagged
    // against its non-members, where a model that never saw them would flag about 3 (5%)
    assert!(flagged > 30, "flagged {flagged} of 60");
    // the table shows the same decisions
    let o = common::cli(&[
        "score",
        "-m",
        m,
        members.to_str().unwrap(),
        "--calibration",
        calib.to_str().unwrap(),
        "--fpr",
        "0.05",
        "--table",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.lines().next().unwrap().contains("flagged"), "{table}");
    let yes = table
        .lines()
        .filter(|l| l.trim_end().ends_with(" yes"))
        .count();
    assert_eq!(yes, flagged, "{table}");
    assert!(
        table.contains(&format!("flagged when <= 0.05 (FPR): {flagged} of 60")),
        "{table}"
    );
    // the same calibration with other settings is refused
    let o = common::cli(&[
        "score",
        "-m",
        m,
        "--k",
        "0.1",
        members.to_str().unwrap(),
        "--calibration",
        calib.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match this run (settings"));
    // ... and so is another model
    let other = common::golden().join("tiny/gpt2");
    let o = common::cli(&[
        "score",
        "-m",
        other.to_str().unwrap(),
        members.to_str().unwrap(),
        "--calibration",
        calib.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match this run (model"));
}

/// The peer's own log-probs (llama.cpp, written as score records by scripts/bench/peer-audit.sh),
/// evaluated by miascan's statistics, give exactly the peer's published table
/// (../shared/finetune/README.md): same AUROC, same TPR at 1% FPR, same orientation.
#[test]
fn the_peers_log_probs_give_the_peers_figures() {
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("peer.json");
    let records = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/finetune-llamacpp.jsonl"
    );
    let o = common::cli(&[
        "eval",
        "--scored",
        "--label-field",
        "member",
        records,
        "--bootstrap",
        "100",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let get = |name: &str| -> (f64, f64) {
        let s = v["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["score"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(
            (s["n_members"].as_u64(), s["n_nonmembers"].as_u64()),
            (Some(200), Some(200))
        );
        let at1 = s["at_fpr"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["fpr"] == 0.01)
            .unwrap();
        (s["auroc"].as_f64().unwrap(), at1["tpr"].as_f64().unwrap())
    };
    let round = |(a, t): (f64, f64)| ((a * 1000.0).round() / 1000.0, (t * 1000.0).round() / 1000.0);
    // the peer's table: AUROC / TPR at 1% FPR
    assert_eq!(round(get("neg_loss")), (0.706, 0.045));
    assert_eq!(round(get("mink_0.2")), (0.703, 0.045));
    assert_eq!(round(get("ref")), (0.945, 0.41));
    assert_eq!(round(get("base_neg_loss")), (0.471, 0.025));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("blind baseline: not run"), "{out}");
}

/// Score records of two different models cannot be pooled into one evaluation.
#[test]
fn scored_records_of_different_models_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let records = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/finetune-llamacpp.jsonl"
    ))
    .unwrap();
    let mut lines: Vec<String> = records.lines().take(20).map(String::from).collect();
    let mut v: serde_json::Value = serde_json::from_str(&lines[7]).unwrap();
    v["model"]["sha256"] = "0000000000000000".into();
    lines[7] = v.to_string();
    let f = d.path().join("mixed.jsonl");
    std::fs::write(&f, lines.join("\n")).unwrap();
    let o = common::cli(&[
        "eval",
        "--scored",
        "--label-field",
        "member",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mixed.jsonl:8") && err.contains("one model"),
        "{err}"
    );
}

/// The fine-tune scores and the extraction score through calibrate and score, with a
/// same-vocabulary reference (the tiny checkpoints share one tokenizer); the calibration
/// stores its deciding score; a calibration made with `--k 0.1` serves `score --k 0.1`.
#[test]
fn selected_scores_flow_through_calibration_and_the_stored_deciding_score_is_used() {
    let d = tempfile::tempdir().unwrap();
    let tiny = common::golden().join("tiny");
    let (target, reference) = (tiny.join("llama"), tiny.join("qwen2"));
    let (t, r) = (target.to_str().unwrap(), reference.to_str().unwrap());
    let (members, nonmembers) = (tiny_subset(d.path(), true), tiny_subset(d.path(), false));
    let (mem, non) = (members.to_str().unwrap(), nonmembers.to_str().unwrap());
    let calib = d.path().join("c.json");
    let c = calib.to_str().unwrap();
    let run = |cmd: &str, extra: &[&str]| {
        let mut a = vec![cmd, "-m", t, "--reference", r, "--no-lowercase"];
        a.extend_from_slice(&["--scores", "neg_loss,ref_llr,finetune,extraction_8_8"]);
        a.extend_from_slice(&["--extraction", "8:8:4"]);
        a.extend_from_slice(extra);
        common::cli(&a)
    };
    let o = run(
        "calibrate",
        &["--nonmembers", non, "-o", c, "--decide-by", "ez_llr"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&calib).unwrap()).unwrap();
    assert_eq!(cal["decide_by"], "ez_llr");
    for s in [
        "neg_loss",
        "ref_llr",
        "ez",
        "ez_llr",
        "wbc",
        "ref_info",
        "extraction_8_8",
    ] {
        assert_eq!(cal["scores"][s].as_array().unwrap().len(), 60, "{s}");
    }
    assert!(cal["scores"].get("lowercase").is_none() && cal["scores"].get("zlib").is_none());
    let o = run("score", &[mem, "--calibration", c]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 60);
    let texts = common::jsonl_texts(&members);
    for (row, text) in rows.iter().zip(&texts) {
        assert_eq!(row["decided_by"], "ez_llr");
        let e = &row["extraction"];
        let (a, b) = (
            e["span"][0].as_u64().unwrap() as usize,
            e["span"][1].as_u64().unwrap() as usize,
        );
        let quoted = format!(
            "{}{}",
            e["prefix"].as_str().unwrap(),
            e["suffix"].as_str().unwrap()
        );
        assert_eq!(
            &text[a..b],
            quoted,
            "the evidence is the passage's own text"
        );
        let (lp, p) = (
            e["log_prob"].as_f64().unwrap(),
            e["probability"].as_f64().unwrap(),
        );
        assert!(lp <= 0.0 && (p - lp.exp()).abs() < 1e-12);
        assert_eq!(row["scores"]["extraction_8_8"].as_f64(), Some(lp));
        let ez = row["scores"]["ez"].as_f64().unwrap();
        let wbc = row["scores"]["wbc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ez) && (0.0..=1.0).contains(&wbc));
    }
    // a score that needs a missing model is refused by name
    let o = common::cli(&["score", "-m", t, "--scores", "ez", mem]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--scores ez: needs a reference model"));
    // calibrate --k 0.1, then score --k 0.1: decided by Min-K%++ at 0.1
    let o = common::cli(&[
        "calibrate",
        "-m",
        t,
        "--k",
        "0.1",
        "--nonmembers",
        non,
        "-o",
        c,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = common::cli(&["score", "-m", t, "--k", "0.1", mem, "--calibration", c]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["decided_by"], "minkpp_0.1");
}
