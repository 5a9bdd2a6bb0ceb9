//! Evaluation of membership scores on labelled passages: ROC statistics with bootstrap
//! intervals, TPR at fixed low FPR, a blind baseline that never sees the model, a learned
//! combination of scores, and the dataset-level test.

pub mod baseline;
pub mod dataset;
pub mod logistic;
pub mod plot;
pub mod roc;

use crate::scorer::PassageResult;
use roc::AtFpr;
use serde::Serialize;

/// FPRs at which TPR is reported.
pub const FPRS: [f64; 3] = [0.001, 0.01, 0.05];

/// One score's separation of members from non-members.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreEval {
    pub score: String,
    pub n_members: usize,
    pub n_nonmembers: usize,
    pub auroc: f64,
    /// 95% bootstrap interval.
    pub auroc_ci: Option<(f64, f64)>,
    pub at_fpr: Vec<AtFpr>,
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

/// The evaluation of every score, plus the blind baseline.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub scores: Vec<ScoreEval>,
    /// Passages without a number (too short), left out of every score's figures.
    pub excluded: Vec<String>,
    /// Cross-validated AUROC of a text-only classifier (see [`baseline`]).
    pub blind_baseline_auroc: Option<f64>,
    pub warning: Option<String>,
    pub seed: u64,
    pub bootstrap: usize,
}

/// Member / non-member values of one score (passages lacking it are skipped).
pub fn split_by_label(
    results: &[PassageResult],
    labels: &[bool],
    name: &str,
) -> (Vec<f64>, Vec<f64>) {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for (r, &l) in results.iter().zip(labels) {
        if let Some(v) = r.scores.get(name) {
            if l {
                pos.push(v)
            } else {
                neg.push(v)
            }
        }
    }
    (pos, neg)
}

/// The figures of one score from its member and non-member values.
fn score_eval(
    name: &str,
    pos: &[f64],
    neg: &[f64],
    seed: u64,
    bootstrap: usize,
) -> Option<ScoreEval> {
    let ci = roc::bootstrap(pos, neg, &FPRS, bootstrap, seed);
    let at_fpr = FPRS
        .iter()
        .enumerate()
        .filter_map(|(i, &a)| {
            let mut x = roc::tpr_at_fpr(pos, neg, a)?;
            x.tpr_ci = ci.as_ref().map(|c| c.tpr[i]);
            Some(x)
        })
        .collect();
    Some(ScoreEval {
        score: name.to_string(),
        n_members: pos.len(),
        n_nonmembers: neg.len(),
        auroc: roc::auroc(pos, neg)?,
        auroc_ci: ci.map(|c| c.auroc),
        at_fpr,
        roc: roc::roc_curve(pos, neg),
    })
}

/// Evaluates every score of `results` against `labels` (true = member).
pub fn evaluate(
    results: &[PassageResult],
    labels: &[bool],
    texts: &[&str],
    seed: u64,
    bootstrap: usize,
) -> EvalReport {
    let names: Vec<String> = results
        .first()
        .map(|r| r.scores.scores.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let scores: Vec<ScoreEval> = names
        .iter()
        .filter_map(|name| {
            let (pos, neg) = split_by_label(results, labels, name);
            score_eval(name, &pos, &neg, seed, bootstrap)
        })
        .collect();
    let mut scores: Vec<ScoreEval> = scores;
    if let Some(c) = combined_cv(results, labels, seed, bootstrap) {
        scores.push(c);
    }
    let blind = baseline::blind_auroc(texts, labels, seed);
    EvalReport {
        scores,
        excluded: results
            .iter()
            .filter(|r| r.n_scored == 0)
            .map(|r| r.id.clone())
            .collect(),
        blind_baseline_auroc: blind,
        warning: blind.and_then(baseline::warning),
        seed,
        bootstrap,
    }
}

impl EvalReport {
    /// A table for people.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<14} {:>5} {:>5}  {:>6}  {:>15}  {:>8}  {:>21}  {:>7}  {:>10}\n",
            "score",
            "mem",
            "non",
            "AUROC",
            "95% CI",
            "TPR@0.1%",
            "TPR@1% [95% CI]",
            "TPR@5%",
            "thresh@1%"
        );
        for e in &self.scores {
            let ci = e
                .auroc_ci
                .map_or("-".into(), |(a, b)| format!("[{a:.3}, {b:.3}]"));
            let tpr = |a: f64| {
                e.at_fpr
                    .iter()
                    .find(|x| x.fpr == a)
                    .map_or("-".into(), |x| format!("{:.3}", x.tpr))
            };
            let tpr1 = e
                .at_fpr
                .iter()
                .find(|x| x.fpr == 0.01)
                .map_or("-".into(), |x| match x.tpr_ci {
                    Some((a, b)) => format!("{:.3} [{a:.3}, {b:.3}]", x.tpr),
                    None => format!("{:.3}", x.tpr),
                });
            let th = e
                .at_fpr
                .iter()
                .find(|x| x.fpr == 0.01)
                .map_or("-".into(), |x| format!("{:.4}", x.threshold));
            s.push_str(&format!(
                "{:<14} {:>5} {:>5}  {:>6.3}  {:>15}  {:>8}  {:>21}  {:>7}  {:>10}\n",
                e.score,
                e.n_members,
                e.n_nonmembers,
                e.auroc,
                ci,
                tpr(0.001),
                tpr1,
                tpr(0.05),
                th
            ));
        }
        if let Some(b) = self.blind_baseline_auroc {
            s.push_str(&format!(
                "blind baseline (text only, 5-fold CV): AUROC {b:.3}\n"
            ));
        }
        if !self.excluded.is_empty() {
            s.push_str(&format!(
                "excluded (nothing to score): {}\n",
                self.excluded.len()
            ));
        }
        if let Some(w) = &self.warning {
            s.push_str(w);
            s.push('\n');
        }
        s
    }
}

