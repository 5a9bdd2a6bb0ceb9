//! Building blocks every architecture shares, written once: linear maps, RMS norm, rotary
//! position embeddings (interleaved and half-split), and causal / sliding-window attention
//! over packed sequences.

use crate::error::Result;
use crate::kernel;
use crate::model::attention;
use crate::model::weight::Weight;
use crate::profile::{self, Phase};
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, RwLock};

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
        let y = super::matmul::matmul_t(x, &self.weight.expand()?)?;
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
    /// The weights as f32 on the host, for the CPU kernels (`None` off the CPU).
    host: Option<Vec<f32>>,
    eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        let host = weight
            .device()
            .is_cpu()
            .then(|| {
                weight
                    .to_dtype(DType::F32)
                    .and_then(|w| w.to_vec1::<f32>())
                    .ok()
            })
            .flatten();
        RmsNorm {
            weight,
            host,
            eps: eps as f32,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(w) = self.host.as_deref().filter(|_| cpu_f32(x) && x.rank() >= 2) else {
            return Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?);
        };
        let x = x.contiguous()?;
        let n = x.dim(D::Minus1)?;
        let rows = x.flatten_to(x.rank() - 2)?;
        let xs = cpu_rows(&rows)?;
        // SAFETY: rms_norm writes every element of its output (it asserts the lengths).
        let out = unsafe {
            rows_written(x.elem_count(), n, |r, o| {
                kernel::rms_norm(xs.row(r, n), w, self.eps, o)
            })
        };
        Ok(Tensor::from_vec(out, x.shape(), x.device())?)
    }

    /// `(x + a, norm(x + a))`: a residual addition and the norm that reads its result, in
    /// one pass over the rows on the CPU (the same numbers as the addition, then
    /// [`RmsNorm::forward`]).
    pub fn add_forward(&self, x: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let fused = cpu_f32(x) && cpu_f32(a) && x.dims() == a.dims() && x.rank() == 2;
        let Some(w) = self.host.as_deref().filter(|_| fused) else {
            let s = (x + a)?;
            let n = self.forward(&s)?;
            return Ok((s, n));
        };
        let (x, a) = (x.contiguous()?, a.contiguous()?);
        let n = x.dim(1)?;
        let (xs, as_) = (cpu_rows(&x)?, cpu_rows(&a)?);
        let len = x.elem_count();
        let (mut sum, mut out) = (Vec::with_capacity(len), Vec::with_capacity(len));
        sum.spare_capacity_mut()[..len]
            .par_chunks_mut(n)
            .zip(out.spare_capacity_mut()[..len].par_chunks_mut(n))
            .enumerate()
            .for_each(|(r, (s, o))| {
                kernel::add_rms_norm(xs.row(r, n), as_.row(r, n), w, self.eps, s, o)
            });
        // SAFETY: the rows of `n` cover `len`, and add_rms_norm writes every element of
        // both outputs (it asserts the lengths).
        unsafe {
            sum.set_len(len);
            out.set_len(len);
        }
        Ok((
            Tensor::from_vec(sum, x.shape(), x.device())?,
            Tensor::from_vec(out, x.shape(), x.device())?,
        ))
    }
}

/// A CPU f32 tensor: the kernels' domain.
fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
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
///
/// The cos/sin tables are built once per length (grown to the next power of two when a
/// longer position comes) and, off the CPU, uploaded once per device: a forward only looks
/// rows up.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
    style: RopeStyle,
    tables: Arc<RwLock<RotaryTables>>,
}

/// Cached tables: `cos`, `sin` `[len, dim/2]` on the host, and their copy on a device.
#[derive(Debug, Default)]
struct RotaryTables {
    len: usize,
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    device: Option<(Tensor, Tensor)>,
}

impl Rotary {
    /// Frequencies as transformers computes them, in f32 (`1 / base^(2i/dim)`), so that angles
    /// round the same way as the reference.
    pub fn new(dim: usize, base: f64, style: RopeStyle) -> Self {
        let base = base as f32;
        let inv_freq = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        Rotary {
            inv_freq,
            style,
            tables: Arc::default(),
        }
    }

    /// Divides each frequency by its factor (Llama 3.1's long-context scaling, which GGUF
    /// files carry as the `rope_freqs` tensor).
    pub fn with_factors(mut self, factors: &[f32]) -> Self {
        for (f, k) in self.inv_freq.iter_mut().zip(factors) {
            *f /= *k;
        }
        self.tables = Arc::default();
        self
    }

