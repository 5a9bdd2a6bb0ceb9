//! Attention as the architectures use it: q/k/v projections, q/k norms, rotation, then the
//! packed attention kernel (`crate::kernels::attention`), and the one-sequence forms used
//! for prefix conditioning and tests.

use super::linear::{Linear, Stacked};
use super::norm::RmsNorm;
use super::rotary::Rotary;
use crate::error::Result;
use crate::kernels::attention;
use crate::kernels::simd as kernel;
use crate::profile::{self, Phase};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Queries processed per attention block: bounds the score matrix to
/// `heads × QUERY_BLOCK × keys` floats however long the passage.
const QUERY_BLOCK: usize = 128;

/// Causal self-attention of one sequence, optionally restricted to a sliding window.
///
/// `q`: `[heads, T, d]`, `k`, `v`: `[kv_heads, T, d]` (grouped-query: query head `h` reads
/// kv head `h / (heads / kv_heads)`). With `window = Some(w)`, position `i` attends to
/// `j` with `i - w < j <= i` (w keys including itself, as transformers and llama.cpp do).
/// Returns `[T, heads * d]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    window: Option<usize>,
) -> Result<Tensor> {
    attention_after(q, k, v, scale, window, 0, None)
}

/// [`attention`] of queries that follow `offset` earlier positions: `q` is `[heads, T, d]`
/// at positions `offset..offset + T`, `k`, `v` are `[kv_heads, offset + T, d]` (a shared
/// prefix's keys and values, then the sequence's). With `softcap = Some(c)` the scores are
/// soft-capped to `c · tanh(s / c)` before the soft-max (Gemma 2).
pub fn attention_after(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    window: Option<usize>,
    offset: usize,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let device = q.device();
    // queries `qs..` of the block sit at absolute positions `offset + qs..`
    attention::query_blocks(
        q,
        k,
        v,
        QUERY_BLOCK,
        scale,
        softcap,
        |qs, qn| {
            let qa = offset + qs;
            let ks = window.map_or(0, |w| (qa + 1).saturating_sub(w));
            (ks, offset + qs + qn - ks)
        },
        |scores, qs, ks| {
            let qa = offset + qs;
            if device.is_cpu() && scores.dtype() == DType::F32 {
                causal_softmax_cpu(scores, qa, ks, window)
            } else {
                let (qn, kn) = (scores.dim(2)?, scores.dim(3)?);
                let mask = mask_block(qa, qn, ks, kn, window, device)?.to_dtype(scores.dtype())?;
                Ok(candle_nn::ops::softmax_last_dim(
                    &scores.broadcast_add(&mask)?,
                )?)
            }
        },
    )
}

/// [`attention`] over every sequence of a packed batch: `q`, `k`, `v` hold all the batch's
/// positions (`[heads, T, d]`); each span attends only within itself. Returns `[T, heads * d]`.
/// (Through the backend seam: see [`attention::packed`].)
pub fn packed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spans: &[(usize, usize)],
    scale: f64,
    window: Option<usize>,
) -> Result<Tensor> {
    let (qh, kh, vh) = (q.dim(0)?, k.dim(0)?, v.dim(0)?);
    let hd = |x, heads| attention::Heads {
        x,
        order: attention::Order::HeadMajor,
        heads,
    };
    attention::packed(
        attention::Backend::for_tensor(q),
        hd(q, qh),
        hd(k, kh),
        hd(v, vh),
        attention::Mask { spans, window },
        scale,
        None,
    )
}

/// The causal (optionally windowed) soft-max of a CPU f32 score block `[.., qn, kn]` whose
/// rows are queries `qs..qs + qn` and columns keys `ks..ks + kn`: each row is normalised
/// over its visible keys only and hidden keys get 0, so masked entries cost neither an
/// `exp` nor a mask tensor. Same visibility as [`mask_block`].
fn causal_softmax_cpu(
    scores: &Tensor,
    qs: usize,
    ks: usize,
    window: Option<usize>,
) -> Result<Tensor> {
    let dims = scores.dims().to_vec();
    let (qn, kn) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mut data: Vec<f32> = scores.flatten_all()?.to_vec1()?;
    data.par_chunks_mut(kn).enumerate().for_each(|(r, row)| {
        let qi = qs + r % qn;
        // visible keys: ks + j <= qi, and qi − (ks + j) < w
        let hi = qi + 1 - ks;
        let lo = window.map_or(0, |w| (qi + 1).saturating_sub(w).saturating_sub(ks));
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        kernel::softmax(&mut row[lo..hi]);
    });
    Ok(Tensor::from_vec(data, dims, scores.device())?)
}

