//! The shift-free benchmark's fixture (tests/data/shift-free; scripts/bench/shift-free/):
//! a GPT-2 pretrained here from scratch on a random half of King James Bible passages
//! (examples/pretrain_shift_free.rs), after 1 and 4 epochs. These tests check that miascan
//! reads the checkpoints as they were trained (the training forward's losses, recorded in
//! `train-check.json`), and that the benchmark's sets differ by training only: a classifier
//! that never sees the model cannot tell members from held-out passages.

use crate::common;
use std::path::PathBuf;

fn data() -> PathBuf {
    common::golden().parent().unwrap().join("shift-free")
}

/// A checkpoint of the fixture as a folder miascan reads: the repository keeps its weights
/// gzipped (`model.safetensors.gz`, under the 2 MiB a tracked file may take), expanded once
/// per test process into the target's scratch folder under the checkpoint's own name (the
/// name and the weights' hash are its identity: both as trained).
fn checkpoint(name: &str) -> PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = READY.lock().unwrap_or_else(|e| e.into_inner());
    let (src, dst) = (
        data().join(name),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("shift-free")
            .join(name),
    );
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut weights = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(src.join("model.safetensors.gz")).unwrap(),
        ),
        &mut weights,
    )
    .unwrap();
    if std::fs::read(dst.join("model.safetensors")).ok().as_ref() != Some(&weights) {
        std::fs::write(dst.join("model.safetensors"), weights).unwrap();
    }
    dst
}

fn passages() -> Vec<serde_json::Value> {
    std::fs::read_to_string(data().join("passages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_checkpoints_read_as_they_were_trained() {
    let rows = passages();
    let by_set = |member: bool| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["member"].as_bool() == Some(member))
            .collect()
    };
    let (members, held) = (by_set(true), by_set(false));
    let dir = tempfile::tempdir().unwrap();
    for epoch in ["epoch-1", "epoch-4"] {
        let model = checkpoint(epoch);
        let check: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(data().join(epoch).join("train-check.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(check.len(), 64);
        // the passages the trainer checked, in its order, as one JSONL
        let input = dir.path().join(format!("{epoch}.jsonl"));
        let lines: Vec<String> = check
            .iter()
            .map(|c| {
                let set = if c["set"] == "member" {
                    &members
                } else {
                    &held
                };
                set[c["index"].as_u64().unwrap() as usize].to_string()
            })
            .collect();
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let o = common::miascan()
            .args([
                "score",
                "--no-lowercase",
                "--scores",
                "neg_loss",
                "--token-logprobs",
                "-m",
            ])
            .arg(&model)
            .arg(&input)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), 64);
        let mut worst = 0f64;
        for (c, r) in check.iter().zip(&got) {
            // the same tokens (miascan's reading of the trained tokenizer.json) …
            assert_eq!(r["token_ids"], c["ids"], "{epoch} {}", r["id"]);
            // … and the same loss as the training forward
            let (want, have) = (
                c["loss"].as_f64().unwrap(),
                r["stats"]["loss"].as_f64().unwrap(),
            );
            worst = worst.max((want - have).abs());
        }
        assert!(worst < 1e-3, "{epoch}: max |loss difference| {worst}");
    }
}

#[test]
fn members_and_held_out_passages_differ_by_training_only() {
    let rows = passages();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let member: Vec<bool> = rows
        .iter()
        .map(|r| r["member"].as_bool().unwrap())
        .collect();
    assert_eq!(member.iter().filter(|&&m| m).count(), 2000);
    let blind = miascan::eval::baseline::blind_auroc(&texts, &member, 0).unwrap();
    assert!(blind < 0.55, "the blind baseline tells them apart: {blind}");
}

/// Scans `suspect` with `--nonmembers cal` on the 4-epoch model; its summary's verdict.
fn scan_verdict(
    dir: &std::path::Path,
    name: &str,
    suspect: &[&serde_json::Value],
    cal: &[&serde_json::Value],
) -> serde_json::Value {
    let write = |file: &str, rows: &[&serde_json::Value]| {
        let p = dir.join(file);
        let lines: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let (s, c) = (
        write(&format!("{name}.jsonl"), suspect),
        write(&format!("{name}-cal.jsonl"), cal),
    );
    let out = dir.join(name);
    let o = common::miascan()
        .args([
            "scan",
            "-q",
            "--no-lowercase",
            "--passage-tokens",
            "256",
            "-m",
        ])
        .arg(checkpoint("epoch-4"))
        .arg(&s)
        .arg("--nonmembers")
        .arg(&c)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    summary["verdict"].clone()
}

#[test]
fn a_scan_states_a_signal_for_members_and_none_for_held_out_passages() {
    let rows = passages();
    let members: Vec<&serde_json::Value> = rows.iter().filter(|r| r["member"] == true).collect();
    let held: Vec<&serde_json::Value> = rows.iter().filter(|r| r["member"] == false).collect();
    let dir = tempfile::tempdir().unwrap();
    let cal = &held[..300];
    // members against held-out non-members: the sets differ by training only
    let v = scan_verdict(dir.path(), "members", &members[..150], cal);
    assert_eq!(v["finding"], "signal", "{v}");
    assert!(v["blind_auroc"].as_f64().unwrap() < 0.6, "{v}");
    assert!(v["control_p_value"].as_f64().unwrap() > 0.01, "{v}");
    assert!(v["sentence"].as_str().unwrap().contains("not proof"), "{v}");
    // other held-out passages against the same non-members: nothing to find
    let v = scan_verdict(dir.path(), "held", &held[300..450], cal);
    assert_eq!(v["finding"], "no_signal", "{v}");
    assert!(v["blind_auroc"].as_f64().unwrap() < 0.6, "{v}");
    // held-out passages against non-members of another kind (Python documentation): the
    // model scores them apart, and so does a classifier that never sees it — no finding
    let docs: Vec<serde_json::Value> =
        std::fs::read_to_string(common::golden().join("tiny/passages.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let other: Vec<&serde_json::Value> = docs.iter().collect();
    let v = scan_verdict(dir.path(), "shifted", &held[300..450], &other);
    assert!(v["blind_auroc"].as_f64().unwrap() >= 0.6, "{v}");
    assert_eq!(v["finding"], "inconclusive_blind", "{v}");
}
