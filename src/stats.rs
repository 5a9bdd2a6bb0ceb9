//! Hidden states → per-token statistics: the log-probability of the actual next token, the
//! mean and standard deviation of log p under the model's own next-token distribution
//! (Min-K%++'s `mu` and `sigma`, definitions in docs/scores.md), the log-probability of the
//! model's top prediction and the rank of the actual token (the fine-tune scores' "was the
//! model right here?"). All come from the same running sums in one pass over the head.
//!
//! The LM head is applied to a bounded number of positions at a time and each row of logits
//! is reduced immediately (one pass for the max, one fused pass for the sums): no
//! `[T, vocab]` probability tensor ever exists (Gemma 3's vocabulary is 262,144). The sums
//! are carried in f64; each `exp` is computed in f32 (relative error below 2e-7), which
//! moves a log-prob by well under 1e-6 and lets the reduction run in vector registers.
//! Off the CPU the same reduction runs as tensor ops on the device ([`StatsBackend`]).

use crate::error::Result;
use crate::kernels::rows::cpu_rows;
use crate::kernels::simd as kernel;
use crate::model::CausalLm;
use crate::profile::{self, Phase};
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
    /// `max_v log p(v)`: the log-probability of the model's top prediction.
    pub top1: f64,
    /// `1 + #{v : logit_v > logit_t}`: 1 when the actual token is the top prediction. Ties
    /// count in the token's favour; entries within float rounding of the token's logit
    /// (about 1e-6 relative) may be counted either way, since the comparison is made against
    /// the token's logit computed by a separate dot product before the pass.
    pub rank: u32,
}

impl TokenStat {
    /// Shannon entropy of the next-token distribution in nats: `−Σ p log p = −mu`.
    pub fn entropy(&self) -> f64 {
        -self.mu
    }

    /// Whether the model's top prediction was another token (EZ-MIA's error positions).
    pub fn top1_wrong(&self) -> bool {
        self.rank > 1
    }
}

/// Logit floats materialised at once: bounds memory to ~32 MiB per block (and as much for
/// its copy) whatever the vocabulary or the batch.
const LOGITS_PER_BLOCK: usize = 8 << 20;

/// Head floats expanded at once (a quantised head is expanded block by block): ~16 MiB.
const HEAD_PER_BLOCK: usize = 4 << 20;

/// Where the blockwise reduction runs. Both backends compute the same running sums per row
/// ([`RowAcc`]); they differ in where a block of logits is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsBackend {
    /// The vectorised CPU kernels ([`kernel::max`], [`kernel::sums`]) over the block in
    /// place: `exp` in f32, sums in f64.
    Kernel,
    /// Candle ops on the block's device (in f64): only five numbers per row — the block's
    /// max, its three sums and the target's logit — come back to the host, so a GPU never
    /// copies a block of logits (1 MB per token for Gemma's vocabulary) over the bus.
    Tensor,
}

impl StatsBackend {
    /// The kernels on the CPU, tensor ops elsewhere.
    pub fn for_device(device: &candle_core::Device) -> StatsBackend {
        if device.is_cpu() {
            StatsBackend::Kernel
        } else {
            StatsBackend::Tensor
        }
    }
}

/// Statistics for the rows `rows[j]` of `hidden` (`[T, H]`, final-normed), each predicting
/// `targets[j]`, with the backend that suits `hidden`'s device.
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
    let backend = StatsBackend::for_device(hidden.device());
    token_stats_with(backend, lm, hidden, rows, targets)
}

