//! From passage p-values to document and collection verdicts.
//!
//! **What the passage p-values assume.** Each passage's p-value comes from the calibration
//! (`(1 + #{non-members >= x}) / (1 + n)`): it is valid (`P(p <= a) <= a`) for a passage
//! exchangeable with the calibration's non-member passages — same source distribution, same
//! passage length (calibrate with the same `--passage-tokens`).
//!
//! **Why not a rank test of the document's passages.** The passages of one document are not
//! independent: they share a topic, an author and a register, so a non-member document whose
//! style the model happens to like has *all* its passages a little high. A Mann–Whitney U of
//! the document's passages against the calibration treats them as independent draws and is
//! anti-conservative for exactly those documents (measured in the fine-tune audit test).
//!
//! **The document p-value** combines its `m` passage p-values by rules that are valid under
//! *any* dependence between them, so nothing is assumed about how the passages relate:
//! - Bonferroni, `m · min p`: catches a document with one leaked passage;
//! - quantile aggregation at γ = 1/2 (Meinshausen, Meier & Bühlmann 2009),
//!   `2 · p_(⌈m/2⌉)`: catches a document most of which was trained on;
//!
//! and takes twice the smaller of the two (Bonferroni over the two rules), capped at 1. A
//! document of one passage has that passage's p-value.
//!
//! **Across the collection**, documents are flagged by Benjamini–Hochberg at a false
//! discovery rate (valid under positive dependence, as documents sharing one calibration
//! have). The collection-level test is [`conclude`]'s (documents as units).

use super::log::RunHeader;
use super::summary::{CollectionTest, Outputs};
pub use crate::eval::control::fmt_p;
use crate::eval::control::{Finding, Guarded};
use crate::eval::dataset::welch_greater;

/// The p-value of a document from its passages' p-values (missing ones left out); `None`
/// when no passage has one.
pub fn document_p(passage_p: &[f64]) -> Option<f64> {
    combine(passage_p)
}

fn combine(p: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = p.iter().copied().filter(|x| x.is_finite()).collect();
    let m = v.len();
    match m {
        0 => None,
        1 => Some(v[0].clamp(0.0, 1.0)),
        _ => {
            v.sort_by(f64::total_cmp);
            let bonferroni = m as f64 * v[0];
            let quantile = 2.0 * v[m.div_ceil(2) - 1];
            Some((2.0 * bonferroni.min(quantile)).min(1.0))
        }
    }
}

/// Benjamini–Hochberg adjusted p-values (`q`), in the input's order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let n = p.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; n];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * n as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// One-sided Mann–Whitney U p-value (normal approximation with tie correction) that `a`
/// tends to exceed `b`. Kept to show, in tests, why it is not used for documents.
pub fn mann_whitney_greater(a: &[f64], b: &[f64]) -> Option<f64> {
    use statrs::distribution::{ContinuousCDF, Normal};
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut rank_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0;
        let t = (j - i) as f64;
        ties += t * t * t - t;
        rank_a += r * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return None;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    Some(Normal::new(0.0, 1.0).ok()?.sf(z))
}

