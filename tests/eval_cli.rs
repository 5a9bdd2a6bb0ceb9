//! `miascan eval` end to end on the tiny trained checkpoints (fast): the known members are
//! found, the JSON and SVG reports are written, and WikiMIA's distribution shift triggers the
//! blind-baseline warning.

mod common;

use std::process::Command;

fn miascan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_miascan"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn tiny_checkpoints_reveal_their_members() {
    let shared = common::shared();
    let passages = shared.join("golden/tiny/passages.jsonl");
    let d = tempfile::tempdir().unwrap();
    for arch in ["gpt2", "gpt_neox", "llama", "qwen2", "mistral"] {
        let json = d.path().join(format!("{arch}.json"));
        let svg = d.path().join(format!("{arch}.svg"));
        let model = shared.join("golden/tiny").join(arch);
        let o = miascan(&[
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
    let shared = common::shared();
    let model = shared.join("golden/tiny/llama");
    let o = miascan(&[
        "eval",
        "-m",
        model.to_str().unwrap(),
        "--text-field",
        "input",
        "--label-field",
        "label",
        shared.join("wikimia/32.jsonl").to_str().unwrap(),
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
    let shared = common::shared();
    let model = shared.join("golden/tiny/llama");
    let o = miascan(&[
        "eval",
        "-m",
        model.to_str().unwrap(),
        shared.join("golden/tiny/passages.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--label-field"));
}
