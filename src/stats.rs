//! Hidden states → per-token statistics: the log-probability of the actual next token and
//! the mean and standard deviation of log p under the model's own next-token distribution
//! (Min-K%++'s `mu` and `sigma`), definitions as in SCORES.md.
//!
//! The LM head is applied to a bounded number of positions at a time and each row of logits
//! is reduced immediately (one pass for the max, one fused pass for the sums), in f64: no
//! `[T, vocab]` probability tensor ever exists (Gemma 3's vocabulary is 262,144).

use crate::error::Result;
use crate::model::CausalLm;
use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// Statistics of one scored position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenStat {
    /// `log p(t_i | t_<i)`.
    pub logp: f64,
    /// `Σ_v p(v) log p(v)`.
    pub mu: f64,
    /// `sqrt(Σ_v p(v) (log p(v))² − mu²)`, variance clamped at 0.
    pub sigma: f64,
}

/// Logit floats materialised at once: bounds memory to ~64 MiB per chunk whatever the
/// vocabulary.
const LOGITS_PER_CHUNK: usize = 16 << 20;

/// Statistics for the rows `rows[j]` of `hidden` (`[T, H]`, final-normed), each predicting
/// `targets[j]`.
pub fn token_stats(
    lm: &dyn CausalLm,
    hidden: &Tensor,
    rows: &[u32],
    targets: &[u32],
) -> Result<Vec<TokenStat>> {
    debug_assert_eq!(rows.len(), targets.len());
    let head = lm.lm_head();
    let vocab = head.dim(0)?;
    let cap = lm.logit_softcap();
    let chunk = (LOGITS_PER_CHUNK / vocab).max(1);
    let mut out = Vec::with_capacity(rows.len());
    for (rows, targets) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
        let idx = Tensor::new(rows, hidden.device())?;
        let h = hidden.index_select(&idx, 0)?;
        let logits = h.matmul(&head.t()?)?.to_dtype(DType::F32)?;
        let flat: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let stats: Vec<TokenStat> = flat
            .par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &t)| row_stats(row, t as usize, cap))
            .collect();
        out.extend(stats);
    }
    Ok(out)
}

/// Reduces one row of logits. With `a_v = x_v − max`, `e_v = exp(a_v)`, `S = Σ e_v`:
/// `log p(v) = a_v − ln S`, so `mu = Σ e a / S − ln S` and the variance of `log p` equals
/// that of `a`: `Σ e a² / S − (Σ e a / S)²`. One exp per vocabulary entry.
pub fn row_stats(row: &[f32], target: usize, softcap: Option<f64>) -> TokenStat {
    let x = |v: f32| -> f64 {
        match softcap {
            Some(c) => c * (v as f64 / c).tanh(),
            None => v as f64,
        }
    };
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(x(v)));
    let (mut s, mut s1, mut s2) = (0f64, 0f64, 0f64);
    for &v in row {
        let a = x(v) - m;
        let e = a.exp();
        s += e;
        s1 += e * a;
        s2 += e * a * a;
    }
    let ln_s = s.ln();
    let mean_a = s1 / s;
    TokenStat {
        logp: x(row[target]) - m - ln_s,
        mu: mean_a - ln_s,
        sigma: (s2 / s - mean_a * mean_a).max(0.0).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward two-pass reference: full log-softmax, then expectations.
    fn reference(row: &[f32], t: usize) -> TokenStat {
        let m = row
            .iter()
            .map(|&v| v as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        let lp: Vec<f64> = row.iter().map(|&v| v as f64 - lse).collect();
        let mu: f64 = lp.iter().map(|l| l.exp() * l).sum();
        let m2: f64 = lp.iter().map(|l| l.exp() * l * l).sum();
        TokenStat {
            logp: lp[t],
            mu,
            sigma: (m2 - mu * mu).max(0.0).sqrt(),
        }
    }

    #[test]
    fn fused_reduction_matches_two_pass_reference() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 10.0)
            .collect();
        for t in [0, 17, 999] {
            let a = row_stats(&row, t, None);
            let b = reference(&row, t);
            assert!((a.logp - b.logp).abs() < 1e-12);
            assert!((a.mu - b.mu).abs() < 1e-10);
            assert!((a.sigma - b.sigma).abs() < 1e-10);
        }
    }

    #[test]
    fn uniform_distribution_has_zero_sigma() {
        let row = vec![3.0f32; 8];
        let s = row_stats(&row, 2, None);
        assert!((s.logp + 8f64.ln()).abs() < 1e-12);
        assert!((s.mu + 8f64.ln()).abs() < 1e-12);
        assert!(s.sigma.abs() < 1e-7);
    }

    #[test]
    fn softcap_is_applied_before_the_softmax() {
        let row = vec![100.0f32, 0.0];
        let capped = row_stats(&row, 1, Some(30.0));
        let want = reference(&[30.0 * (100f32 / 30.0).tanh(), 0.0], 1);
        assert!((capped.logp - want.logp).abs() < 1e-5);
    }
}
