//! Scores for fine-tuned models audited against their base model (the reference), from the
//! per-token statistics of both on the same tokens. Higher = more likely a member.

use crate::stats::TokenStat;

/// WBC's window sizes (the authors' configuration): geometrically spaced, 2 to 25 tokens.
pub const WBC_WINDOWS: &[usize] = &[2, 3, 4, 6, 9, 13, 18, 25];

/// EZ-MIA's error-zone score (Ilić et al. 2026, arXiv 2601.12104). At the *error positions*
/// — where the target's top prediction is another token — take the shifts
/// `d_i = logp_target_i − logp_reference_i`; with `P = Σ max(d_i, 0)` and
/// `N = Σ max(−d_i, 0)` the paper's statistic is `P / N`. miascan reports `P / (P + N)`, the
/// same ordering (`r / (1 + r)` is increasing in `r = P/N`) but finite when `N = 0`: a
/// member's memorised tokens gain probability even where the model still gets them wrong.
/// `0.5` (no evidence either way) when there is no error position or no shift; `None`
/// without scored tokens.
pub fn ez(target: &[TokenStat], reference: &[TokenStat]) -> Option<f64> {
    if target.is_empty() || target.len() != reference.len() {
        return None;
    }
    let (mut p, mut n) = (0f64, 0f64);
    for (t, r) in target.iter().zip(reference) {
        if t.top1_wrong() {
            let d = t.logp - r.logp;
            if d > 0.0 {
                p += d;
            } else {
                n -= d;
            }
        }
    }
    Some(if p + n > 0.0 { p / (p + n) } else { 0.5 })
}

/// The error-zone likelihood ratio: EZ-MIA's positions with `ref_llr`'s aggregation,
/// `Σ_{i∈E} d_i / sqrt(|E|)` over the error positions `E` (the target's top prediction is
/// another token), `d_i = logp_target_i − logp_reference_i`. Where EZ's `P / (P + N)`
/// forgets how many error positions carried the evidence (a short passage with two lucky
/// shifts scores like a long one with forty), the sum scaled by `sqrt(|E|)` grows with the
/// evidence like a z-statistic. `0` without an error position; `None` without tokens.
pub fn ez_llr(target: &[TokenStat], reference: &[TokenStat]) -> Option<f64> {
    if target.is_empty() || target.len() != reference.len() {
        return None;
    }
    let (mut sum, mut n) = (0f64, 0usize);
    for (t, r) in target.iter().zip(reference) {
        if t.top1_wrong() {
            sum += t.logp - r.logp;
            n += 1;
        }
    }
    Some(if n > 0 { sum / (n as f64).sqrt() } else { 0.0 })
}

/// WBC (Chen et al. 2026, arXiv 2601.02751): for each window size `w` (capped at the
/// passage's length), the fraction of the passage's sliding windows of `w` tokens in which
/// the reference's summed loss exceeds the target's (`Σ d_i > 0` over the window, `d` the
/// per-token log-likelihood ratios target − reference); the score is the mean of those
/// fractions over the sizes. Sign votes ignore how large each window's gap is, so a few
/// tokens with huge shifts (which non-members have too) cannot dominate.
pub fn wbc(diffs: &[f64], windows: &[usize]) -> Option<f64> {
    let n = diffs.len();
    if n == 0 || windows.is_empty() {
        return None;
    }
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0f64);
    for d in diffs {
        prefix.push(prefix.last().unwrap() + d);
    }
    let total: f64 = windows
        .iter()
        .map(|&w| {
            let w = w.clamp(1, n);
            let count = n - w + 1;
            let wins = (0..count)
                .filter(|&i| prefix[i + w] - prefix[i] > 0.0)
                .count();
            wins as f64 / count as f64
        })
        .sum();
    Some(total / windows.len() as f64)
}