/// [`token_stats`] with a chosen backend (tests run both on the CPU and compare them).
pub fn token_stats_with(
    backend: StatsBackend,
    lm: &dyn CausalLm,
    hidden: &Tensor,
    rows: &[u32],
    targets: &[u32],
) -> Result<Vec<TokenStat>> {
    debug_assert_eq!(rows.len(), targets.len());
    let cap = lm.logit_softcap();
    let mut acc: Vec<RowAcc> = target_logits(lm, hidden, rows, targets)?
        .into_iter()
        .map(RowAcc::new)
        .collect();
    logit_blocks(lm, hidden, rows, |r0, v0, logits| {
        let _span = profile::span(Phase::Statistics);
        let (n, vb) = logits.dims2()?;
        let (acc, targets) = (&mut acc[r0..r0 + n], &targets[r0..r0 + n]);
        match backend {
            StatsBackend::Kernel if logits.dtype() == DType::F32 && logits.device().is_cpu() => {
                let view = cpu_rows(logits)?;
                acc.par_iter_mut()
                    .zip(targets.par_iter())
                    .enumerate()
                    .for_each(|(r, (a, &t))| a.update(view.row(r, vb), v0, t as usize, cap));
            }
            _ => fold_block_tensor(logits, v0, targets, acc, cap)?,
        }
        Ok(())
    })?;
    Ok(acc.iter().map(RowAcc::finish).collect())
}

/// Each target's logit `h_r · w_t` (f32), by one dot product per row: the threshold the
/// pass counts larger logits against (a target's rank) before it reaches the target's own
/// block.
fn target_logits(
    lm: &dyn CausalLm,
    hidden: &Tensor,
    rows: &[u32],
    targets: &[u32],
) -> Result<Vec<f32>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let _span = profile::span(Phase::Statistics);
    let device = hidden.device();
    let h = hidden
        .index_select(&Tensor::new(rows, device)?, 0)?
        .to_dtype(DType::F32)?;
    let w = lm
        .lm_head()
        .gather(&Tensor::new(targets, device)?)?
        .to_device(device)?
        .to_dtype(DType::F32)?;
    Ok((h * w)?.sum(1)?.to_vec1::<f32>()?)
}

/// The tensor backend's reduction of one block `[n, vb]` (vocabulary entries `v0..`): per
/// row the max `m`, `Σ e`, `Σ e·a`, `Σ e·a²` with `a = x − m`, `e = exp(a)`, and the target's
/// logit, computed on the block's device in f64, then merged into the running sums.
fn fold_block_tensor(
    logits: &Tensor,
    v0: usize,
    targets: &[u32],
    acc: &mut [RowAcc],
    softcap: Option<f64>,
) -> Result<()> {
    let (n, vb) = logits.dims2()?;
    let raw = logits.to_dtype(DType::F64)?;
    // entries above each row's threshold, on the raw logits (the cap is monotone)
    let thr: Vec<f64> = acc.iter().map(|a| a.threshold as f64).collect();
    let thr = Tensor::from_vec(thr, (n, 1), logits.device())?;
    let above = raw.broadcast_gt(&thr)?.to_dtype(DType::F64)?.sum(1)?;
    let mut x = raw.clone();
    if let Some(c) = softcap {
        x = ((x / c)?.tanh()? * c)?;
    }
    let m = x.max_keepdim(1)?;
    let a = x.broadcast_sub(&m)?;
    let e = a.exp()?;
    let ea = (&e * &a)?;
    let s = e.sum(1)?;
    let s1 = ea.sum(1)?;
    let s2 = (ea * &a)?.sum(1)?;
    let local: Vec<u32> = targets
        .iter()
        .map(|&t| (t as usize).saturating_sub(v0).min(vb - 1) as u32)
        .collect();
    let idx = Tensor::from_vec(local, (n, 1), logits.device())?;
    let xt = raw.gather(&idx, 1)?.squeeze(1)?;
    let back = Tensor::stack(&[&m.squeeze(1)?, &s, &s1, &s2, &xt, &above], 0)?.to_vec2::<f64>()?;
    for (r, a) in acc.iter_mut().enumerate() {
        a.merge(back[0][r], back[1][r], back[2][r], back[3][r]);
        a.above += back[5][r] as u32;
        if (v0..v0 + vb).contains(&(targets[r] as usize)) {
            a.set_target(back[4][r] as f32, softcap);
        }
    }
    Ok(())
}

