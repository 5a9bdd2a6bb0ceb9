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
    let (m, n) = (
        common::jsonl_texts(&dir.join("members.jsonl")),
        common::jsonl_texts(&dir.join("nonmembers.jsonl")),
    );
    let texts: Vec<&str> = m.iter().chain(&n).map(String::as_str).collect();
    let labels: Vec<bool> = (0..texts.len()).map(|i| i < m.len()).collect();
    let a = blind_auroc(&texts, &labels, 0).unwrap();
    eprintln!("fine-tune pool blind baseline AUROC {a:.3}");
    assert!(warning(a).is_none(), "blind AUROC {a} on a random split");
}

/// The blind baseline on small sets of one distribution: random halves of the tiny
/// corpus's 60 non-member passages (30 against 30). Chance alone spreads the AUROC by about
/// ±0.075 there, so the fixed 0.6 calls equal sets "different" far more often than the 5%
/// a guard should; the permutation bound brings it to about 5%.
#[test]
fn small_sets_of_one_distribution_are_rarely_called_different() {
    use miascan::eval::baseline::{blind, WARN_AUROC};
    let text = std::fs::read_to_string(common::golden().join("tiny/passages.jsonl")).unwrap();
    let non: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["member"] == false)
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(non.len(), 60);
    let texts: Vec<&str> = non.iter().map(String::as_str).collect();
    let runs = 200u64;
    let (mut fixed, mut bounded) = (0u64, 0u64);
    for seed in 0..runs {
        let (a, _) = miascan::eval::control::halves(texts.len(), seed);
        let mut labels = vec![false; texts.len()];
        a.iter().for_each(|&i| labels[i] = true);
        let b = blind(&texts, &labels, seed).unwrap();
        fixed += u64::from(b.auroc >= WARN_AUROC);
        bounded += u64::from(b.separates());
        assert!(b.bound >= WARN_AUROC);
    }
    eprintln!(
        "random halves of 60 non-members, {runs} splits: called different at AUROC >= 0.6 in {fixed}, against the permutation bound in {bounded}"
    );
    let limit = miascan::eval::bounds::binomial_upper(runs, 0.05, 0.001);
    assert!(bounded <= limit, "{bounded} of {runs} (limit {limit})");
    assert!(bounded <= fixed);
}
