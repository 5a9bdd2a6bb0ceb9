//! The blind baseline on WikiMIA-32 (members: pre-2017 events, non-members: 2023+): the
//! classifier never sees a model and still separates the sets, so the warning must fire.
use crate::common;

use miascan::eval::baseline::{blind_auroc, warning};

#[test]
fn wikimia_triggers_the_distribution_shift_warning() {
    let Some(path) = common::shared_large("wikimia/32.jsonl") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r["input"].as_str().unwrap()).collect();
    let labels: Vec<bool> = rows
        .iter()
        .map(|r| r["label"].as_i64().unwrap() == 1)
        .collect();
    let a = blind_auroc(&texts, &labels, 0).unwrap();
    eprintln!("WikiMIA-32 blind baseline AUROC {a:.3}");
    assert!(a >= 0.8, "blind AUROC {a}");
    assert!(warning(a).is_some());
}

#[test]
fn finetune_pool_is_one_distribution() {
    // members and non-members were split at random from one pool: no warning
    let Some(dir) = common::shared_large("finetune") else {
        return;
    };
    let read = |f: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (m, n) = (read("members.jsonl"), read("nonmembers.jsonl"));
    let texts: Vec<&str> = m.iter().chain(&n).map(String::as_str).collect();
    let labels: Vec<bool> = (0..texts.len()).map(|i| i < m.len()).collect();
    let a = blind_auroc(&texts, &labels, 0).unwrap();
    eprintln!("fine-tune pool blind baseline AUROC {a:.3}");
    assert!(warning(a).is_none(), "blind AUROC {a} on a random split");
}