    /// Host tables covering positions `0..len` at least: `(cos, sin)`, `[len', dim/2]`.
    fn host(&self, len: usize) -> (Arc<Vec<f32>>, Arc<Vec<f32>>) {
        {
            let t = self.tables.read().expect("rotary tables");
            if t.len >= len {
                return (t.cos.clone(), t.sin.clone());
            }
        }
        let mut t = self.tables.write().expect("rotary tables");
        if t.len < len {
            let n = len.next_power_of_two();
            let half = self.inv_freq.len();
            let mut cos = Vec::with_capacity(n * half);
            let mut sin = Vec::with_capacity(n * half);
            for p in 0..n {
                for &f in &self.inv_freq {
                    let angle = (p as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
            *t = RotaryTables {
                len: n,
                cos: Arc::new(cos),
                sin: Arc::new(sin),
                device: None,
            };
        }
        (t.cos.clone(), t.sin.clone())
    }

    /// cos and sin tables `[T, dim/2]` for the given positions, looked up in the cached tables
    /// (on `device`, where they are uploaded once).
    pub fn tables(&self, positions: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let len = positions.iter().max().map_or(0, |&p| p as usize + 1);
        let (cos, sin) = self.host(len);
        if device.is_cpu() {
            let pick = |table: &[f32]| -> Vec<f32> {
                positions
                    .iter()
                    .flat_map(|&p| &table[p as usize * half..(p as usize + 1) * half])
                    .copied()
                    .collect()
            };
            let shape = (positions.len(), half);
            return Ok((
                Tensor::from_vec(pick(&cos), shape, device)?,
                Tensor::from_vec(pick(&sin), shape, device)?,
            ));
        }
        let full = {
            let mut t = self.tables.write().expect("rotary tables");
            let n = t.len;
            let stale = match &t.device {
                Some((c, _)) => !c.device().same_device(device) || c.dim(0)? != n,
                None => true,
            };
            if stale {
                t.device = Some((
                    Tensor::from_slice(&t.cos, (n, half), device)?,
                    Tensor::from_slice(&t.sin, (n, half), device)?,
                ));
            }
            t.device.clone().expect("uploaded")
        };
        let idx = Tensor::new(positions, device)?;
        Ok((full.0.index_select(&idx, 0)?, full.1.index_select(&idx, 0)?))
    }

    /// Rotates `x` `[T, heads · head_dim]` (token-major, unit column stride; any row stride)
    /// for the given positions on the CPU in f32, into a new contiguous `[T, heads · head_dim]`
    /// tensor: one pass, straight from the cached tables. Features past the rotary dimension
    /// are copied.
    pub fn rotate_rows_cpu(
        &self,
        x: &Tensor,
        heads: usize,
        head_dim: usize,
        positions: &[u32],
    ) -> Result<Tensor> {
        let half = self.inv_freq.len();
        let rot = 2 * half;
        let len = positions.iter().max().map_or(0, |&p| p as usize + 1);
        let (cos, sin) = self.host(len);
        let view = cpu_rows(x)?;
        let width = heads * head_dim;
        let style = self.style;
        let write = |t: usize, o: &mut [MaybeUninit<f32>]| {
            let src = view.row(t, width);
            let p = positions[t] as usize;
            let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
            for h in 0..heads {
                let xi = &src[h * head_dim..(h + 1) * head_dim];
                let oi = &mut o[h * head_dim..(h + 1) * head_dim];
                match style {
                    RopeStyle::Interleaved => {
                        for i in 0..half {
                            let (a, b) = (xi[2 * i], xi[2 * i + 1]);
                            oi[2 * i].write(a * c[i] - b * s[i]);
                            oi[2 * i + 1].write(a * s[i] + b * c[i]);
                        }
                    }
                    RopeStyle::Halves => {
                        for i in 0..half {
                            let (a, b) = (xi[i], xi[i + half]);
                            oi[i].write(a * c[i] - b * s[i]);
                            oi[i + half].write(b * c[i] + a * s[i]);
                        }
                    }
                }
                kernel::write_slice(&mut oi[rot..], &xi[rot..]);
            }
        };
        // SAFETY: each row's heads cover its `width` features, every one of them written:
        // the `rot` rotated ones (pairs 0..half) and the rest copied.
        let out = unsafe { rows_written(positions.len() * width, width, write) };
        Ok(Tensor::from_vec(out, (positions.len(), width), x.device())?)
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

/// A CPU f32 matrix seen through its layout: row `t` starts at `offset + t · row_stride`
/// (unit column stride). Lets kernels read views (the q/k/v column ranges of a fused
/// projection) without copying them out.
pub(crate) struct CpuRows<'a> {
    _guard: candle_core::StorageRef<'a>,
    data: *const f32,
    len: usize,
    pub offset: usize,
    pub row_stride: usize,
}

// SAFETY: the pointer is into the storage the guard keeps borrowed (read-only).
unsafe impl Sync for CpuRows<'_> {}
unsafe impl Send for CpuRows<'_> {}

impl CpuRows<'_> {
    /// The whole storage (indices are `offset + t · row_stride + column`).
    pub fn data(&self) -> &[f32] {
        // SAFETY: `data`/`len` come from the guarded storage's slice.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    /// `n` values of row `t` from its first column.
    pub fn row(&self, t: usize, n: usize) -> &[f32] {
        let a = self.offset + t * self.row_stride;
        &self.data()[a..a + n]
    }
}

/// The CPU f32 view of a 2-D tensor with unit column stride (error otherwise: callers make
/// such tensors).
pub(crate) fn cpu_rows(x: &Tensor) -> Result<CpuRows<'_>> {
    let (_, cols) = x.dims2()?;
    let (guard, layout) = x.storage_and_layout();
    let stride = layout.stride();
    if cols > 1 && stride[1] != 1 {
        return Err(candle_core::Error::Msg(
            "internal: a kernel was handed a matrix with non-unit column stride".into(),
        )
        .into());
    }
    let (data, len) = match &*guard {
        candle_core::Storage::Cpu(c) => {
            let s = c.as_slice::<f32>()?;
            (s.as_ptr(), s.len())
        }
        _ => {
            return Err(candle_core::Error::Msg(
                "internal: a CPU kernel was handed a device tensor".into(),
            )
            .into())
        }
    };
    Ok(CpuRows {
        offset: layout.start_offset(),
        row_stride: stride[0],
        data,
        len,
        _guard: guard,
    })
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

/// Several linear maps of the same input computed as one matmul where their weights can
/// be stacked (q/k/v, gate/up): fewer, larger GEMMs, and one read of the input. The outputs
/// are column ranges (views) of the stacked result; each column is the same dot product as
/// in the separate map.
#[derive(Debug)]
pub enum Stacked {
    Fused { lin: Linear, widths: Vec<usize> },
    Separate(Vec<Linear>),
}

impl Stacked {
    /// Stacks `parts` if their weights share a form (see [`Weight::concat_rows`]) and either
    /// all or none have biases.
    pub fn new(parts: Vec<Linear>) -> Result<Stacked> {
        let weights: Vec<&Weight> = parts.iter().map(|l| &l.weight).collect();
        let biases: Option<Vec<&Tensor>> = parts.iter().map(|l| l.bias.as_ref()).collect();
        let none = parts.iter().all(|l| l.bias.is_none());
        if biases.is_none() && !none {
            return Ok(Stacked::Separate(parts));
        }
        let Some(weight) = Weight::concat_rows(&weights)? else {
            return Ok(Stacked::Separate(parts));
        };
        let bias = match biases {
            Some(b) if !none => Some(Tensor::cat(&b, 0)?),
            _ => None,
        };
        let widths = parts
            .iter()
            .map(|l| Ok(l.weight.dims2()?.0))
            .collect::<Result<Vec<_>>>()?;
        Ok(Stacked::Fused {
            lin: Linear::from_weight(weight, bias),
            widths,
        })
    }

    /// `x` `[T, in]` → one `[T, out_i]` per part (column views when fused).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Stacked::Separate(parts) => parts.iter().map(|l| l.forward(x)).collect(),
            Stacked::Fused { lin, widths } => {
                let y = lin.forward(x)?;
                let mut c = 0;
                widths
                    .iter()
                    .map(|&w| {
                        let part = y.narrow(1, c, w)?;
                        c += w;
                        Ok(part)
                    })
                    .collect()
            }
        }
    }
}

/// Gated feed-forward block: `down(act(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// Gate and up.
    pub gate_up: Stacked,
    pub down: Linear,
    pub act: Activation,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = profile::time(Phase::FfnMatmul, || self.gate_up.forward(x))?;
        let (g, u) = (&gu[0], &gu[1]);
        let h = profile::time(Phase::Activation, || {
            if cpu_f32(g) {
                return gated_cpu(self.act, g, u);
            }
            let g = match self.act {
                Activation::Silu => candle_nn::ops::silu(g)?,
                Activation::GeluTanh => g.gelu()?,
            };
            Ok::<_, crate::error::Error>((g * u)?)
        })?;
        profile::time(Phase::FfnMatmul, || self.down.forward(&h))
    }
}

/// `act(g) · u` on the CPU in one vectorised pass, reading `g` and `u` where they lie (the
/// two halves of the stacked gate/up output).
fn gated_cpu(act: Activation, g: &Tensor, u: &Tensor) -> Result<Tensor> {
    let (t, n) = g.dims2()?;
    let (gv, uv) = (cpu_rows(g)?, cpu_rows(u)?);
    let f = match act {
        Activation::Silu => kernel::silu_mul,
        Activation::GeluTanh => kernel::gelu_mul,
    };
    // SAFETY: both kernels write every element of their output (they assert the lengths).
    let out = unsafe { rows_written(t * n, n, |r, o| f(gv.row(r, n), uv.row(r, n), o)) };
    Ok(Tensor::from_vec(out, (t, n), g.device())?)
}

/// `len` floats in rows of `n`, row `r` written by `write(r, row)` on rayon's pool, without
/// zero-filling them first (a `memset` of every norm and activation output, which the
/// kernels then overwrite).
///
/// # Safety
/// `write` must write every element of the row it is given.
unsafe fn rows_written(
    len: usize,
    n: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(r, o)| write(r, o));
    // SAFETY: the rows of `n` cover `len`, and the caller's `write` filled each.
    unsafe { out.set_len(len) };
    out
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
