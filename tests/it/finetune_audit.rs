//! The fine-tune audit (../shared/finetune): SmolLM2 fine-tuned on 200 known members, 200
//! non-members from the same pool, the base model as reference. One scoring pass serves the
//! evaluation floor, calibration, and the dataset test with its false-positive rate.
use crate::common;

use miascan::calibrate::{Calibration, Settings};
use miascan::eval::dataset::{dataset_test, score_matrix};
use miascan::eval::{cv, evaluate, split_by_label};
use miascan::input::{read_inputs, ReadOptions};
use miascan::model::Model;
use miascan::record::PassageRecord;
use miascan::scorer::{ScoreOptions, Scorer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

fn score(
    target: &Model,
    reference: &Model,
    file: &Path,
    opts: &ScoreOptions,
) -> Vec<PassageRecord> {
    let passages = read_inputs(&[file.to_path_buf()], &ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    let (target, reference) = (opts.local_engine(target), opts.local_engine(reference));
    Scorer::new(&target, opts.clone())
        .with_reference(&reference)
        .select()
        .unwrap()
        .score_all(&passages, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn finetune_audit() {
    let Some(dir) = common::shared_large("finetune") else {
        return;
    };
    let cpu = candle_core::Device::Cpu;
    let target = Model::load(&dir.join("finetuned.gguf"), &cpu).unwrap();
    let reference = Model::load(&common::model(common::SMOLLM2), &cpu).unwrap();
    // the default set and the fine-tune scores: the same two passes (target, reference)
    let opts = ScoreOptions {
        lowercase: false,
        scores: Some(vec!["default".into(), "finetune".into()]),
        ..Default::default()
    };
    let members = score(&target, &reference, &dir.join("members.jsonl"), &opts);
    let nonmembers = score(&target, &reference, &dir.join("nonmembers.jsonl"), &opts);
    assert_eq!((members.len(), nonmembers.len()), (200, 200));

    // evaluation: the reference attack matches the peer's AUROC (0.945). Its TPR at 1% FPR
    // (0.41 with llama.cpp's log-probs) is 0.375 with the f32 log-probs that transformers also
    // gives; tests/eval_cli.rs checks that the peer's own log-probs give the peer's 0.41.
    let all: Vec<PassageRecord> = members.iter().chain(&nonmembers).cloned().collect();
    let labels: Vec<bool> = (0..400).map(|i| i < 200).collect();
    let texts: Vec<String> = Vec::new();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rep = evaluate(&all, &labels, &texts, 0, 200);
    let get = |n: &str| rep.scores.iter().find(|s| s.score == n).unwrap();
    let r = get("ref");
    eprintln!(
        "ref AUROC {:.3} {:?}, TPR@1% {:.3}",
        r.auroc, r.auroc_ci, r.at_fpr[1].tpr
    );
    assert!((r.auroc - 0.945).abs() < 0.005, "ref AUROC {}", r.auroc);
    let best_tpr = ["ref", "ref_bpb", "ref_mink_0.2", "ref_llr"]
        .iter()
        .map(|n| get(n).at_fpr[1].tpr)
        .fold(0.0, f64::max);
    assert!(best_tpr >= 0.41, "best reference TPR@1% {best_tpr}");
    let c = get("combined_cv");
    eprintln!(
        "combined_cv AUROC {:.3}, TPR@1% {:.3}; ref_llr AUROC {:.3}, TPR@1% {:.3}",
        c.auroc,
        c.at_fpr[1].tpr,
        get("ref_llr").auroc,
        get("ref_llr").at_fpr[1].tpr
    );
    assert!(c.auroc >= 0.95, "combined_cv AUROC {}", c.auroc);
    // the cross-validated choice of a deciding score beats the peer's `ref` at 1% FPR
    let s = get("selected_cv");
    let sel = rep.selection.as_ref().unwrap();
    eprintln!(
        "selected_cv AUROC {:.3}, TPR@1% {:.3}; picks {:?}, recommended {}",
        s.auroc, s.at_fpr[1].tpr, sel.picks, sel.recommended
    );
    assert!(
        s.at_fpr[1].tpr >= 0.41,
        "selected_cv TPR@1% {}",
        s.at_fpr[1].tpr
    );
    // a reference-based score decides (ref_llr or the error-zone ez_llr)
    assert!(
        sel.recommended.starts_with("ref") || sel.recommended.starts_with("ez"),
        "{}",
        sel.recommended
    );
    // issue #11's goal: TPR >= 0.6 at 1% FPR chosen by cross-validation, mean over fold
    // seeds 0-7 (measured: 0.660-0.735, mean 0.706; with the empirical criterion it was 0.459)
    let tprs: Vec<f64> = (0..8)
        .map(|seed| {
            cv::selected_cv(&all, &labels, seed, 20)
                .unwrap()
                .eval
                .at_fpr[1]
                .tpr
        })
        .collect();
    let mean = tprs.iter().sum::<f64>() / tprs.len() as f64;
    eprintln!("selected_cv TPR@1% over fold seeds 0-7: {tprs:?}, mean {mean:.3}");
    assert!(mean >= 0.6, "selected_cv mean TPR@1% {mean} over seeds 0-7");
    // the target alone is weak, as the peer found (0.706)
    assert!(get("neg_loss").auroc < 0.8);

    // calibration on half of the non-members; the other half is flagged at about the FPR.
    // Over uniformly random splits of one pool, a held-out non-member's conformal p-value
    // is <= 0.05 with probability <= 5/101 exactly (exchangeability), so the mean rate over
    // many splits may exceed 0.05 only by its Monte Carlo error: 3.1 standard errors is a
    // one-sided bound that a valid calibration fails once in 1000 runs.
    let settings = Settings::new(&target.identity, Some(&reference.identity), &opts);
    let flagged = |calib: &Calibration, set: &[&PassageRecord]| {
        set.iter()
            .filter(|r| {
                r.scores
                    .get("ref")
                    .and_then(|x| calib.p_value("ref", x))
                    .is_some_and(|p| p <= 0.05)
            })
            .count() as f64
            / set.len() as f64
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let rates: Vec<f64> = (0..200)
        .map(|_| {
            let mut idx: Vec<usize> = (0..200).collect();
            idx.shuffle(&mut rng);
            let cal: Vec<PassageRecord> =
                idx[..100].iter().map(|&i| nonmembers[i].clone()).collect();
            let held: Vec<&PassageRecord> = idx[100..].iter().map(|&i| &nonmembers[i]).collect();
            flagged(&Calibration::from_results(settings.clone(), &cal), &held)
        })
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let se = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>()
        / (rates.len() - 1) as f64
        / rates.len() as f64)
        .sqrt();
    let calib = Calibration::from_results(settings, &nonmembers[..100]);
    let all_members: Vec<&PassageRecord> = members.iter().collect();
    let tp = flagged(&calib, &all_members);
    eprintln!(
        "calibrated at 5% FPR: held-out non-members flagged {mean:.4} (se {se:.4}, 200 random \
         splits), members {tp:.3}"
    );
    assert!(
        mean <= 0.05 + 3.1 * se,
        "held-out non-members flagged {mean} (se {se}) over 200 splits"
    );
    assert!(tp >= 0.5, "members flagged {tp}");
    let (pos, _) = split_by_label(&all, &labels, "ref");
    assert_eq!(pos.len(), 200);

    // dataset test: members vs non-members is significant
    let m = score_matrix(&members, &nonmembers);
    let d = dataset_test(&m.names, &m.a, &m.b, 0).unwrap();
    eprintln!("dataset test members vs non-members: p = {:.2e}", d.p_value);
    assert!(d.p_value < 0.01, "p = {}", d.p_value);

    // ... and two random disjoint halves of the non-members are not: over 400 random
    // splits, the count significant at 0.05 stays within the one-sided binomial bound
    // (Binomial(400, 0.05) exceeds it with probability <= 0.001)
    let rows = score_matrix(&nonmembers, &[]).a;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let splits = 400u64;
    let mut significant = 0u64;
    for seed in 0..splits {
        let mut idx: Vec<usize> = (0..rows.len()).collect();
        idx.shuffle(&mut rng);
        let (a, b) = idx.split_at(rows.len() / 2);
        let pick = |ix: &[usize]| ix.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>();
        let r = dataset_test(&m.names, &pick(a), &pick(b), seed).unwrap();
        if r.p_value <= 0.05 {
            significant += 1;
        }
    }
    // dataset-test's own negative control (one seeded random half of the validation set
    // against the other) at 0.05, over 2,000 seeds (enough that a rate of 6% fails)
    let seeds = 2000u64;
    let control05 = (0..seeds)
        .filter(|&s| miascan::eval::dataset::control(&m.names, &rows, s).unwrap() <= 0.05)
        .count();
    let (lo, hi) = miascan::eval::bounds::wilson(control05, seeds as usize);
    eprintln!(
        "dataset-test's negative control at 0.05: {control05} of {seeds} seeds ({:.3}, 95% interval [{lo:.3}, {hi:.3}])",
        control05 as f64 / seeds as f64
    );
    assert!(lo <= 0.05, "control rate {control05}/{seeds}: [{lo}, {hi}]");
    let bound = miascan::eval::bounds::binomial_upper(splits, 0.05, 0.001);
    eprintln!(
        "non-member halves significant at 0.05 in {significant} of {splits} splits (bound {bound})"
    );
    assert!(
        significant <= bound,
        "{significant} false positives in {splits} splits (bound {bound})"
    );
}
