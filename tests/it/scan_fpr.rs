//! The document p-value keeps its false-positive rate on real non-member documents.
//!
//! Documents are built from ../shared/finetune's non-members (paragraphs of the Python
//! language reference, never trained on): five consecutive paragraphs make one document,
//! so a document's passages share a topic, as real documents do. They are scanned with the
//! fine-tuned model (the audit's target). Then, over many random splits of the 40
//! documents, half are the calibration (their passages' scores) and the other half are
//! tested: a document whose p-value is at most a is a false positive, since none was
//! trained on. The rate must stay at the nominal level. One split also runs through the
//! command line (`calibrate --passage-tokens` + `scan --calibration`).
use crate::common;

use miascan::calibrate::empirical_p;
use miascan::eval::bounds::wilson;
use miascan::eval::control::{Finding, Guarded};
use miascan::eval::dataset::welch_greater;
use miascan::record::PassageRecord;
use miascan::scan::verdict::collection_control;
use miascan::scan::verdict::{document_p, mann_whitney_greater};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const SCORE: &str = "minkpp_0.2";

/// The binary with `model` as its default model.
fn with_model(model: &Path) -> Command {
    let mut c = common::miascan();
    c.env("MIASCAN_MODEL", model);
    c
}

/// Writes documents `range` as text files into `dir`.
fn write_docs(dir: &Path, docs: &[String], range: std::ops::Range<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    for i in range {
        std::fs::write(dir.join(format!("doc{i:02}.txt")), &docs[i]).unwrap();
    }
}

