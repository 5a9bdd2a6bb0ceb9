//! The guards of `dataset-test`'s verdict, through the command line on the tiny gemma2
//! (trained on the 60 member passages): a finding is stated only when the negative control
//! (one half of the validation set against the other) does not reject and a classifier that
//! never sees the model cannot tell the two sets apart; and it is worded as a statistical
//! signal, not proof.

use crate::common;
use std::path::Path;

/// The tiny passages: (members, non-members) as JSONL lines.
fn passages() -> (Vec<String>, Vec<String>) {
    let all = std::fs::read_to_string(common::golden().join("tiny/passages.jsonl")).unwrap();
    let (m, n): (Vec<&str>, Vec<&str>) = all.lines().partition(|l| l.contains("\"member\": true"));
    (
        m.into_iter().map(String::from).collect(),
        n.into_iter().map(String::from).collect(),
    )
}

fn write(dir: &Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.display().to_string()
}

/// Runs dataset-test and returns its JSON verdict.
fn verdict(dir: &Path, suspect: &str, validation: &str) -> serde_json::Value {
    let json = dir.join("out.json");
    let model = common::golden().join("tiny/gemma2");
    let o = common::miascan()
        .args(["dataset-test", "--no-lowercase", "-m"])
        .arg(&model)
        .args(["--suspect", suspect, "--validation", validation, "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // the printed verdict is the JSON's sentence
    let sentence = v["verdict"]["sentence"].as_str().unwrap();
    assert!(out.contains(sentence), "{out}");
    v["verdict"].clone()
}

#[test]
fn members_against_non_members_of_the_same_source_are_a_signal_worded_as_not_proof() {
    let d = tempfile::tempdir().unwrap();
    let (m, n) = passages();
    let v = verdict(
        d.path(),
        &write(d.path(), "m.jsonl", &m),
        &write(d.path(), "n.jsonl", &n),
    );
    assert_eq!(v["finding"], "signal", "{v}");
    assert!(v["p_value"].as_f64().unwrap() < 1e-6, "{v}");
    assert!(v["control_p_value"].as_f64().unwrap() > 0.01, "{v}");
    // same source (one documentation set): the blind classifier is near chance
    assert!(v["blind_auroc"].as_f64().unwrap() < 0.6, "{v}");
    let s = v["sentence"].as_str().unwrap();
    assert!(
        s.starts_with("Statistical signal") && s.contains("not proof"),
        "{s}"
    );
}

#[test]
fn non_members_against_non_members_are_no_finding() {
    let d = tempfile::tempdir().unwrap();
    let (_, n) = passages();
    // alternate passages: the file is ordered by source section, so its two halves would
    // differ as texts (the blind baseline reads 0.61 on them)
    let a: Vec<String> = n.iter().step_by(2).cloned().collect();
    let b: Vec<String> = n.iter().skip(1).step_by(2).cloned().collect();
    let v = verdict(
        d.path(),
        &write(d.path(), "a.jsonl", &a),
        &write(d.path(), "b.jsonl", &b),
    );
    assert_eq!(v["finding"], "no_signal", "{v}");
    assert!(
        v["sentence"]
            .as_str()
            .unwrap()
            .contains("does not show that"),
        "{v}"
    );
}

#[test]
fn sets_a_model_free_classifier_separates_are_inconclusive_however_small_the_p_value() {
    let d = tempfile::tempdir().unwrap();
    let (m, _) = passages();
    // validation text of another kind: short notices the model never saw, numbered
    let other: Vec<String> = (0..60)
        .map(|i| {
            serde_json::json!({
                "text": format!("Council notice {i}: the 2031 harbour levy for berth {} rises to {} crowns from March.", i % 11, 40 + i)
            })
            .to_string()
        })
        .collect();
    let v = verdict(
        d.path(),
        &write(d.path(), "m.jsonl", &m),
        &write(d.path(), "o.jsonl", &other),
    );
    assert!(
        v["p_value"].as_f64().unwrap() < 0.01,
        "the test alone would reject: {v}"
    );
    assert!(v["blind_auroc"].as_f64().unwrap() >= 0.6, "{v}");
    assert_eq!(v["finding"], "inconclusive_blind", "{v}");
    let s = v["sentence"].as_str().unwrap();
    assert!(
        s.starts_with("Inconclusive: the sets differ without the model"),
        "{s}"
    );
}

#[test]
fn too_few_known_non_members_for_the_control_is_no_finding() {
    let d = tempfile::tempdir().unwrap();
    let (m, n) = passages();
    let v = verdict(
        d.path(),
        &write(d.path(), "m.jsonl", &m),
        &write(d.path(), "n.jsonl", &n[..6]),
    );
    assert!(v["control_p_value"].is_null(), "{v}");
    assert_eq!(v["finding"], "inconclusive_control", "{v}");
}
