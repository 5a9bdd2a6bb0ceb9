//! Causal (optionally sliding-window, soft-capped) attention over a packed batch, behind one
//! seam with two backends:
//!
//! - [`Backend::Kernel`], CPU f32: per sequence, block of queries and head, one score and
//!   one value matmul on the queries, keys and values where they lie, written into the
//!   head's columns of the output (gemm with strides: no transposes, no copies of q, k or
//!   v); only the keys each block can see are touched, and the soft-max skips masked keys;
//!   blocks run in parallel, each matmul single-threaded.
//! - [`Backend::Tensor`], any device: candle ops over blocks of the *packed* batch. Packed
//!   sequences are told apart by per-position sequence ids and positions (`cu_seqlens`-style
//!   metadata, a few bytes per token), from which each block's mask is computed on the device
//!   itself: no host-built masks and no per-passage loop of tiny kernels.
//!
//! Both compute, for query `i` of a sequence, the soft-max over keys `j` of the same sequence
//! with `j <= i` (and `i − j < w` under a window of `w`) of `scale · q·k` (soft-capped to
//! `c · tanh(s / c)` if asked), times `v`. Grouped-query: query head `h` reads kv head
//! `h / (heads / kv_heads)`.

use super::matmul::gemm_rows;
use super::rows::{cpu_rows, CpuRows};
use crate::error::Result;
use crate::kernels::simd as kernel;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Queries per block: bounds the score scratch to `QUERY_BLOCK × keys` floats per task.
const QUERY_BLOCK: usize = 128;

/// Which implementation runs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// CPU f32 kernel (gemm on strided views).
    Kernel,
    /// Candle ops on any device and dtype.
    Tensor,
}

impl Backend {
    /// The kernel on the CPU in f32, candle ops elsewhere.
    pub fn for_tensor(x: &Tensor) -> Backend {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            Backend::Kernel
        } else {
            Backend::Tensor
        }
    }
}

/// How a q/k/v tensor holds its heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `[T, heads · d]` (a projection's output, or a column range of a fused one).
    TokenMajor,
    /// `[heads, T, d]`.
    HeadMajor,
}

/// Queries, keys or values: the tensor, its layout and its head count.
#[derive(Debug, Clone, Copy)]
pub struct Heads<'a> {
    pub x: &'a Tensor,
    pub order: Order,
    pub heads: usize,
}

impl Heads<'_> {
    /// Features per head.
    fn head_dim(&self) -> Result<usize> {
        Ok(match self.order {
            Order::TokenMajor => self.x.dim(1)? / self.heads,
            Order::HeadMajor => self.x.dim(2)?,
        })
    }
}

/// What every query of the batch may see.
#[derive(Debug, Clone, Copy)]
pub struct Mask<'a> {
    /// `(start, len)` of each packed sequence, in order, covering the batch.
    pub spans: &'a [(usize, usize)],
    /// Keys per query, itself included.
    pub window: Option<usize>,
}

/// Attention of every packed sequence → `[T, heads · d]` (token-major).
pub fn packed(
    backend: Backend,
    q: Heads,
    k: Heads,
    v: Heads,
    mask: Mask,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    match backend {
        Backend::Kernel => kernel_path(q, k, v, mask, scale, softcap),
        Backend::Tensor => tensor_path(q, k, v, mask, scale, softcap),
    }
}

/// A CPU view of q, k or v: element `(t, h, i)` at `base + t·ts + h·hs + i`.
struct View<'a> {
    rows: CpuRows<'a>,
    ts: usize,
    hs: usize,
}

impl View<'_> {
    fn ptr(&self, t: usize, h: usize) -> *const f32 {
        let i = self.rows.offset + t * self.ts + h * self.hs;
        self.rows.data()[i..].as_ptr()
    }
}

/// `x` as a CPU view, copied to a contiguous layout first only if its inner stride is not 1.
fn view<'a>(h: &Heads, keep: &'a mut Option<Tensor>) -> Result<View<'a>> {
    let x = h.x;
    let d = h.head_dim()?;
    let inner_ok = x.stride().last() == Some(&1);
    let t = match h.order {
        Order::TokenMajor if inner_ok => x.clone(),
        Order::TokenMajor => x.contiguous()?,
        // [heads, T, d] → [heads·T, d] rows (contiguous needed for the reshape)
        Order::HeadMajor => {
            let (n, tt, dd) = x.dims3()?;
            x.contiguous()?.reshape((n * tt, dd))?
        }
    };
    let tokens = match h.order {
        Order::TokenMajor => t.dim(0)?,
        Order::HeadMajor => x.dim(1)?,
    };
    let t = keep.insert(t);
    let rows = cpu_rows(t)?;
    let (ts, hs) = match h.order {
        Order::TokenMajor => (rows.row_stride, d),
        Order::HeadMajor => (rows.row_stride, tokens * rows.row_stride),
    };
    Ok(View { rows, ts, hs })
}