/// Additive mask `[qn, kn]` for queries `qs..qs+qn` against keys `ks..ks+kn`.
fn mask_block(
    qs: usize,
    qn: usize,
    ks: usize,
    kn: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let mut m = vec![0f32; qn * kn];
    for i in 0..qn {
        let qi = qs + i;
        for j in 0..kn {
            let kj = ks + j;
            let visible = kj <= qi && window.is_none_or(|w| qi - kj < w);
            if !visible {
                m[i * kn + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(m, (qn, kn), device)?)
}

/// RMS norms of the queries and keys before the rotation.
#[derive(Debug)]
pub enum QkNorm {
    /// Over each head's features (Qwen 3, Gemma 3): weights `[head_dim]`.
    PerHead(RmsNorm, RmsNorm),
    /// Over all heads' features at once (OLMo 2): weights `[heads · head_dim]`.
    Whole(RmsNorm, RmsNorm),
}

/// Keys and values of a prefix that a sequence is conditioned on, computed once (one per
/// layer): `[kv_heads, P, head_dim]` each, keys already rotated for positions `0..P`.
#[derive(Debug, Clone)]
pub struct KvPrefix {
    pub k: Tensor,
    pub v: Tensor,
}

/// Multi-head (grouped-query) causal self-attention with rotary positions, as every
/// decoder-only architecture here uses it; what differs between them is data: biases,
/// q/k norms, the scale, a sliding window, a soft-cap.
#[derive(Debug)]
pub struct Attention {
    /// q, k and v.
    pub qkv: Stacked,
    pub o: Linear,
    pub qk_norm: Option<QkNorm>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub scale: f64,
    /// Keys per query, itself included.
    pub window: Option<usize>,
    pub softcap: Option<f64>,
}

impl Attention {
    /// `x`: `[T, hidden]` for the batch's packed sequences → `[T, hidden]`. `rope`: the
    /// rotation and the batch's positions. With `prefix`, every sequence of the batch attends
    /// to the prefix first (its positions must then start at `P`).
    pub fn forward(
        &self,
        x: &Tensor,
        spans: &[(usize, usize)],
        rope: (&Rotary, &[u32]),
        prefix: Option<&KvPrefix>,
    ) -> Result<Tensor> {
        let attn = match prefix {
            None => {
                let (q, k, v, order) = self.project(x, rope)?;
                let _span = profile::span(Phase::Attention);
                let hd = |x, heads| attention::Heads { x, order, heads };
                attention::packed(
                    attention::Backend::for_tensor(&q),
                    hd(&q, self.heads),
                    hd(&k, self.kv_heads),
                    attention::Heads {
                        x: &v,
                        order: attention::Order::TokenMajor,
                        heads: self.kv_heads,
                    },
                    attention::Mask {
                        spans,
                        window: self.window,
                    },
                    self.scale,
                    self.softcap,
                )?
            }
            Some(p) => self.forward_after_prefix(x, spans, rope, p)?,
        };
        profile::time(Phase::OutProj, || self.o.forward(&attn))
    }

    /// Attention of each sequence after a shared key/value prefix (candle ops, one sequence
    /// at a time: prefixes are for a few prompts, not for bulk scoring).
    fn forward_after_prefix(
        &self,
        x: &Tensor,
        spans: &[(usize, usize)],
        (rotary, positions): (&Rotary, &[u32]),
        p: &KvPrefix,
    ) -> Result<Tensor> {
        let (q, k, v) = self.project_heads(x, rotary, positions)?;
        let outs = spans
            .iter()
            .map(|&(s, n)| {
                let (q, k, v) = (q.narrow(1, s, n)?, k.narrow(1, s, n)?, v.narrow(1, s, n)?);
                attention_after(
                    &q,
                    &Tensor::cat(&[&p.k, &k], 1)?,
                    &Tensor::cat(&[&p.v, &v], 1)?,
                    self.scale,
                    self.window,
                    p.k.dim(1)?,
                    self.softcap,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(if outs.len() == 1 {
            outs.into_iter().next().expect("one span")
        } else {
            Tensor::cat(&outs, 0)?
        })
    }

    /// Queries, keys (q/k-normed, not rotated) and values, token-major `[T, n · d]`; values
    /// may be a column view of the stacked projection.
    fn project_raw(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let t = x.dim(0)?;
        let _span = profile::span(Phase::Qkv);
        let mut qkv = self.qkv.forward(x)?.into_iter();
        let (mut q, mut k, v) = (
            qkv.next().expect("q"),
            qkv.next().expect("k"),
            qkv.next().expect("v"),
        );
        match &self.qk_norm {
            Some(QkNorm::Whole(qn, kn)) => {
                q = qn.forward(&q.contiguous()?)?;
                k = kn.forward(&k.contiguous()?)?;
            }
            Some(QkNorm::PerHead(qn, kn)) => {
                let per_head = |y: &Tensor, n: usize, norm: &RmsNorm| -> Result<Tensor> {
                    let y = y.contiguous()?.reshape((t, n, self.head_dim))?;
                    Ok(norm.forward(&y)?.reshape((t, n * self.head_dim))?)
                };
                q = per_head(&q, self.heads, qn)?;
                k = per_head(&k, self.kv_heads, kn)?;
            }
            None => {}
        }
        Ok((q, k, v))
    }

    /// Rotated queries and keys, values, and how q and k hold their heads: token-major
    /// straight from the rows on the CPU in f32, head-major `[n, T, d]` elsewhere.
    pub fn project(
        &self,
        x: &Tensor,
        (rotary, positions): (&Rotary, &[u32]),
    ) -> Result<(Tensor, Tensor, Tensor, attention::Order)> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let (q, k, v) = self.project_raw(x)?;
            let _span = profile::span(Phase::Rotary);
            let q = rotary.rotate_rows_cpu(&q, self.heads, self.head_dim, positions)?;
            let k = rotary.rotate_rows_cpu(&k, self.kv_heads, self.head_dim, positions)?;
            return Ok((q, k, v, attention::Order::TokenMajor));
        }
        let (q, k, v) = self.project_heads(x, rotary, positions)?;
        let v = v
            .transpose(0, 1)?
            .reshape((x.dim(0)?, self.kv_heads * self.head_dim))?;
        Ok((q, k, v, attention::Order::HeadMajor))
    }

    /// Rotated queries `[heads, T, d]`, rotated keys and values `[kv_heads, T, d]` (candle
    /// ops, any device).
    pub fn project_heads(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        positions: &[u32],
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let t = x.dim(0)?;
        let (q, k, v) = self.project_raw(x)?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((t, n, self.head_dim))?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)?)
        };
        let q = heads(q.contiguous()?, self.heads)?;
        let k = heads(k.contiguous()?, self.kv_heads)?;
        let v = heads(v.contiguous()?, self.kv_heads)?.squeeze(0)?;
        let _span = profile::span(Phase::Rotary);
        let (cos, sin) = rotary.tables(positions, x.device())?;
        let q = rotary.apply(&q, &cos, &sin)?.squeeze(0)?;
        let k = rotary.apply(&k, &cos, &sin)?.squeeze(0)?;
        Ok((q, k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention computed naively, one query at a time, for comparison.
    fn naive(
        q: &[Vec<Vec<f32>>],
        k: &[Vec<Vec<f32>>],
        v: &[Vec<Vec<f32>>],
        window: Option<usize>,
    ) -> Vec<Vec<f32>> {
        let heads = q.len();
        let t = q[0].len();
        let d = q[0][0].len();
        let groups = heads / k.len();
        let mut out = vec![vec![0f32; heads * d]; t];
        for h in 0..heads {
            let kh = h / groups;
            for i in 0..t {
                let lo = window.map_or(0, |w| (i + 1).saturating_sub(w));
                let s: Vec<f64> = (lo..=i)
                    .map(|j| {
                        (0..d)
                            .map(|x| (q[h][i][x] * k[kh][j][x]) as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for (jj, j) in (lo..=i).enumerate() {
                    let p = (s[jj] - m).exp() / z;
                    for x in 0..d {
                        out[i][h * d + x] += (p * v[kh][j][x] as f64) as f32;
                    }
                }
            }
        }
        out
    }

    fn rand3(a: usize, b: usize, c: usize, seed: u64) -> Vec<Vec<Vec<f32>>> {
        let flat = crate::test_support::uniform(a * b * c, seed);
        flat.chunks(b * c)
            .map(|m| m.chunks(c).map(<[f32]>::to_vec).collect())
            .collect()
    }

    fn tensor(x: &[Vec<Vec<f32>>]) -> Tensor {
        let (a, b, c) = (x.len(), x[0].len(), x[0][0].len());
        let flat: Vec<f32> = x.iter().flatten().flatten().copied().collect();
        Tensor::from_vec(flat, (a, b, c), &Device::Cpu).unwrap()
    }

    fn check(t: usize, window: Option<usize>) {
        let (heads, kvh, d) = (4, 2, 8);
        let q = rand3(heads, t, d, 1);
        let k = rand3(kvh, t, d, 2);
        let v = rand3(kvh, t, d, 3);
        let got = attention(
            &tensor(&q),
            &tensor(&k),
            &tensor(&v),
            1.0 / (d as f64).sqrt(),
            window,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        let want = naive(&q, &k, &v, window);
        for i in 0..t {
            for x in 0..heads * d {
                assert!(
                    (got[i][x] - want[i][x]).abs() < 1e-5,
                    "t={t} w={window:?} i={i} x={x}"
                );
            }
        }
    }

    #[test]
    fn attention_matches_naive_causal_gqa_across_query_blocks() {
        check(5, None);
        check(QUERY_BLOCK + 37, None);
    }

    #[test]
    fn sliding_window_matches_naive() {
        check(40, Some(7));
        check(QUERY_BLOCK + 37, Some(100));
    }

    #[test]
    fn attention_after_a_prefix_equals_the_tail_of_attention_over_both() {
        let (t, p) = (7, 5);
        for window in [None, Some(4)] {
            let q = tensor(&rand3(4, p + t, 8, 11));
            let k = tensor(&rand3(2, p + t, 8, 12));
            let v = tensor(&rand3(2, p + t, 8, 13));
            let whole = attention(&q, &k, &v, 0.3, window).unwrap();
            let tail =
                attention_after(&q.narrow(1, p, t).unwrap(), &k, &v, 0.3, window, p, None).unwrap();
            let a: Vec<f32> = whole
                .narrow(0, p, t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let b: Vec<f32> = tail.flatten_all().unwrap().to_vec1().unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{window:?}: {x} vs {y}");
            }
        }
    }
}
