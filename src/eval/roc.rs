//! ROC statistics. Scores are oriented higher = member; members are the positives.

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Area under the ROC curve: P(member score > non-member score), ties counting one half
/// (the Mann–Whitney U statistic over `n_pos · n_neg`). `None` if a class is empty.
pub fn auroc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    // walking down the distinct scores: each member beats the non-members strictly below
    // it and ties with those at its score
    let nn_total = neg.len();
    let mut neg_above = 0usize;
    let mut twice_wins = 0usize;
    for (p, n) in tie_groups(pos, neg) {
        let below = nn_total - neg_above - n;
        twice_wins += p * (2 * below + n);
        neg_above += n;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some(twice_wins as f64 / 2.0 / (np * nn))
}

/// `(members, non-members)` at each distinct score, from the highest score down.
fn tie_groups(pos: &[f64], neg: &[f64]) -> Vec<(usize, usize)> {
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&x| (x, true))
        .chain(neg.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut groups = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let j = i + all[i..].iter().take_while(|x| x.0 == all[i].0).count();
        let p = all[i..j].iter().filter(|x| x.1).count();
        groups.push((p, j - i - p));
        i = j;
    }
    groups
}

/// The operating point at a target false-positive rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtFpr {
    /// The requested FPR.
    pub fpr: f64,
    /// Fraction of members flagged.
    pub tpr: f64,
    /// Flag a passage when its score is strictly greater than this.
    pub threshold: f64,
    /// Non-members flagged at this threshold (at most `floor(fpr · n_neg)`).
    pub false_positives: usize,
    /// 95% bootstrap interval of the TPR (filled in by the evaluation).
    pub tpr_ci: Option<(f64, f64)>,
}

/// TPR at FPR `alpha`: with non-member scores sorted high to low, `k = floor(alpha · n_neg)`
/// may be flagged, so the threshold is the `(k+1)`-th highest non-member score and a passage
/// is flagged when it scores strictly above it. When `alpha · n_neg < 1` this is the
/// zero-false-positive point (no empirical FPR below `1/n_neg` can be measured).
pub fn tpr_at_fpr(pos: &[f64], neg: &[f64], alpha: f64) -> Option<AtFpr> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut n: Vec<f64> = neg.to_vec();
    n.sort_by(|a, b| b.total_cmp(a));
    let k = ((alpha * n.len() as f64).floor() as usize).min(n.len() - 1);
    let threshold = n[k];
    let flagged = pos.iter().filter(|&&x| x > threshold).count();
    Some(AtFpr {
        fpr: alpha,
        tpr: flagged as f64 / pos.len() as f64,
        threshold,
        false_positives: n.iter().filter(|&&x| x > threshold).count(),
        tpr_ci: None,
    })
}

/// ROC curve points `(fpr, tpr)` from (0, 0) to (1, 1), one per distinct threshold.
pub fn roc_curve(pos: &[f64], neg: &[f64]) -> Vec<(f64, f64)> {
    let (np, nn) = (pos.len().max(1) as f64, neg.len().max(1) as f64);
    let mut pts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for (p, n) in tie_groups(pos, neg) {
        tp += p;
        fp += n;
        pts.push((fp as f64 / nn, tp as f64 / np));
    }
    pts
}

/// 95% percentile bootstrap intervals of the AUROC and of the TPR at each of `fprs`.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapCi {
    pub auroc: (f64, f64),
    pub tpr: Vec<(f64, f64)>,
}