/// Completes the verdict once the calibration's values of the deciding score are known
/// (`o.calibration_values`): the collection test and the sentence.
///
/// **Collection test.** Documents are the independent units: each document's mean of the
/// deciding score over its passages is compared with the calibration's non-member passages
/// by a one-sided Welch t-test (H1: the documents score higher on average) — the test of
/// the dataset-inference literature (Maini et al. 2024) with documents as units and one
/// score. Passages of one document are not independent, documents are; under the null
/// (no document was trained on, passages exchangeable with the calibration's) a document's
/// mean has the calibration's mean, and Welch allows the variances to differ (a mean of m
/// passages varies less than one passage). The calibration's passages are treated as
/// independent: cut from long documents, they are not quite, which the test's false-positive
/// check in `tests/scan_fpr.rs` measures.
pub fn conclude(o: &mut Outputs) {
    let s = &mut o.summary;
    let v = &mut s.verdict;
    if let (Some(by), false) = (&v.decided_by, o.calibration_values.is_empty()) {
        if let Some(i) = s.scores.iter().position(|n| n == by) {
            let means: Vec<f64> = o
                .documents
                .iter()
                .filter_map(|d| d.mean.get(i).copied().flatten())
                .collect();
            let scored: usize = o
                .documents
                .iter()
                .filter(|d| d.mean.get(i).copied().flatten().is_some())
                .map(|d| d.scored)
                .sum();
            let per_document = (scored as f64 / means.len().max(1) as f64).round() as usize;
            v.control_p_value = collection_control(&o.calibration_values, per_document, 0);
            if let Some((t, df, p)) = welch_greater(&means, &o.calibration_values) {
                let avg = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
                v.collection_p_value = Some(p);
                v.collection_test = Some(CollectionTest {
                    method: "one-sided Welch t-test: document means of the deciding score vs the calibration's non-member passages".into(),
                    documents: means.len(),
                    calibration_passages: o.calibration_values.len(),
                    mean_documents: avg(&means),
                    mean_calibration: avg(&o.calibration_values),
                    t,
                    df,
                });
            }
        }
        // BH flags a lone document only if its p-value can reach fdr / N
        let n_cal = v.calibration_n.unwrap_or(0);
        let need = (v.documents_tested as f64 / v.fdr).ceil() as usize;
        if v.documents_tested > 1 && n_cal + 1 < need {
            v.note = Some(format!(
                "With {n_cal} calibration passages no p-value is below 1/{}, so among {} documents one can be flagged on its own only with at least {} calibration passages: documents are flagged here only when many of them score high together. Calibrate on more non-members for document-level findings.",
                n_cal + 1,
                v.documents_tested,
                need - 1
            ));
        }
    }
    let guarded = v.collection_p_value.map(|p| {
        let blind = v.blind_auroc.map(|auroc| crate::eval::baseline::Blind {
            auroc,
            bound: v.blind_bound.unwrap_or(crate::eval::baseline::WARN_AUROC),
        });
        Guarded::judge(p, COLLECTION_ALPHA, v.control_p_value, blind)
    });
    v.finding = guarded.as_ref().map(|g| g.finding);
    v.sentence = sentence(
        &s.header,
        v.decided_by.as_deref(),
        s.documents,
        v.documents_tested,
        v.documents_flagged,
        guarded.as_ref(),
        v.fdr,
    );
    if let Some(fpr) = v.fpr {
        let stated = matches!(v.finding, Some(Finding::Signal | Finding::NoSignal));
        v.sentence.push_str(&if stated {
            format!(
                " {} of {} passages are flagged on their own (p-value at most {fpr}).",
                v.passages_flagged, s.passages
            )
        } else {
            format!(
                " {} of {} passages reach the passage threshold (p-value at most {fpr}), which for the same reason is no finding.",
                v.passages_flagged, s.passages
            )
        });
    }
}

/// Level of the collection test and its negative control.
pub const COLLECTION_ALPHA: f64 = 0.01;

/// The collection test's negative control: the calibration's non-member passages split into
/// two random halves (seeded: a rerun gives the same answer; the scan uses seed 0); one
/// half grouped into
/// pseudo-documents of `per_document` passages (the collection's mean; single passages when
/// that leaves fewer than two), their means tested against the other half's passages by
/// the same one-sided Welch test. `None` with fewer than 8 calibration passages.
pub fn collection_control(calibration: &[f64], per_document: usize, seed: u64) -> Option<f64> {
    if calibration.len() < 8 {
        return None;
    }
    let (a, b) = crate::eval::control::halves(calibration.len(), seed);
    let m = if a.len() / per_document.max(1) >= 2 {
        per_document.max(1)
    } else {
        1
    };
    let means: Vec<f64> = a
        .chunks_exact(m)
        .map(|c| c.iter().map(|&k| calibration[k]).sum::<f64>() / m as f64)
        .collect();
    let rest: Vec<f64> = b.iter().map(|&k| calibration[k]).collect();
    welch_greater(&means, &rest).map(|r| r.2)
}