/// Folds of the cross-validated combination.
const COMBINE_FOLDS: usize = 5;

/// `combined_cv`: a logistic combination of every score, learned on four fifths of the
/// labelled passages and applied to the remaining fifth, five times; the figures are over
/// the pooled out-of-fold values, so no passage is scored by a combination that saw its
/// label. (Passages lacking a score are left out.)
pub fn combined_cv(
    results: &[PassageResult],
    labels: &[bool],
    seed: u64,
    bootstrap: usize,
) -> Option<ScoreEval> {
    let names: Vec<String> = results
        .first()?
        .scores
        .scores
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for (r, &l) in results.iter().zip(labels) {
        if let Some(row) = names
            .iter()
            .map(|n| r.scores.get(n))
            .collect::<Option<Vec<f64>>>()
        {
            rows.push(row);
            y.push(l);
        }
    }
    let n_pos = y.iter().filter(|&&l| l).count();
    if n_pos < COMBINE_FOLDS || y.len() - n_pos < COMBINE_FOLDS || names.len() < 2 {
        return None;
    }
    let d = names.len();
    let fold = logistic::folds(&y, COMBINE_FOLDS, seed);
    let mut decision = vec![0f64; rows.len()];
    for k in 0..COMBINE_FOLDS {
        let train: Vec<usize> = (0..rows.len()).filter(|&i| fold[i] != k).collect();
        let mean: Vec<f64> = (0..d)
            .map(|j| train.iter().map(|&i| rows[i][j]).sum::<f64>() / train.len() as f64)
            .collect();
        let sd: Vec<f64> = (0..d)
            .map(|j| {
                let v = train
                    .iter()
                    .map(|&i| (rows[i][j] - mean[j]).powi(2))
                    .sum::<f64>()
                    / train.len() as f64;
                if v > 0.0 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let feat = |r: &Vec<f64>| -> logistic::Features {
            (0..d)
                .map(|j| (j as u32, (r[j] - mean[j]) / sd[j]))
                .collect()
        };
        let x: Vec<logistic::Features> = train.iter().map(|&i| feat(&rows[i])).collect();
        let ty: Vec<bool> = train.iter().map(|&i| y[i]).collect();
        let settings = logistic::Settings {
            epochs: 100,
            learning_rate: 0.05,
            l2: 1e-3,
            seed: seed.wrapping_add(k as u64),
        };
        let m = logistic::Logistic::fit(&x, &ty, d, settings);
        for i in (0..rows.len()).filter(|&i| fold[i] == k) {
            decision[i] = m.decision(&feat(&rows[i]));
        }
    }
    let pos: Vec<f64> = (0..rows.len())
        .filter(|&i| y[i])
        .map(|i| decision[i])
        .collect();
    let neg: Vec<f64> = (0..rows.len())
        .filter(|&i| !y[i])
        .map(|i| decision[i])
        .collect();
    score_eval("combined_cv", &pos, &neg, seed, bootstrap)
}
