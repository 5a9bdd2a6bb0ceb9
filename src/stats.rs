//! Hidden states → per-token statistics: the log-probability of the actual next token and
//! the mean and standard deviation of log p under the model's own next-token distribution
//! (Min-K%++'s `mu` and `sigma`), definitions as in SCORES.md.
//!
//! The LM head is applied to a bounded number of positions at a time and each row of logits
//! is reduced immediately (one pass for the max, one fused pass for the sums): no
//! `[T, vocab]` probability tensor ever exists (Gemma 3's vocabulary is 262,144). The sums
//! are carried in f64; each `exp` is computed in f32 (relative error below 2e-7), which
//! moves a log-prob by well under 1e-6 and lets the reduction run in vector registers.

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

/// Logit floats materialised at once: bounds memory to ~64 MiB per block whatever the
/// vocabulary or the batch.
const LOGITS_PER_BLOCK: usize = 16 << 20;

/// Statistics for the rows `rows[j]` of `hidden` (`[T, H]`, final-normed), each predicting
/// `targets[j]`.
///
/// The head is applied block by block over the *vocabulary* (all positions against a slice
/// of the head's rows), and each row's sums are carried across blocks with an online
/// (running-max) log-sum-exp. Cutting the vocabulary rather than the positions lets the
/// matmul prepare each slice of the 262,144-row Gemma head once per batch instead of once
/// per handful of positions.
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
    let mut out = Vec::with_capacity(rows.len());
    // at least 1,024 vocabulary entries per block; fewer positions per group if needed
    let group = (LOGITS_PER_BLOCK / 1024).min(rows.len().max(1));
    for (rows, targets) in rows.chunks(group).zip(targets.chunks(group)) {
        let idx = Tensor::new(rows, hidden.device())?;
        let h = hidden.index_select(&idx, 0)?;
        let block = (LOGITS_PER_BLOCK / rows.len()).max(1024).min(vocab);
        let mut acc = vec![RowAcc::default(); rows.len()];
        let mut v0 = 0;
        while v0 < vocab {
            let vb = block.min(vocab - v0);
            let w = head.narrow(0, v0, vb)?;
            let logits = h.matmul(&w.t()?)?.to_dtype(DType::F32)?;
            let flat: Vec<f32> = logits.flatten_all()?.to_vec1()?;
            flat.par_chunks(vb)
                .zip(acc.par_iter_mut())
                .zip(targets.par_iter())
                .for_each(|((row, a), &t)| a.update(row, v0, t as usize, cap));
            v0 += vb;
        }
        out.extend(acc.iter().map(RowAcc::finish));
    }
    Ok(out)
}

/// Running sums of one row of logits over vocabulary blocks. With `m` the running max,
/// `a_v = x_v − m`, `e_v = exp(a_v)`: `s = Σ e`, `s1 = Σ e a`, `s2 = Σ e a²`. When the max
/// rises by `δ`, every `a` shifts by `−δ` and the sums are re-centred exactly.
#[derive(Debug, Clone, Copy)]
struct RowAcc {
    m: f64,
    s: f64,
    s1: f64,
    s2: f64,
    target: f64,
}

impl Default for RowAcc {
    fn default() -> Self {
        RowAcc {
            m: f64::NEG_INFINITY,
            s: 0.0,
            s1: 0.0,
            s2: 0.0,
            target: f64::NAN,
        }
    }
}

impl RowAcc {
    /// Adds the logits of vocabulary entries `v0 .. v0 + row.len()`.
    fn update(&mut self, row: &[f32], v0: usize, target: usize, softcap: Option<f64>) {
        let x = |v: f32| -> f64 {
            match softcap {
                Some(c) => c * (v as f64 / c).tanh(),
                None => v as f64,
            }
        };
        if (v0..v0 + row.len()).contains(&target) {
            self.target = x(row[target - v0]);
        }
        let bm = match softcap {
            None => kernel::max(row) as f64,
            Some(_) => row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(x(v))),
        };
        if bm > self.m {
            if self.s > 0.0 {
                // a' = a + d with d = m_old − m_new < 0
                let d = self.m - bm;
                let f = d.exp();
                let (s, s1, s2) = (self.s, self.s1, self.s2);
                self.s = f * s;
                self.s1 = f * (s1 + d * s);
                self.s2 = f * (s2 + 2.0 * d * s1 + d * d * s);
            }
            self.m = bm;
        }
        let m = self.m;
        let (s, s1, s2) = match softcap {
            // without a soft-cap every logit and the running max are f32 values
            None => kernel::sums(row, m as f32),
            Some(_) => {
                let (mut s, mut s1, mut s2) = (0f64, 0f64, 0f64);
                for &v in row {
                    let a = x(v) - m;
                    let e = a.exp();
                    s += e;
                    s1 += e * a;
                    s2 += e * a * a;
                }
                (s, s1, s2)
            }
        };
        self.s += s;
        self.s1 += s1;
        self.s2 += s2;
    }

    /// `log p(v) = a_v − ln s`, so `mu = s1/s − ln s` and the variance of `log p` is that of
    /// `a`: `s2/s − (s1/s)²`, clamped at 0.
    fn finish(&self) -> TokenStat {
        let ln_s = self.s.ln();
        let mean_a = self.s1 / self.s;
        TokenStat {
            logp: self.target - self.m - ln_s,
            mu: mean_a - ln_s,
            sigma: (self.s2 / self.s - mean_a * mean_a).max(0.0).sqrt(),
        }
    }
}

/// The per-row reductions, written so that the compiler vectorises them, and compiled twice:
/// for the baseline CPU and for AVX2+FMA, picked at run time. Both builds perform the same
/// operations in the same order (Rust never contracts `a * b + c` into an FMA by itself),
/// so results do not depend on the CPU.
mod kernel {
    /// Lanes of the accumulators: independent partial sums the compiler keeps in registers.
    const LANES: usize = 16;

