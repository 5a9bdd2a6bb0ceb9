//! Building blocks every architecture shares, written once: linear maps, RMS norm, rotary
//! position embeddings (interleaved and half-split), and causal / sliding-window attention
//! over packed sequences.

use crate::error::Result;
use crate::kernel;
use crate::model::weight::Weight;
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

/// A linear map `y = x Wᵀ (+ b)`, with `W` stored `[out, in]` as in the files (kept as the
/// file stores it and expanded for the matmul: see [`Weight`]).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor) -> Self {
        Linear {
            weight: Weight::Dense(weight),
            bias: None,
        }
    }

    pub fn with_bias(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight: Weight::Dense(weight),
            bias,
        }
    }

    pub fn from_weight(weight: Weight, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    /// Loads `weight` `[out, in]` (and `bias` `[out]` if `bias`) from a Hugging Face checkpoint.
    pub fn load(
        vb: &candle_nn::VarBuilder,
        inp: usize,
        out: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let b = if bias {
            Some(vb.get(out, "bias")?)
        } else {
            None
        };
        Ok(Linear::with_bias(vb.get((out, inp), "weight")?, b))
    }

    /// `x`: `[T, in]` → `[T, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.expand()?.t()?)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Layer norm with bias (GPT-2, GPT-NeoX): `(x − mean) / sqrt(var + eps) * w + b`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        LayerNorm {
            weight,
            bias,
            eps: eps as f32,
        }
    }

    /// Loads `weight` and `bias` `[n]` from a Hugging Face checkpoint.
    pub fn load(vb: &candle_nn::VarBuilder, n: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(LayerNorm::new(
            vb.get(n, "weight")?,
            vb.get(n, "bias")?,
            eps,
        ))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            x,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }
}

/// Root-mean-square layer norm: `x / sqrt(mean(x²) + eps) * w`, in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        RmsNorm {
            weight,
            eps: eps as f32,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?)
    }
}

/// How rotary pairs are laid out inside a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs are adjacent `(x0, x1), (x2, x3)…`: GGUF `llama` weights, whose q/k rows
    /// llama.cpp's converter permuted.
    Interleaved,
    /// Pairs are `(x_i, x_{i+d/2})`: Hugging Face llama/qwen2/mistral, GPT-NeoX, Gemma.
    Halves,
}

/// Rotary position embedding over the first `dim` features of each head.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
    style: RopeStyle,
}

impl Rotary {
    /// Frequencies as transformers computes them, in f32 (`1 / base^(2i/dim)`), so that angles
    /// round the same way as the reference.
    pub fn new(dim: usize, base: f64, style: RopeStyle) -> Self {
        let base = base as f32;
        let inv_freq = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        Rotary { inv_freq, style }
    }

    /// Divides each frequency by its factor (Llama 3.1's long-context scaling, which GGUF
    /// files carry as the `rope_freqs` tensor).
    pub fn with_factors(mut self, factors: &[f32]) -> Self {
        for (f, k) in self.inv_freq.iter_mut().zip(factors) {
            *f /= *k;
        }
        self
    }

    /// cos and sin tables `[T, dim/2]` for the given positions (only these: no table for the
    /// whole context is kept).
    pub fn tables(&self, positions: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let shape = (positions.len(), half);
        Ok((
            Tensor::from_vec(cos, shape, device)?,
            Tensor::from_vec(sin, shape, device)?,
        ))
    }