#[test]
fn non_member_documents_are_flagged_at_most_at_the_nominal_rate() {
    let Some(shared) = common::shared_large("finetune") else {
        return;
    };
    let shared = shared.parent().unwrap().to_path_buf();
    let model = shared.join("finetune/finetuned.gguf");
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(shared.join("finetune/nonmembers.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut rows: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    let docs: Vec<String> = rows
        .chunks(5)
        .map(|c| {
            c.iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .collect();
    assert_eq!(docs.len(), 40);
    let d = tempfile::tempdir().unwrap();
    let all = d.path().join("all");
    write_docs(&all, &docs, 0..40);
    let out = d.path().join("scan");
    let o = with_model(&model)
        .args([
            "scan",
            all.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--no-lowercase",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // each document's passage scores
    let mut by_doc: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in std::fs::read_to_string(out.join("passages.jsonl"))
        .unwrap()
        .lines()
    {
        let r: PassageRecord = serde_json::from_str(l).unwrap();
        if let Some(v) = r.scores.get(SCORE) {
            by_doc.entry(r.document.unwrap()).or_default().push(v);
        }
    }
    let docs_scores: Vec<Vec<f64>> = by_doc.into_values().collect();
    assert_eq!(docs_scores.len(), 40);
    let passages: usize = docs_scores.iter().map(Vec::len).sum();
    assert!(
        passages >= 120,
        "documents are cut into several passages: {passages}"
    );

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let splits = 2000;
    let (mut tests, mut ours05, mut ours10, mut mwu05) = (0, 0, 0, 0);
    let (mut collection05, mut control05, mut stated05) = (0, 0, 0);
    for split in 0..splits {
        let mut idx: Vec<usize> = (0..40).collect();
        idx.shuffle(&mut rng);
        let mut calib: Vec<f64> = idx[..20]
            .iter()
            .flat_map(|&i| docs_scores[i].clone())
            .collect();
        calib.sort_by(f64::total_cmp);
        let pv = |x: f64| empirical_p(&calib, x);
        let means: Vec<f64> = idx[20..]
            .iter()
            .map(|&i| docs_scores[i].iter().sum::<f64>() / docs_scores[i].len() as f64)
            .collect();
        let (_, _, p) = welch_greater(&means, &calib).unwrap();
        collection05 += usize::from(p <= 0.05);
        // the negative control the scan runs on its calibration: a random half as
        // pseudo-documents of the tested documents' mean size against the other half
        let per_doc = idx[20..]
            .iter()
            .map(|&i| docs_scores[i].len())
            .sum::<usize>()
            / 20;
        let control = collection_control(&calib, per_doc, split as u64).unwrap();
        control05 += usize::from(control <= 0.05);
        // a finding stated on non-members: the test rejects and the control does not
        let g = Guarded::judge(p, 0.05, Some(control), None);
        stated05 += usize::from(g.finding == Finding::Signal);
        for &i in &idx[20..] {
            let ps: Vec<f64> = docs_scores[i].iter().map(|&x| pv(x)).collect();
            let p = document_p(&ps).unwrap();
            tests += 1;
            ours05 += usize::from(p <= 0.05);
            ours10 += usize::from(p <= 0.10);
            mwu05 += usize::from(mann_whitney_greater(&docs_scores[i], &calib).unwrap() <= 0.05);
        }
    }
    let rate = |k: usize| k as f64 / tests as f64;
    let (lo, hi) = wilson(ours05, tests);
    let coll = collection05 as f64 / splits as f64;
    eprintln!(
        "document-level false positives over {splits} splits x 20 documents ({tests} tests): \
         at 0.05: {:.4} [{lo:.4}, {hi:.4}]; at 0.10: {:.4}; Mann-Whitney U of the passages at 0.05: {:.4}; \
         collection test (Welch, 20 documents) at 0.05: {coll:.4} of {splits} splits",
        rate(ours05),
        rate(ours10),
        rate(mwu05)
    );
    let (colo, cohi) = wilson(collection05, splits);
    assert!(
        colo <= 0.05,
        "collection test rate at 0.05: {coll} [{colo}, {cohi}] of {splits} splits"
    );
    // the control's own false-positive rate: the nominal 0.05 at or above its interval's
    // lower end (the calibration halves are random, the passages the same 40 documents')
    let (clo, chi) = wilson(control05, splits);
    let (slo, shi) = wilson(stated05, splits);
    eprintln!(
        "negative control (half of the calibration vs the other half) at 0.05: {:.4} [{clo:.4}, {chi:.4}] of {splits} splits; a finding stated on non-members (collection test and control at 0.05): {:.4} [{slo:.4}, {shi:.4}]",
        control05 as f64 / splits as f64,
        stated05 as f64 / splits as f64
    );
    assert!(
        clo <= 0.05,
        "control rate {control05}/{splits}: [{clo}, {chi}]"
    );
    // what a user reads: the rate of findings stated on non-members, not above the nominal
    // 0.05 (its interval's lower end at or below it)
    assert!(
        slo <= 0.05,
        "findings stated on non-members: {stated05}/{splits}: [{slo}, {shi}]"
    );
    // the nominal rate must lie at or above the interval's lower end: an interval wholly
    // above 0.05 is evidence that the document p-values are anti-conservative
    assert!(
        lo <= 0.05,
        "rate at 0.05: {} with 95% interval [{lo}, {hi}] above the nominal rate",
        rate(ours05)
    );
    // the tests share documents across splits, so allow the noise of ~40 documents
    assert!(
        rate(ours05) <= 0.05 + 0.02,
        "rate at 0.05: {}",
        rate(ours05)
    );
    assert!(
        rate(ours10) <= 0.10 + 0.03,
        "rate at 0.10: {}",
        rate(ours10)
    );

    // the command line on one split: calibrate on 20 documents, scan the other 20
    let (cal_dir, test_dir) = (d.path().join("cal"), d.path().join("test"));
    write_docs(&cal_dir, &docs, 0..20);
    write_docs(&test_dir, &docs, 20..40);
    let calib = d.path().join("calib.json");
    let o = with_model(&model)
        .args([
            "calibrate",
            "--no-lowercase",
            "--passage-tokens",
            "128",
            "--nonmembers",
        ])
        .arg(&cal_dir)
        .args(["-o", calib.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out2 = d.path().join("scan2");
    let o = with_model(&model)
        .args([
            "scan",
            test_dir.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
            "--no-lowercase",
        ])
        .args(["--calibration", calib.to_str().unwrap(), "--fpr", "0.05"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("warning"),
        "same passage length: no warning: {err}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["verdict"]["decided_by"], SCORE);
    assert_eq!(s["verdict"]["documents_tested"], 20);
    assert!(
        s["verdict"]["documents_flagged"].as_u64().unwrap() <= 2,
        "{}",
        s["verdict"]
    );
    let csv = std::fs::read_to_string(out2.join("documents.csv")).unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(6).is_some_and(|p| !p.is_empty())),
        "every document has a p-value:\n{csv}"
    );
    // the control beside the collection's p-value, and the finding
    let c = s["verdict"]["control_p_value"].as_f64().unwrap();
    assert!(c > 0.01, "the control on non-members: {c}");
    assert_eq!(
        s["verdict"]["finding"], "no_signal",
        "non-members against non-members: {}",
        s["verdict"]
    );
    let html = std::fs::read_to_string(out2.join("report.html")).unwrap();
    assert!(html.contains("Negative control") && html.contains("Blind baseline"));
    assert!(html.contains("A statistical signal is not proof"));
    assert!(
        html.contains("calibration non-members"),
        "the histogram shows the calibration"
    );
}