    /// `e^x` for `x <= 0` in f32 (Cephes' `expf`: range reduction by `ln 2`, degree-6
    /// polynomial; relative error below 2e-7), 0 below `-87`, branch-free so that it
    /// vectorises. Sums of these values are accumulated in f64 by the callers.
    #[inline(always)]
    fn exp_neg(x: f32) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        let xc = x.max(-87.0);
        let n = (xc * LOG2E).round();
        let r = xc - n * LN2_HI - n * LN2_LO;
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let y = p * r * r + r + 1.0;
        let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
        if x.is_nan() {
            x // a broken model's NaN must stay visible, not become a probability
        } else if x < -87.0 {
            0.0
        } else {
            y * scale
        }
    }

    #[inline(always)]
    fn max_body(row: &[f32]) -> f32 {
        let mut m = [f32::NEG_INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                m[i] = m[i].max(c[i]);
            }
        }
        let mut out = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for &v in rest {
            out = out.max(v);
        }
        out
    }

    /// `(Σ e, Σ e·a, Σ e·a²)` with `a = v − m`, `e = exp(a)`: `e` in f32, sums in f64.
    #[inline(always)]
    fn sums_body(row: &[f32], m: f32) -> (f64, f64, f64) {
        let mut s = [0f64; LANES];
        let mut s1 = [0f64; LANES];
        let mut s2 = [0f64; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                let a = c[i] - m;
                let e = exp_neg(a) as f64;
                let a = a as f64;
                s[i] += e;
                s1[i] += e * a;
                s2[i] += e * a * a;
            }
        }
        for (i, &v) in rest.iter().enumerate() {
            let a = v - m;
            let e = exp_neg(a) as f64;
            let a = a as f64;
            s[i] += e;
            s1[i] += e * a;
            s2[i] += e * a * a;
        }
        (s.iter().sum(), s1.iter().sum(), s2.iter().sum())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn max_avx2(row: &[f32]) -> f32 {
        max_body(row)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn sums_avx2(row: &[f32], m: f32) -> (f64, f64, f64) {
        sums_body(row, m)
    }

    #[cfg(target_arch = "x86_64")]
    fn has_avx2() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// The largest value (NaNs ignored; `-inf` for an empty row).
    pub(super) fn max(row: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU was checked for AVX2 and FMA just above.
            return unsafe { max_avx2(row) };
        }
        max_body(row)
    }

    /// See [`sums_body`]; every value of `row` must be `<= m`.
    pub(super) fn sums(row: &[f32], m: f32) -> (f64, f64, f64) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU was checked for AVX2 and FMA just above.
            return unsafe { sums_avx2(row, m) };
        }
        sums_body(row, m)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exp_is_within_2e_7_relative() {
            let mut worst = 0f64;
            for i in 0..=870_000 {
                let x = -(i as f32) * 1e-4;
                let want = (x as f64).exp();
                let got = exp_neg(x) as f64;
                worst = worst.max((got - want).abs() / want);
            }
            assert!(worst < 2e-7, "worst relative error {worst:e}");
            assert_eq!(exp_neg(0.0), 1.0);
            assert_eq!(exp_neg(-100.0), 0.0);
            assert_eq!(exp_neg(f32::NEG_INFINITY), 0.0);
            assert!(exp_neg(f32::NAN).is_nan());
        }

        #[test]
        fn dispatched_and_baseline_builds_agree_bit_for_bit() {
            let row: Vec<f32> = (0..1001)
                .map(|i| ((i * 7919) % 1001) as f32 / 29.0 - 20.0)
                .collect();
            let m = max_body(&row);
            assert_eq!(max(&row), m);
            assert_eq!(sums(&row, m), sums_body(&row, m));
            assert_eq!(max(&[]), f32::NEG_INFINITY);
            assert_eq!(max(&[1.0, f32::NAN, 3.0]), 3.0);
        }
    }
}

/// Reduces one whole row of logits (the single-block case of [`token_stats`]).
pub fn row_stats(row: &[f32], target: usize, softcap: Option<f64>) -> TokenStat {
    let mut a = RowAcc::default();
    a.update(row, 0, target, softcap);
    a.finish()
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
            // the reference is all-f64; the kernel's exp is f32 (relative error < 2e-7)
            assert!((a.logp - b.logp).abs() < 1e-6, "{} vs {}", a.logp, b.logp);
            assert!((a.mu - b.mu).abs() < 1e-5, "{} vs {}", a.mu, b.mu);
            assert!(
                (a.sigma - b.sigma).abs() < 1e-5,
                "{} vs {}",
                a.sigma,
                b.sigma
            );
        }
    }

    #[test]
    fn blockwise_accumulation_matches_one_pass() {
        // blocks whose maxima rise, fall and tie, and a target in a middle block
        let row: Vec<f32> = (0..997)
            .map(|i| ((i * 7919) % 997) as f32 / 31.0 - 12.0 + if i == 500 { 9.0 } else { 0.0 })
            .collect();
        for t in [3, 480, 996] {
            let want = reference(&row, t);
            for block in [1, 10, 100, 333, 997] {
                let mut a = RowAcc::default();
                for (b, chunk) in row.chunks(block).enumerate() {
                    a.update(chunk, b * block, t, None);
                }
                let got = a.finish();
                assert!((got.logp - want.logp).abs() < 1e-6, "block {block}");
                assert!((got.mu - want.mu).abs() < 1e-5, "block {block}");
                assert!((got.sigma - want.sigma).abs() < 1e-5, "block {block}");
            }
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