struct Task {
    /// First row of the sequence in the batch, and the block's queries within it.
    start: usize,
    qs: usize,
    qn: usize,
}

fn kernel_path(
    q: Heads,
    k: Heads,
    v: Heads,
    mask: Mask,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let (mut kq, mut kk, mut kv) = (None, None, None);
    let (qv, kvw, vv) = (view(&q, &mut kq)?, view(&k, &mut kk)?, view(&v, &mut kv)?);
    let heads = q.heads;
    let d = q.head_dim()?;
    let groups = heads / k.heads;
    let width = heads * d;
    let total: usize = mask.spans.iter().map(|s| s.1).sum();
    // written in full by the tasks below, not zero-filled first
    let mut out = Vec::with_capacity(total * width);

    // tasks in row order, each owning its rows of the output
    let mut tasks = Vec::new();
    for &(start, n) in mask.spans {
        let mut qs = 0;
        while qs < n {
            let qn = QUERY_BLOCK.min(n - qs);
            tasks.push(Task { start, qs, qn });
            qs += qn;
        }
    }
    let mut parts: Vec<(&Task, &mut [MaybeUninit<f32>])> = Vec::with_capacity(tasks.len());
    let mut rest = &mut out.spare_capacity_mut()[..total * width];
    let mut row = 0;
    for t in &tasks {
        debug_assert_eq!(t.start + t.qs, row, "spans must cover the batch in order");
        let (mine, tail) = rest.split_at_mut(t.qn * width);
        parts.push((t, mine));
        rest = tail;
        row += t.qn;
    }
    // the biggest blocks (most keys) first, for the work-stealing pool
    parts.sort_by_key(|(t, _)| std::cmp::Reverse(t.qs + t.qn));

    parts.into_par_iter().for_each(|(t, out)| {
        let qe = t.qs + t.qn;
        let ks = mask.window.map_or(0, |w| (t.qs + 1).saturating_sub(w));
        let kn = qe - ks;
        // one score and one value matmul per query head, straight on the query rows where
        // they lie and into the head's columns of the output (gemm packs its operands
        // anyway: copying the query rows into a block first, and the result out of one,
        // was 1.3% of a SmolLM2 forward in small memcpys, `perf`)
        // written in full by its first matmul below (the destination is never read)
        let mut scores: Vec<f32> = Vec::with_capacity(t.qn * kn);
        let out = out.as_mut_ptr() as *mut f32;
        for h in 0..heads {
            let kh = h / groups;
            // SAFETY: every pointer is into a live storage (the views hold their guards),
            // and the strides keep each access inside it: rows start + qs .. start + qe of
            // q, rows start + ks .. start + qe of k and v, the task's own scores, and the
            // task's rows of the output (`qn` rows of `width`, head h's `d` columns).
            unsafe {
                gemm_rows(
                    (t.qn, kn, d),
                    (scores.as_mut_ptr(), kn),
                    (qv.ptr(t.start + t.qs, h), qv.ts),
                    (kvw.ptr(t.start + ks, kh), 1, kvw.ts),
                    scale as f32,
                );
                // SAFETY: the matmul wrote all `qn · kn` scores.
                scores.set_len(t.qn * kn);
            }
            for (r, srow) in scores.chunks_mut(kn).enumerate() {
                let qi = t.qs + r;
                // visible keys: ks + j <= qi, and qi − (ks + j) < w
                let hi = qi + 1 - ks;
                let lo = mask
                    .window
                    .map_or(0, |w| (qi + 1).saturating_sub(w).saturating_sub(ks));
                if let Some(c) = softcap {
                    let c = c as f32;
                    for x in &mut srow[lo..hi] {
                        *x = c * (*x / c).tanh();
                    }
                }
                srow[..lo].fill(0.0);
                srow[hi..].fill(0.0);
                kernel::softmax(&mut srow[lo..hi]);
            }
            // SAFETY: as above; the destination is written, never read.
            unsafe {
                gemm_rows(
                    (t.qn, d, kn),
                    (out.add(h * d), width),
                    (scores.as_ptr(), kn),
                    (vv.ptr(t.start + ks, kh), vv.ts, 1),
                    1.0,
                );
            }
        }
    });
    // SAFETY: the tasks' rows cover the batch, and each task wrote every head's `d`
    // features of each of its rows.
    unsafe { out.set_len(total * width) };
    Ok(Tensor::from_vec(out, (total, width), q.x.device())?)
}