fn sentence(
    header: &RunHeader,
    by: Option<&str>,
    documents: usize,
    tested: usize,
    flagged: usize,
    guarded: Option<&Guarded>,
    fdr: f64,
) -> String {
    let model = &header.model.name;
    match (by, guarded) {
        (Some(by), Some(g)) => {
            let verdict = g.sentence("the collection", "text known not to be in the training data");
            let flags = match g.finding {
                Finding::Signal | Finding::NoSignal => format!(
                    "{flagged} of {tested} documents are flagged as likely training data at a {:.0}% false discovery rate.",
                    fdr * 100.0
                ),
                _ => format!(
                    "{flagged} of {tested} documents reach the flagging threshold ({:.0}% false discovery rate), but with the check failing they are not findings.",
                    fdr * 100.0
                ),
            };
            format!("{verdict} (Decided by {by} on {model}.) {flags}")
        }
        _ => format!(
            "{documents} documents were scored with {model}. Without a calibration on known non-members there is no verdict: the scores rank documents, but say nothing about how unusual a score is (scan with --nonmembers FILES, text known not to be training data, or with --calibration from `miascan calibrate`)."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn combination_by_hand() {
        assert_eq!(document_p(&[]), None);
        assert_eq!(document_p(&[0.03]), Some(0.03));
        // m = 4: Bonferroni 4·0.01 = 0.04, quantile 2·p_(2) = 0.4 → 2·0.04
        assert!((document_p(&[0.5, 0.01, 0.2, 0.9]).unwrap() - 0.08).abs() < 1e-12);
        // most passages low: the quantile rule (2 · p_(3) = 0.06) beats Bonferroni (0.1)
        let q = document_p(&[0.02, 0.03, 0.02, 0.04, 0.9]).unwrap();
        assert!((q - 2.0 * 2.0 * 0.03).abs() < 1e-12, "{q}");
        assert_eq!(document_p(&[0.9, 0.8]), Some(1.0));
    }

    #[test]
    fn bh_by_hand() {
        // sorted 0.01, 0.03, 0.04, 0.5 → 0.04, 0.06, 0.0533, 0.5 → step-up minimum
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let e = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        assert_eq!(q.len(), e.len());
        for (a, b) in q.iter().zip(e) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    /// Documents whose passages are strongly dependent (a shared document effect) and
    /// exchangeable with the calibration passages: the combination stays at or below the
    /// nominal rate, a Mann–Whitney U of the passages does not.
    #[test]
    fn dependent_passages_keep_the_nominal_rate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut normal = || crate::test_support::standard_normal(&mut rng);
        // calibration: passages of 100 documents of 5 (document effect + noise)
        let mut calib = Vec::new();
        for _ in 0..100 {
            let d = normal();
            for _ in 0..5 {
                calib.push(d + 0.5 * normal());
            }
        }
        calib.sort_by(f64::total_cmp);
        let pv = |x: f64| {
            let ge = calib.len() - calib.partition_point(|&y| y < x);
            (1 + ge) as f64 / (1 + calib.len()) as f64
        };
        let (mut ours, mut mwu, trials) = (0, 0, 2000);
        for _ in 0..trials {
            let d = normal();
            let xs: Vec<f64> = (0..5).map(|_| d + 0.5 * normal()).collect();
            let ps: Vec<f64> = xs.iter().map(|&x| pv(x)).collect();
            ours += usize::from(document_p(&ps).unwrap() <= 0.05);
            mwu += usize::from(mann_whitney_greater(&xs, &calib).unwrap() <= 0.05);
        }
        let (ours, mwu) = (ours as f64 / trials as f64, mwu as f64 / trials as f64);
        assert!(ours <= 0.05 + 0.012, "combination rate {ours}");
        assert!(
            mwu > 0.10,
            "Mann–Whitney should be anti-conservative here: {mwu}"
        );
    }

    #[test]
    fn p_values_print_for_people() {
        assert_eq!(fmt_p(0.0312), "0.031");
        assert_eq!(fmt_p(5.2e-54), "5.20e-54");
    }
}