/// An InfoRMIA-style information gain (after Tao & Shokri 2025, arXiv 2510.05582), per
/// token and averaged, in nats: how much more the target than the reference is surprised
/// *less than it expects to be*, `g_i = (logp_t − mu_t) − (logp_r − mu_r)`. A fine-tune that
/// only sharpens every distribution on the domain raises `logp` and `mu` alike and leaves
/// `g` at zero; a memorised token raises its own `logp` beyond the target's expectation.
pub fn ref_info(target: &[TokenStat], reference: &[TokenStat]) -> Option<f64> {
    if target.is_empty() || target.len() != reference.len() {
        return None;
    }
    let sum: f64 = target
        .iter()
        .zip(reference)
        .map(|(t, r)| (t.logp - t.mu) - (r.logp - r.mu))
        .sum();
    Some(sum / target.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(logp: f64, rank: u32) -> TokenStat {
        TokenStat {
            logp,
            mu: -1.0,
            sigma: 1.0,
            top1: -0.1,
            rank,
        }
    }

    #[test]
    fn ez_counts_only_error_positions() {
        // positions 0 and 2 are errors (rank > 1): shifts +2 and -1; position 1 (correct,
        // shift -5) is ignored
        let t = [ts(-1.0, 3), ts(-6.0, 1), ts(-3.0, 2)];
        let r = [ts(-3.0, 1), ts(-1.0, 1), ts(-2.0, 1)];
        // P = 2, N = 1 → P / (P + N) = 2/3 (the paper's ratio 2)
        assert!((ez(&t, &r).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // (2 − 1) / sqrt(2)
        assert!((ez_llr(&t, &r).unwrap() - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        // no error position: neutral
        assert_eq!(ez(&[ts(-1.0, 1)], &[ts(-2.0, 1)]), Some(0.5));
        assert_eq!(ez_llr(&[ts(-1.0, 1)], &[ts(-2.0, 1)]), Some(0.0));
        assert_eq!(ez(&[], &[]), None);
        // only upward shifts: the maximum
        assert_eq!(ez(&[ts(-1.0, 2)], &[ts(-2.0, 1)]), Some(1.0));
    }

    #[test]
    fn wbc_votes_by_hand() {
        let d = [1.0, -3.0, 1.0, 1.0];
        // w = 1: 3 of 4 windows positive; w = 2: [-2, -2, 2] → 1 of 3
        assert!((wbc(&d, &[1]).unwrap() - 0.75).abs() < 1e-12);
        assert!((wbc(&d, &[2]).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((wbc(&d, &[1, 2]).unwrap() - (0.75 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        // a window longer than the passage is the whole passage: sum 0 is not a win
        assert_eq!(wbc(&d, &[25]), Some(0.0));
        assert_eq!(wbc(&[], WBC_WINDOWS), None);
    }

    #[test]
    fn ref_info_cancels_uniform_sharpening() {
        // the target raises logp and mu by the same amount: no gain
        let t = [TokenStat {
            mu: -0.5,
            ..ts(-1.0, 1)
        }];
        let r = [TokenStat {
            mu: -1.5,
            ..ts(-2.0, 1)
        }];
        assert_eq!(ref_info(&t, &r), Some(0.0));
        let t = [TokenStat {
            mu: -1.5,
            ..ts(-1.0, 1)
        }];
        assert_eq!(ref_info(&t, &r), Some(1.0));
    }

    #[test]
    fn member_like_passages_score_higher() {
        let r: Vec<TokenStat> = (0..30).map(|_| ts(-3.0, 2)).collect();
        let up: Vec<TokenStat> = (0..30).map(|_| ts(-2.0, 2)).collect();
        let down: Vec<TokenStat> = (0..30).map(|_| ts(-4.0, 2)).collect();
        // unwrapped first: `Some(_) > None` holds for any value, so comparing the options
        // would pass for a score that returned None on the lower side
        let higher = |name: &str, a: Option<f64>, b: Option<f64>| {
            let (a, b) = (a.expect(name), b.expect(name));
            assert!(a > b, "{name}: member-like {a} <= non-member-like {b}");
        };
        higher("ez", ez(&up, &r), ez(&down, &r));
        higher("ez_llr", ez_llr(&up, &r), ez_llr(&down, &r));
        let d_up: Vec<f64> = vec![1.0; 30];
        let d_down: Vec<f64> = vec![-1.0; 30];
        higher("wbc", wbc(&d_up, WBC_WINDOWS), wbc(&d_down, WBC_WINDOWS));
        higher("ref_info", ref_info(&up, &r), ref_info(&down, &r));
    }
}