/// Sequence id and position of every row of the batch, on `device`.
fn seq_meta(spans: &[(usize, usize)], device: &Device) -> Result<(Tensor, Tensor)> {
    let mut seq = Vec::new();
    let mut pos = Vec::new();
    for (i, &(_, n)) in spans.iter().enumerate() {
        seq.extend(std::iter::repeat_n(i as u32, n));
        pos.extend(0..n as u32);
    }
    Ok((Tensor::new(seq, device)?, Tensor::new(pos, device)?))
}

/// `[heads, T, d]`, contiguous.
fn head_major(h: &Heads) -> Result<Tensor> {
    Ok(match h.order {
        Order::HeadMajor => h.x.contiguous()?,
        Order::TokenMajor => {
            let (t, w) = h.x.dims2()?;
            h.x.reshape((t, h.heads, w / h.heads))?
                .transpose(0, 1)?
                .contiguous()?
        }
    })
}

fn tensor_path(
    q: Heads,
    k: Heads,
    v: Heads,
    mask: Mask,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let device = q.x.device();
    let (qh, kh, vh) = (head_major(&q)?, head_major(&k)?, head_major(&v)?);
    let t = qh.dim(1)?;
    let (seq, pos) = seq_meta(mask.spans, device)?;
    // first row of the sequence holding each row (host metadata, to bound each block's keys)
    let mut seq_start = Vec::with_capacity(t);
    for &(s, n) in mask.spans {
        seq_start.extend(std::iter::repeat_n(s, n));
    }
    query_blocks(
        &qh,
        &kh,
        &vh,
        2 * QUERY_BLOCK,
        scale,
        softcap,
        // keys: from the first query's sequence start (or its window) to the block's end
        |qs, qn| {
            let ks = match mask.window {
                Some(w) => seq_start[qs].max((qs + 1).saturating_sub(w)),
                None => seq_start[qs],
            };
            (ks, qs + qn - ks)
        },
        |scores, qs, ks| {
            let (qn, kn) = (scores.dim(2)?, scores.dim(3)?);
            // visible: same sequence, key position <= query position, within the window
            let (sq, sk) = (seq.narrow(0, qs, qn)?, seq.narrow(0, ks, kn)?);
            let (pq, pk) = (pos.narrow(0, qs, qn)?, pos.narrow(0, ks, kn)?);
            let same = sq.unsqueeze(1)?.broadcast_eq(&sk.unsqueeze(0)?)?;
            let causal = pk.unsqueeze(0)?.broadcast_le(&pq.unsqueeze(1)?)?;
            let mut visible = (same * causal)?;
            if let Some(w) = mask.window {
                let recent = (pk.unsqueeze(0)? + w as f64)?.broadcast_gt(&pq.unsqueeze(1)?)?;
                visible = (visible * recent)?;
            }
            let neg = Tensor::new(f32::NEG_INFINITY, device)?
                .to_dtype(scores.dtype())?
                .broadcast_as(scores.shape())?;
            let masked = visible
                .broadcast_as(scores.shape())?
                .where_cond(scores, &neg)?;
            Ok(candle_nn::ops::softmax_last_dim(&masked)?)
        },
    )
}