/// Applies the LM head to `rows` of `hidden` in groups of positions and, within a group,
/// in blocks of the vocabulary (at most [`LOGITS_PER_BLOCK`] logits at a time), handing
/// each block `[rows, width]` (f32) to `f(first row of the group, first vocabulary entry,
/// logits)`. Groups come in order, and blocks in vocabulary order.
fn logit_blocks(
    lm: &dyn CausalLm,
    hidden: &Tensor,
    rows: &[u32],
    mut f: impl FnMut(usize, usize, &Tensor) -> Result<()>,
) -> Result<()> {
    let head = lm.lm_head();
    let vocab = head.dims2()?.0;
    // at least 1,024 vocabulary entries per block; fewer positions per group if needed
    let group = (LOGITS_PER_BLOCK / 1024).min(rows.len().max(1));
    for (g, rows) in rows.chunks(group).enumerate() {
        let idx = Tensor::new(rows, hidden.device())?;
        let h = hidden.index_select(&idx, 0)?;
        let hidden = head.dims2()?.1.max(1);
        let block = (LOGITS_PER_BLOCK / rows.len())
            .min(HEAD_PER_BLOCK / hidden)
            .max(1024)
            .min(vocab);
        let mut v0 = 0;
        while v0 < vocab {
            let vb = block.min(vocab - v0);
            let span = profile::span(Phase::LmHead);
            let w = head.rows(v0, vb)?.to_device(h.device())?;
            let logits = crate::kernels::matmul::matmul_t(&h, &w)?.to_dtype(DType::F32)?;
            drop(span);
            f(g * group, v0, &logits)?;
            v0 += vb;
        }
    }
    Ok(())
}

/// Running sums of one row of logits over vocabulary blocks. With `m` the running max,
/// `a_v = x_v − m`, `e_v = exp(a_v)`: `s = Σ e`, `s1 = Σ e a`, `s2 = Σ e a²`. When the max
/// rises by `δ`, every `a` shifts by `−δ` and the sums are re-centred exactly.
/// Alongside, `above` counts the raw logits above `threshold` (the target's logit from a
/// separate dot product), for the target's rank.
#[derive(Debug, Clone, Copy)]
struct RowAcc {
    m: f64,
    s: f64,
    s1: f64,
    s2: f64,
    /// The target's (soft-capped) logit, and its raw logit as the block computed it.
    target: f64,
    target_raw: f32,
    threshold: f32,
    above: u32,
}

/// `cap · tanh(v / cap)` (Gemma 2's final soft-cap), or `v`.
fn capped(v: f32, softcap: Option<f64>) -> f64 {
    match softcap {
        Some(c) => c * (v as f64 / c).tanh(),
        None => v as f64,
    }
}

impl RowAcc {
    /// Empty sums; `threshold`: the target's logit, larger logits are counted.
    fn new(threshold: f32) -> Self {
        RowAcc {
            m: f64::NEG_INFINITY,
            s: 0.0,
            s1: 0.0,
            s2: 0.0,
            target: f64::NAN,
            target_raw: f32::NAN,
            threshold,
            above: 0,
        }
    }

    fn set_target(&mut self, raw: f32, softcap: Option<f64>) {
        self.target_raw = raw;
        self.target = capped(raw, softcap);
    }

