//! Bounds for checking a claimed rate empirically: how many of `n` trials may come out
//! positive before a rate of `p` is rejected, and the Wilson interval of an observed rate.
//! The statistics tests (false-positive rates of calibrated p-values, of the dataset test,
//! of document and collection verdicts) hold their counts to these instead of a fixed slack.

use statrs::distribution::{Binomial, DiscreteCDF};

/// The largest count `k` that a `Binomial(n, p)` exceeds with probability at most `alpha`:
/// a test asserting `count <= binomial_upper(n, p, alpha)` fails a correct procedure (true
/// rate `p`, independent trials) with probability at most `alpha`.
pub fn binomial_upper(n: u64, p: f64, alpha: f64) -> u64 {
    let b = Binomial::new(p, n).expect("p in [0, 1]");
    (0..=n).find(|&k| 1.0 - b.cdf(k) <= alpha).unwrap_or(n)
}

/// The 95% Wilson score interval of `k` positives in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let c = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    (c - h, c + h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_upper_matches_hand_computed_tails() {
        // Bin(100, 0.05): P(X > 11) = 0.00427, P(X > 10) = 0.01147, P(X > 9) = 0.02819,
        // P(X > 8) = 0.06309 (the sums of the binomial terms, by hand in Python)
        assert_eq!(binomial_upper(100, 0.05, 0.01), 11);
        assert_eq!(binomial_upper(100, 0.05, 0.05), 9);
        assert_eq!(binomial_upper(10, 0.0, 0.01), 0);
        assert_eq!(binomial_upper(10, 1.0, 0.01), 10);
    }

    #[test]
    fn wilson_brackets_the_rate() {
        // 5 of 100: [0.0215, 0.1118] (the textbook values)
        let (lo, hi) = wilson(5, 100);
        assert!(
            (lo - 0.0215).abs() < 1e-3 && (hi - 0.1118).abs() < 1e-3,
            "{lo} {hi}"
        );
    }
}
