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
//! have). The collection-level test is in `finish::conclude` (documents as units).

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
}