/// The query-block loop of attention in candle ops, written once for the packed batch's
/// tensor backend and the one-sequence form after a prefix
/// (the layers' `attention_after`): blocks of `block` queries bound the score
/// matrix to `heads × block × keys` however long the input. For the block of queries
/// `qs..qs + qn`, `keys(qs, qn)` gives the keys `(ks, kn)` it can see; the scores
/// `scale · q·kᵀ` (soft-capped to `c · tanh(s / c)`), shaped `[kv_heads, groups, qn, kn]`,
/// go through the caller's masked soft-max `probs(scores, qs, ks)`, then times the values.
/// `q`: `[heads, T, d]`; `k`, `v`: `[kv_heads, Tk, d]`. Returns `[T, heads · d]`.
#[allow(clippy::too_many_arguments)]
pub fn query_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    block: usize,
    scale: f64,
    softcap: Option<f64>,
    keys: impl Fn(usize, usize) -> (usize, usize),
    mut probs: impl FnMut(&Tensor, usize, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let (heads, t, d) = q.dims3()?;
    let kv_heads = k.dim(0)?;
    let groups = heads / kv_heads;
    let mut outs = Vec::with_capacity(t.div_ceil(block));
    let mut qs = 0;
    while qs < t {
        let qn = block.min(t - qs);
        let (ks, kn) = keys(qs, qn);
        // [heads, qn, d] → [kv_heads, groups·qn, d]
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
        let probs = probs(&scores, qs, ks)?;
        let out = probs.reshape((kv_heads, groups * qn, kn))?.matmul(&vb)?;
        // [kv_heads, groups·qn, d] → [heads, qn, d] → [qn, heads·d]
        outs.push(
            out.reshape((heads, qn, d))?
                .transpose(0, 1)?
                .reshape((qn, heads * d))?,
        );
        qs += qn;
    }
    Ok(if outs.len() == 1 {
        outs.pop().expect("one block")
    } else {
        Tensor::cat(&outs, 0)?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One query at a time in f64, token-major inputs.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        heads: usize,
        kv_heads: usize,
        d: usize,
        spans: &[(usize, usize)],
        window: Option<usize>,
        softcap: Option<f64>,
    ) -> Vec<f32> {
        let (qw, kw) = (heads * d, kv_heads * d);
        let total: usize = spans.iter().map(|s| s.1).sum();
        let mut out = vec![0f32; total * qw];
        let scale = 1.0 / (d as f64).sqrt();
        for &(s, n) in spans {
            for h in 0..heads {
                let kh = h / (heads / kv_heads);
                for i in 0..n {
                    let lo = window.map_or(0, |w| (i + 1).saturating_sub(w));
                    let sc: Vec<f64> = (lo..=i)
                        .map(|j| {
                            let x = (0..d)
                                .map(|x| {
                                    q[(s + i) * qw + h * d + x] as f64
                                        * k[(s + j) * kw + kh * d + x] as f64
                                })
                                .sum::<f64>()
                                * scale;
                            softcap.map_or(x, |c| c * (x / c).tanh())
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                    for x in 0..d {
                        let o: f64 = (lo..=i)
                            .map(|j| {
                                (sc[j - lo] - m).exp() / z * v[(s + j) * kw + kh * d + x] as f64
                            })
                            .sum();
                        out[(s + i) * qw + h * d + x] = o as f32;
                    }
                }
            }
        }
        out
    }

    fn check(spans: &[(usize, usize)], window: Option<usize>, softcap: Option<f64>) {
        let (heads, kvh, d) = (6, 2, 8);
        let t: usize = spans.iter().map(|s| s.1).sum();
        // q and k as column ranges of one fused [T, (heads + 2 kv) d] projection
        let fused = crate::test_support::uniform(t * (heads + 2 * kvh) * d, 7);
        let fw = (heads + 2 * kvh) * d;
        let all = Tensor::from_vec(fused.clone(), (t, fw), &Device::Cpu).unwrap();
        let q = all.narrow(1, 0, heads * d).unwrap();
        let k = all.narrow(1, heads * d, kvh * d).unwrap();
        let v = all.narrow(1, (heads + kvh) * d, kvh * d).unwrap();
        let col = |x: &Tensor| {
            x.contiguous()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let want = naive(
            &col(&q),
            &col(&k),
            &col(&v),
            heads,
            kvh,
            d,
            spans,
            window,
            softcap,
        );
        let mask = Mask { spans, window };
        let scale = 1.0 / (d as f64).sqrt();
        for backend in [Backend::Kernel, Backend::Tensor] {
            for order in [Order::TokenMajor, Order::HeadMajor] {
                let hm = |x: &Tensor, n: usize| match order {
                    Order::TokenMajor => x.clone(),
                    Order::HeadMajor => x.reshape((t, n, d)).unwrap().transpose(0, 1).unwrap(),
                };
                let (qq, kk, vv) = (hm(&q, heads), hm(&k, kvh), hm(&v, kvh));
                let got = packed(
                    backend,
                    Heads {
                        x: &qq,
                        order,
                        heads,
                    },
                    Heads {
                        x: &kk,
                        order,
                        heads: kvh,
                    },
                    Heads {
                        x: &vv,
                        order,
                        heads: kvh,
                    },
                    mask,
                    scale,
                    softcap,
                )
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 2e-6,
                    "{backend:?} {order:?} spans {spans:?} window {window:?}: {worst}"
                );
            }
        }
    }

    #[test]
    fn both_backends_match_naive_attention_over_packed_sequences() {
        check(&[(0, 5)], None, None);
        check(&[(0, 300)], None, None);
        check(&[(0, 130), (130, 1), (131, 260), (391, 7)], None, None);
    }

    #[test]
    fn sliding_window_and_softcap() {
        check(&[(0, 300), (300, 40)], Some(37), None);
        check(&[(0, 129), (129, 200)], Some(128), Some(5.0));
        check(&[(0, 50)], None, Some(0.5));
    }
}