    /// Applies the rotation to `x`: `[1, heads, T, head_dim]`, contiguous. When the rotary
    /// dimension is smaller than the head, only the leading features rotate.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let rot = 2 * self.inv_freq.len();
        let head_dim = x.dim(D::Minus1)?;
        let (xr, rest) = if rot < head_dim {
            (
                x.narrow(D::Minus1, 0, rot)?.contiguous()?,
                Some(x.narrow(D::Minus1, rot, head_dim - rot)?),
            )
        } else {
            (x.clone(), None)
        };
        let (cos, sin) = (&cos.to_dtype(x.dtype())?, &sin.to_dtype(x.dtype())?);
        let y = match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&xr, cos, sin)?,
            RopeStyle::Halves => candle_nn::rotary_emb::rope(&xr, cos, sin)?,
        };
        Ok(match rest {
            Some(rest) => Tensor::cat(&[&y, &rest], D::Minus1)?,
            None => y,
        })
    }
}

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
    let (heads, t, d) = q.dims3()?;
    let kv_heads = k.dim(0)?;
    let groups = heads / kv_heads;
    let device = q.device();
    let mut outs = Vec::with_capacity(t.div_ceil(QUERY_BLOCK));
    let mut qs = 0;
    while qs < t {
        let qn = QUERY_BLOCK.min(t - qs);
        let qe = qs + qn;
        // absolute position of the block's first query, and the keys the block can see
        let qa = offset + qs;
        let ks = match window {
            Some(w) => (qa + 1).saturating_sub(w),
            None => 0,
        };
        let kn = offset + qe - ks;
        // [heads, qn, d] → [kv_heads, groups*qn, d]
        let qb = q
            .narrow(1, qs, qn)?
            .contiguous()?
            .reshape((kv_heads, groups * qn, d))?;
        let kb = k.narrow(1, ks, kn)?;
        let vb = v.narrow(1, ks, kn)?.contiguous()?;
        let mut scores = (qb.matmul(&kb.t()?)? * scale)?;
        if let Some(c) = softcap {
            scores = ((scores / c)?.tanh()? * c)?;
        }
        let scores = scores.reshape((kv_heads, groups, qn, kn))?;
        let probs = if device.is_cpu() && scores.dtype() == DType::F32 {
            causal_softmax_cpu(&scores, qa, ks, window)?
        } else {
            let mask = mask_block(qa, qn, ks, kn, window, device)?.to_dtype(scores.dtype())?;
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?
        };
        let out = probs.reshape((kv_heads, groups * qn, kn))?.matmul(&vb)?;
        // [kv_heads, groups*qn, d] → [heads, qn, d] → [qn, heads*d]
        let out = out
            .reshape((heads, qn, d))?
            .transpose(0, 1)?
            .reshape((qn, heads * d))?;
        outs.push(out);
        qs = qe;
    }
    Ok(if outs.len() == 1 {
        outs.pop().expect("one block")
    } else {
        Tensor::cat(&outs, 0)?
    })
}