/// Percentile bootstrap resampling members and non-members separately (`n_boot` resamples,
/// deterministic for a seed); each resample yields the AUROC and the TPR at every FPR.
pub fn bootstrap(
    pos: &[f64],
    neg: &[f64],
    fprs: &[f64],
    n_boot: usize,
    seed: u64,
) -> Option<BootstrapCi> {
    if pos.is_empty() || neg.is_empty() || n_boot == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut aurocs = Vec::with_capacity(n_boot);
    let mut tprs: Vec<Vec<f64>> = vec![Vec::with_capacity(n_boot); fprs.len()];
    for _ in 0..n_boot {
        let p: Vec<f64> = (0..pos.len())
            .map(|_| *pos.choose(&mut rng).expect("non-empty"))
            .collect();
        let n: Vec<f64> = (0..neg.len())
            .map(|_| *neg.choose(&mut rng).expect("non-empty"))
            .collect();
        aurocs.push(auroc(&p, &n).expect("non-empty"));
        for (t, &a) in tprs.iter_mut().zip(fprs) {
            t.push(tpr_at_fpr(&p, &n, a).expect("non-empty").tpr);
        }
    }
    let interval = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * (n_boot - 1) as f64).round() as usize).min(n_boot - 1)];
        (at(0.025), at(0.975))
    };
    Some(BootstrapCi {
        auroc: interval(aurocs),
        tpr: tprs.into_iter().map(interval).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUROC by counting every pair.
    fn pairs(pos: &[f64], neg: &[f64]) -> f64 {
        let mut s = 0.0;
        for p in pos {
            for n in neg {
                s += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        s / (pos.len() * neg.len()) as f64
    }

    #[test]
    fn auroc_on_hand_made_cases() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(auroc(&[1.0], &[1.0]), Some(0.5));
        // 3 beats 1 and 2; 1.5 beats 1 only: 3 of 4 pairs
        assert_eq!(auroc(&[3.0, 1.5], &[1.0, 2.0]), Some(0.75));
        assert_eq!(auroc(&[], &[1.0]), None);
        let pos = [0.1, 0.5, 0.5, 0.9, 0.3, 0.7];
        let neg = [0.2, 0.5, 0.4, 0.5, 0.0];
        assert!((auroc(&pos, &neg).unwrap() - pairs(&pos, &neg)).abs() < 1e-12);
    }

    #[test]
    fn tpr_at_fpr_by_hand() {
        let neg: Vec<f64> = (0..100).map(|i| i as f64).collect(); // 0..99
        let pos = [98.5, 99.5, 50.0, 97.5];
        // 1% of 100 → one false positive allowed: threshold = 2nd highest = 98
        let a = tpr_at_fpr(&pos, &neg, 0.01).unwrap();
        assert_eq!((a.threshold, a.false_positives), (98.0, 1));
        assert_eq!(a.tpr, 0.5);
        // 0.1% of 100 < 1 → zero false positives: threshold = 99
        let a = tpr_at_fpr(&pos, &neg, 0.001).unwrap();
        assert_eq!((a.threshold, a.false_positives, a.tpr), (99.0, 0, 0.25));
        // 5% → threshold = 6th highest = 94
        let a = tpr_at_fpr(&pos, &neg, 0.05).unwrap();
        assert_eq!((a.threshold, a.tpr), (94.0, 0.75));
    }

    #[test]
    fn roc_curve_runs_corner_to_corner() {
        let c = roc_curve(&[2.0, 3.0], &[1.0, 2.0]);
        assert_eq!(c.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.last(), Some(&(1.0, 1.0)));
        assert_eq!(c[1], (0.0, 0.5));
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_estimate() {
        let pos: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin() + 0.5).collect();
        let neg: Vec<f64> = (0..50).map(|i| (i as f64 * 0.91).cos()).collect();
        let b = bootstrap(&pos, &neg, &[0.05], 500, 7).unwrap();
        assert_eq!(b, bootstrap(&pos, &neg, &[0.05], 500, 7).unwrap());
        assert_ne!(b, bootstrap(&pos, &neg, &[0.05], 500, 8).unwrap());
        let (a, t) = (b.auroc, b.tpr[0]);
        let est = auroc(&pos, &neg).unwrap();
        assert!(a.0 < est && est < a.1, "{a:?} {est}");
        let tpr = tpr_at_fpr(&pos, &neg, 0.05).unwrap().tpr;
        assert!(t.0 <= tpr && tpr <= t.1, "{t:?} {tpr}");
    }
}
