//! Evaluation of membership scores on labelled passages: ROC statistics with bootstrap
//! intervals, TPR at fixed low FPR, a blind baseline that never sees the model, a learned
//! combination of scores, and the dataset-level test.

pub mod baseline;
pub mod bounds;
pub mod control;
pub mod cv;
pub mod dataset;
pub mod logistic;
pub mod plot;
pub mod reservoir;
pub mod roc;

use crate::record::PassageRecord;
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
    /// The cross-validated choice of a deciding score (row `selected_cv`).
    pub selection: Option<cv::Selection>,
    pub seed: u64,
    pub bootstrap: usize,
}

/// Member / non-member values of one score (passages lacking it are skipped).
pub fn split_by_label(
    results: &[PassageRecord],
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
pub(crate) fn score_eval(
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
    results: &[PassageRecord],
    labels: &[bool],
    texts: &[&str],
    seed: u64,
    bootstrap: usize,
) -> EvalReport {
    let names: Vec<String> = results
        .first()
        .map(|r| r.scores.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let scores: Vec<ScoreEval> = names
        .iter()
        .filter_map(|name| {
            let (pos, neg) = split_by_label(results, labels, name);
            score_eval(name, &pos, &neg, seed, bootstrap)
        })
        .collect();
    let mut scores: Vec<ScoreEval> = scores;
    if let Some(c) = cv::combined_cv(results, labels, seed, bootstrap) {
        scores.push(c);
    }
    let selection = cv::selected_cv(results, labels, seed, bootstrap);
    if let Some(s) = &selection {
        scores.push(s.eval.clone());
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
        selection,
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
        if let Some(sel) = &self.selection {
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for p in &sel.picks {
                match counts.iter_mut().find(|(n, _)| n == p) {
                    Some(c) => c.1 += 1,
                    None => counts.push((p, 1)),
                }
            }
            let picks: Vec<String> = counts
                .iter()
                .map(|(n, c)| format!("{n} in {c}/{}", sel.picks.len()))
                .collect();
            s.push_str(&format!(
                "selected_cv: best (binormal) TPR@1% on the training folds picked {}; on all passages: {} (use as --decide-by)\n",
                picks.join(", "),
                sel.recommended
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