/// [`attention`] over every sequence of a packed batch: `q`, `k`, `v` hold all the batch's
/// positions (`[heads, T, d]`); each span attends only within itself. Returns `[T, heads * d]`.
pub fn packed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spans: &[(usize, usize)],
    scale: f64,
    window: Option<usize>,
) -> Result<Tensor> {
    let mut outs = spans
        .iter()
        .map(|&(s, n)| {
            attention(
                &q.narrow(1, s, n)?,
                &k.narrow(1, s, n)?,
                &v.narrow(1, s, n)?,
                scale,
                window,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(if outs.len() == 1 {
        outs.pop().expect("one span")
    } else {
        Tensor::cat(&outs, 0)?
    })
}

/// Additive mask `[qn, kn]` for queries `qs..qs+qn` against keys `ks..ks+kn`.
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

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (Llama, Qwen, Mistral, Phi-3, OLMo 2).
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
}

/// Gated feed-forward block: `down(act(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    pub act: Activation,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        let g = match self.act {
            Activation::Silu => candle_nn::ops::silu(&g)?,
            Activation::GeluTanh => g.gelu()?,
        };
        self.down.forward(&(g * self.up.forward(x)?)?)
    }
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
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
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
    /// rotation with its tables for the batch's positions. With `prefix`, every sequence of
    /// the batch attends to the prefix first (its positions must then start at `P`).
    pub fn forward(
        &self,
        x: &Tensor,
        spans: &[(usize, usize)],
        rope: (&Rotary, &Tensor, &Tensor),
        prefix: Option<&KvPrefix>,
    ) -> Result<Tensor> {
        let (q, k, v) = self.project(x, rope)?;
        let outs = spans
            .iter()
            .map(|&(s, n)| {
                let (q, k, v) = (q.narrow(1, s, n)?, k.narrow(1, s, n)?, v.narrow(1, s, n)?);
                match prefix {
                    None => attention_after(&q, &k, &v, self.scale, self.window, 0, self.softcap),
                    Some(p) => attention_after(
                        &q,
                        &Tensor::cat(&[&p.k, &k], 1)?,
                        &Tensor::cat(&[&p.v, &v], 1)?,
                        self.scale,
                        self.window,
                        p.k.dim(1)?,
                        self.softcap,
                    ),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let attn = if outs.len() == 1 {
            outs.into_iter().next().expect("one span")
        } else {
            Tensor::cat(&outs, 0)?
        };
        self.o.forward(&attn)
    }

    /// Rotated queries `[heads, T, d]`, rotated keys and values `[kv_heads, T, d]`.
    pub fn project(
        &self,
        x: &Tensor,
        rope: (&Rotary, &Tensor, &Tensor),
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let t = x.dim(0)?;
        let (mut q, mut k) = (self.q.forward(x)?, self.k.forward(x)?);
        if let Some(QkNorm::Whole(qn, kn)) = &self.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let per_head = match &self.qk_norm {
            Some(QkNorm::PerHead(qn, kn)) => Some((qn, kn)),
            _ => None,
        };
        let heads = |y: Tensor, n: usize, norm: Option<&RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((t, n, self.head_dim))?;
            let y = match norm {
                Some(norm) => norm.forward(&y)?,
                None => y,
            };
            Ok(y.transpose(0, 1)?.contiguous()?.unsqueeze(0)?)
        };
        let (rotary, cos, sin) = rope;
        let q = heads(q, self.heads, per_head.map(|p| p.0))?;
        let k = heads(k, self.kv_heads, per_head.map(|p| p.1))?;
        let v = heads(self.v.forward(x)?, self.kv_heads, None)?.squeeze(0)?;
        let q = rotary.apply(&q, cos, sin)?.squeeze(0)?;
        let k = rotary.apply(&k, cos, sin)?.squeeze(0)?;
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
        let mut s = seed;
        (0..a)
            .map(|_| {
                (0..b)
                    .map(|_| {
                        (0..c)
                            .map(|_| {
                                s = s
                                    .wrapping_mul(6364136223846793005)
                                    .wrapping_add(1442695040888963407);
                                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                            })
                            .collect()
                    })
                    .collect()
            })
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

    /// Rotates `x` (one head, one position `pos`) and returns the result.
    fn rotate(r: &Rotary, pos: u32, x: Vec<f32>) -> Vec<f32> {
        let (c, s) = r.tables(&[pos], &Device::Cpu).unwrap();
        let n = x.len();
        let x = Tensor::from_vec(x, (1, 1, 1, n), &Device::Cpu).unwrap();
        r.apply(&x, &c, &s)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn rotary_halves_and_interleaved_rotate_the_right_pairs() {
        // position 1, one frequency (dim 2): rotation by exactly 1 radian
        let y = rotate(
            &Rotary::new(2, 10_000.0, RopeStyle::Interleaved),
            1,
            vec![1.0, 0.0],
        );
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        // halves with dim 4: pairs (0,2) and (1,3)
        let y = rotate(
            &Rotary::new(4, 10_000.0, RopeStyle::Halves),
            1,
            vec![1.0, 0.0, 0.0, 0.0],
        );
        assert!(
            (y[0] - 1f32.cos()).abs() < 1e-6 && (y[2] - 1f32.sin()).abs() < 1e-6,
            "{y:?}"
        );
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