    /// Adds the logits of vocabulary entries `v0 .. v0 + row.len()`.
    fn update(&mut self, row: &[f32], v0: usize, target: usize, softcap: Option<f64>) {
        let x = |v: f32| capped(v, softcap);
        if (v0..v0 + row.len()).contains(&target) {
            self.set_target(row[target - v0], softcap);
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
        let (s, s1, s2, above) = match softcap {
            // without a soft-cap every logit and the running max are f32 values
            None => kernel::sums(row, m as f32, self.threshold),
            Some(_) => {
                let (mut s, mut s1, mut s2, mut above) = (0f64, 0f64, 0f64, 0u32);
                for &v in row {
                    let a = x(v) - m;
                    let e = a.exp();
                    s += e;
                    s1 += e * a;
                    s2 += e * a * a;
                    above += u32::from(v > self.threshold);
                }
                (s, s1, s2, above)
            }
        };
        self.above += above;
        self.s += s;
        self.s1 += s1;
        self.s2 += s2;
    }

    /// Merges a block's sums taken about its own max `bm` (the tensor backend's form).
    fn merge(&mut self, bm: f64, s: f64, s1: f64, s2: f64) {
        if bm.is_nan() {
            self.m = f64::NAN;
            return;
        }
        // re-centre whichever side has the smaller max on the larger one (a' = a + d, d <= 0)
        let shift = |d: f64, s: f64, s1: f64, s2: f64| {
            let f = d.exp();
            (f * s, f * (s1 + d * s), f * (s2 + 2.0 * d * s1 + d * d * s))
        };
        if bm > self.m {
            let (a, b, c) = if self.s > 0.0 {
                shift(self.m - bm, self.s, self.s1, self.s2)
            } else {
                (0.0, 0.0, 0.0)
            };
            self.m = bm;
            self.s = a + s;
            self.s1 = b + s1;
            self.s2 = c + s2;
        } else {
            let (a, b, c) = shift(bm - self.m, s, s1, s2);
            self.s += a;
            self.s1 += b;
            self.s2 += c;
        }
    }

    /// `log p(v) = a_v − ln s`, so `mu = s1/s − ln s`, the variance of `log p` is that of
    /// `a`: `s2/s − (s1/s)²`, clamped at 0, and the top prediction (`a = 0`) has `−ln s`.
    /// The rank is made consistent with the exact comparison of the target with the max
    /// (both taken from the same logits): 1 exactly when no logit exceeds the target's.
    fn finish(&self) -> TokenStat {
        let ln_s = self.s.ln();
        let mean_a = self.s1 / self.s;
        // the target itself is above a threshold computed a rounding error below it
        let own = u32::from(self.target_raw > self.threshold);
        let rank = if self.target < self.m {
            (1 + self.above.saturating_sub(own)).max(2)
        } else {
            1
        };
        TokenStat {
            logp: self.target - self.m - ln_s,
            mu: mean_a - ln_s,
            sigma: (self.s2 / self.s - mean_a * mean_a).max(0.0).sqrt(),
            top1: -ln_s,
            rank,
        }
    }
}

/// Reduces one whole row of logits (the single-block case of [`token_stats`]).
pub fn row_stats(row: &[f32], target: usize, softcap: Option<f64>) -> TokenStat {
    let mut a = RowAcc::new(row[target]);
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
            top1: m - lse,
            rank: 1 + row.iter().filter(|&&v| v > row[t]).count() as u32,
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
            assert!((a.top1 - b.top1).abs() < 1e-6);
            assert_eq!(a.rank, b.rank);
            assert_eq!(a.top1_wrong(), b.rank > 1);
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
                let mut a = RowAcc::new(row[t]);
                for (b, chunk) in row.chunks(block).enumerate() {
                    a.update(chunk, b * block, t, None);
                }
                let got = a.finish();
                assert!((got.logp - want.logp).abs() < 1e-6, "block {block}");
                assert!((got.mu - want.mu).abs() < 1e-5, "block {block}");
                assert!((got.sigma - want.sigma).abs() < 1e-5, "block {block}");
                assert!((got.top1 - want.top1).abs() < 1e-6, "block {block}");
                assert_eq!(got.rank, want.rank, "block {block}");
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
        // a tie with the top: the token counts as the top prediction
        assert_eq!(s.rank, 1);
        assert!((s.top1 - s.logp).abs() < 1e-12);
        assert!((s.entropy() - 8f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn rank_counts_larger_logits_even_with_a_threshold_a_rounding_error_off() {
        let row = [1.0f32, 3.0, 2.0, 3.0, 0.5];
        // exact threshold, then one a hair below the target (the target counts itself: corrected)
        for thr in [2.0f32, 2.0 - 1e-6] {
            let mut a = RowAcc::new(thr);
            a.update(&row[..2], 0, 2, None);
            a.update(&row[2..], 2, 2, None);
            assert_eq!(a.finish().rank, 3, "threshold {thr}");
        }
        assert_eq!(row_stats(&row, 1, None).rank, 1);
        assert_eq!(row_stats(&row, 4, None).rank, 5);
    }

    #[test]
    fn softcap_is_applied_before_the_softmax() {
        let row = vec![100.0f32, 0.0];
        let capped = row_stats(&row, 1, Some(30.0));
        let want = reference(&[30.0 * (100f32 / 30.0).tanh(), 0.0], 1);
        assert!((capped.logp - want.logp).abs() < 1e-5);
    }
}
