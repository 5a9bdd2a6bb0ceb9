//! `x · wᵀ` on GGUF weights as stored, with the activations quantised to 8 bits per block of
//! 32 (`--compute fast`): the integer dot products llama.cpp's `ggml-cpu` uses, in place of
//! expanding every weight to f32 and running an f32 GEMM.
//!
//! Every supported block type is read as 32-element blocks whose elements are
//! `w = a_h · u + b_h` with `u` a small unsigned integer (4, 5 or 6 bits) and `a_h`, `b_h`
//! the scale and offset of the block's half `h` (16 elements: Q6_K's sub-blocks are 16
//! long); Q8_0's signed bytes are `w = a · u` with `u` signed. An activation half block is
//! `x ≈ dx_h · qx` with `qx` in `[-127, 127]` (round to nearest, `dx_h = max|x| / 127` over
//! its 16 elements: half llama.cpp's 32, for half its rounding error at no cost, since
//! the weights' scales are applied per half anyway), so
//!
//! `Σ w·x ≈ Σ_h a_h dx_h Σ_{i∈h} u_i qx_i + Σ_h b_h dx_h Σ_{i∈h} qx_i`,
//!
//! the first sum an integer dot product (AVX2 `vpmaddubsw`: u8 × i8 pairs; no overflow as
//! `2 · 63 · 127 < 2¹⁵`; Q8_0's signed weights go through the sign trick, `|w| · sign(qx, w)`,
//! `2 · 127 · 127 < 2¹⁵`) and the second one float per half of precomputed sums. The only
//! approximation is the rounding of the activations (≤ `dx / 2` per element); the weights'
//! values are exactly the exact mode's.
//!
//! Work is split over tasks of [`TASK_ROWS`] weight rows: a task's blocks are unpacked once
//! per call into the form above and reused for every position, in tiles of [`TOKENS`]
//! positions and chunks of [`K_CHUNK`] elements, so a task's unpacked rows and a tile's
//! activations stay in the L2 cache together; the micro-kernel takes [`ROWS`] rows at once.

use crate::error::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;
use rayon::prelude::*;

/// Weight rows per micro-kernel call (one output quad per position).
const ROWS: usize = 4;
/// Weight rows per task: unpacked once, then reused for every position.
const TASK_ROWS: usize = 64;
/// Positions per tile: a tile's activations stay in the L2 cache while every row of the
/// task passes over them.
const TOKENS: usize = 32;
/// Elements of the reduction dimension per pass: a task's unpacked rows (2 bytes per
/// element) and a tile's activations (2 bytes per element) fit the L2 cache together.
const K_CHUNK: usize = 1024;

/// Whether [`matmul_t`] multiplies this block type as stored.
pub fn supported(dt: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(dt, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q6K)
}

/// Activations `[T, k]` quantised per half block of 16: values, scales and sums.
pub struct QuantizedActs {
    t: usize,
    k: usize,
    q: Vec<i8>,
    /// `dx` per half block of 16, as the 8 lane scales of a block
    /// (`[dx_0 ×4, dx_1 ×4]`, `T · k/4`).
    d: Vec<f32>,
    /// `dx_h · Σ_{i∈h} qx_i` per half block (`T · k/16`).
    dsum: Vec<f32>,
}

impl QuantizedActs {
    /// Quantises `t` rows of `k` (`k` a multiple of 32), row `i` at `x[i · stride..][..k]`.
    pub fn new(x: &[f32], stride: usize, t: usize, k: usize) -> QuantizedActs {
        debug_assert!(k.is_multiple_of(32) && (t == 0 || x.len() >= (t - 1) * stride + k));
        let mut q = vec![0i8; t * k];
        let mut d = vec![0f32; t * k / 4];
        let mut dsum = vec![0f32; t * k / 16];
        q.par_chunks_mut(k)
            .zip(d.par_chunks_mut(k / 4))
            .zip(dsum.par_chunks_mut(k / 16))
            .enumerate()
            .for_each(|(i, ((q, d), s))| {
                let x = &x[i * stride..i * stride + k];
                for (h, xh) in x.chunks_exact(16).enumerate() {
                    let amax = xh.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let dh = amax / 127.0;
                    let inv = if dh > 0.0 { 1.0 / dh } else { 0.0 };
                    let mut sum = 0i32;
                    for (i, v) in xh.iter().enumerate() {
                        let qi = (v * inv).round().clamp(-127.0, 127.0) as i8;
                        q[16 * h + i] = qi;
                        sum += qi as i32;
                    }
                    d[4 * h..4 * h + 4].fill(dh);
                    s[h] = dh * sum as f32;
                }
            });
        QuantizedActs { t, k, q, d, dsum }
    }
}

/// Weight rows unpacked to `a_h · u + b_h` form.
struct Unpacked {
    /// `u` per element (for Q8_0, `|w|`), row-major `[ROWS, k]`.
    u: Vec<u8>,
    /// For Q8_0, the signs (the weights as i8) used to sign the activations.
    signed: Option<Vec<i8>>,
    /// Per block, the 8 lane scales `[a_0 ×4, a_1 ×4]` (lane `l` of the integer dot sums
    /// elements `4l..4l+3`), `[ROWS, k/32, 8]`.
    a: Vec<f32>,
    /// `b_h` per half, `[ROWS, k/16]`.
    b: Vec<f32>,
}

#[inline(always)]
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Unpacks one row's blocks (`bytes`) into row `r` of `out`; `k` elements.
fn unpack_row(dt: GgmlDType, bytes: &[u8], k: usize, r: usize, out: &mut Unpacked) {
    let u = &mut out.u[r * k..(r + 1) * k];
    let a = &mut out.a[r * k / 4..(r + 1) * k / 4];
    let bb = &mut out.b[r * k / 16..(r + 1) * k / 16];
    // block `blk`'s halves: scale, offset
    let mut set = |blk: usize, h: usize, scale: f32, offset: f32| {
        a[8 * blk + 4 * h..8 * blk + 4 * h + 4].fill(scale);
        bb[2 * blk + h] = offset;
    };
    match dt {
        GgmlDType::Q4_0 | GgmlDType::Q4_1 => {
            let size = if dt == GgmlDType::Q4_0 { 18 } else { 20 };
            for (blk, b) in bytes.chunks_exact(size).enumerate() {
                let d = half_at(b, 0);
                let m = if dt == GgmlDType::Q4_0 {
                    -8.0 * d
                } else {
                    half_at(b, 2)
                };
                let qs = &b[size - 16..size];
                for j in 0..16 {
                    u[32 * blk + j] = qs[j] & 0x0F;
                    u[32 * blk + j + 16] = qs[j] >> 4;
                }
                set(blk, 0, d, m);
                set(blk, 1, d, m);
            }
        }
        GgmlDType::Q5_0 | GgmlDType::Q5_1 => {
            let size = if dt == GgmlDType::Q5_0 { 22 } else { 24 };
            for (blk, b) in bytes.chunks_exact(size).enumerate() {
                let d = half_at(b, 0);
                let (m, h0) = if dt == GgmlDType::Q5_0 {
                    (-16.0 * d, 2)
                } else {
                    (half_at(b, 2), 4)
                };
                let qh = u32::from_le_bytes([b[h0], b[h0 + 1], b[h0 + 2], b[h0 + 3]]);
                let qs = &b[size - 16..size];
                for j in 0..16 {
                    let hi0 = (((qh >> j) << 4) & 0x10) as u8;
                    let hi1 = ((qh >> (j + 12)) & 0x10) as u8;
                    u[32 * blk + j] = (qs[j] & 0x0F) | hi0;
                    u[32 * blk + j + 16] = (qs[j] >> 4) | hi1;
                }
                set(blk, 0, d, m);
                set(blk, 1, d, m);
            }
        }
        GgmlDType::Q8_0 => {
            let signs = out.signed.as_mut().expect("Q8_0 keeps signs");
            let s = &mut signs[r * k..(r + 1) * k];
            for (blk, b) in bytes.chunks_exact(34).enumerate() {
                let d = half_at(b, 0);
                for j in 0..32 {
                    let w = b[2 + j] as i8;
                    s[32 * blk + j] = w;
                    u[32 * blk + j] = w.unsigned_abs();
                }
                set(blk, 0, d, 0.0);
                set(blk, 1, d, 0.0);
            }
        }
        GgmlDType::Q4K => {
            for (sb, b) in bytes.chunks_exact(144).enumerate() {
                let (d, min) = (half_at(b, 0), half_at(b, 2));
                let scales: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
                for g in 0..4 {
                    let q = &b[16 + 32 * g..48 + 32 * g];
                    for (s, shift) in [(2 * g, 0), (2 * g + 1, 4)] {
                        let blk = 8 * sb + s;
                        let (sc, m) = crate::kernels::dequant::scale_min_k4(s, scales);
                        for l in 0..32 {
                            u[32 * blk + l] = (q[l] >> shift) & 0x0F;
                        }
                        let (a1, b1) = (d * sc as f32, -(min * m as f32));
                        set(blk, 0, a1, b1);
                        set(blk, 1, a1, b1);
                    }
                }
            }
        }
        GgmlDType::Q6K => {
            for (sb, b) in bytes.chunks_exact(210).enumerate() {
                let d = half_at(b, 208);
                for n in 0..2 {
                    let ql = &b[64 * n..64 * n + 64];
                    let qh = &b[128 + 32 * n..160 + 32 * n];
                    let base = 256 * sb + 128 * n;
                    for l in 0..32 {
                        u[base + l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                        u[base + l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                        u[base + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                        u[base + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                    }
                    // element e of these 128 has scale byte e / 16
                    for e16 in 0..8 {
                        let sc = d * b[192 + 8 * n + e16] as i8 as f32;
                        let blk = (base + 16 * e16) / 32;
                        set(blk, e16 % 2, sc, -32.0 * sc);
                    }
                }
            }
        }
        _ => unreachable!("checked by supported()"),
    }
}

/// `x` `[T, k]` (f32, CPU) times the transpose of the quantised `w` `[n, k]` → `[T, n]`;
/// `None` when the form does not fit this path (another device or block type, `k` not a
/// whole number of blocks), for the caller's exact path.
pub fn matmul_t(x: &Tensor, w: &QTensor) -> Result<Option<Tensor>> {
    let dt = w.dtype();
    let (n, k) = w.shape().dims2()?;
    if !supported(dt)
        || !x.device().is_cpu()
        || !w.device().is_cpu()
        || x.rank() != 2
        || x.dtype() != candle_core::DType::F32
        || x.dim(1)? != k
        || !k.is_multiple_of(dt.block_size())
        || !k.is_multiple_of(32)
    {
        return Ok(None);
    }
    let t = x.dim(0)?;
    // the activations where they lie (a copy only if their columns are strided)
    let x = x.contiguous()?;
    let rows = crate::kernels::rows::cpu_rows(&x)?;
    let acts = QuantizedActs::new(&rows.data()[rows.offset..], rows.row_stride, t, k);
    let data = w.data()?;
    let row_bytes = k / dt.block_size() * dt.type_size();
    if data.len() != n * row_bytes {
        return Ok(None);
    }
    let out = matmul_rows(dt, &data, n, k, &acts)?;
    Ok(Some(Tensor::from_vec(out, (t, n), &Device::Cpu)?))
}

impl Unpacked {
    fn new(dt: GgmlDType, k: usize) -> Unpacked {
        Unpacked {
            u: vec![0; TASK_ROWS * k],
            signed: (dt == GgmlDType::Q8_0).then(|| vec![0; TASK_ROWS * k]),
            a: vec![0.0; TASK_ROWS * k / 4],
            b: vec![0.0; TASK_ROWS * k / 16],
        }
    }
}

/// The product over raw blocks: `data` holds `n` rows of `k` elements of type `dt`.
pub fn matmul_rows(
    dt: GgmlDType,
    data: &[u8],
    n: usize,
    k: usize,
    acts: &QuantizedActs,
) -> Result<Vec<f32>> {
    debug_assert_eq!(acts.k, k);
    let t = acts.t;
    let row_bytes = k / dt.block_size() * dt.type_size();
    let level = level();
    // The offsets' term, Σ_h b_h · dx_h Σ qx, of every position and row at once: an f32
    // product of [T, k/16] and [n, k/16] (1/16 of the work), through the f32 GEMM.
    let mut b = vec![0f32; n * k / 16];
    b.par_chunks_mut(k / 16).enumerate().for_each_init(
        || Unpacked::new(dt, k),
        |un, (r, br)| {
            unpack_row(dt, &data[r * row_bytes..(r + 1) * row_bytes], k, 0, un);
            br.copy_from_slice(&un.b[..k / 16]);
        },
    );
    let ds = Tensor::from_slice(&acts.dsum, (t, k / 16), &Device::Cpu)?;
    let b = Tensor::from_vec(b, (n, k / 16), &Device::Cpu)?;
    let mut out: Vec<f32> = crate::kernels::matmul::matmul_t(&ds, &b)?
        .flatten_all()?
        .to_vec1()?;
    let dst = out.as_mut_ptr() as usize;
    (0..n.div_ceil(TASK_ROWS)).into_par_iter().for_each_init(
        || Unpacked::new(dt, k),
        |un, task| {
            let r0 = task * TASK_ROWS;
            let rows = TASK_ROWS.min(n - r0);
            for r in 0..rows {
                let bytes = &data[(r0 + r) * row_bytes..(r0 + r + 1) * row_bytes];
                unpack_row(dt, bytes, k, r, un);
            }
            let mut k0 = 0;
            while k0 < k {
                let kc = K_CHUNK.min(k - k0);
                let mut t0 = 0;
                while t0 < t {
                    let t1 = (t0 + TOKENS).min(t);
                    let mut g = 0;
                    while g < rows {
                        #[cfg(target_arch = "x86_64")]
                        if level == Level::Avx2 && g + ROWS <= rows {
                            let at = avx2::At {
                                row: g,
                                k,
                                k0,
                                kc,
                                t0,
                                t1,
                                n,
                                col: r0 + g,
                            };
                            // SAFETY: AVX2 and FMA are present (Level::Avx2); rows g..g + 4
                            // of the task are unpacked (k elements, k/4 lane scales each),
                            // k0 + kc <= k, t1 <= t; this task alone writes columns
                            // r0..r0 + rows of `out` (t · n floats).
                            unsafe {
                                if un.signed.is_some() {
                                    avx2::group::<true>(un, acts, at, dst as *mut f32)
                                } else {
                                    avx2::group::<false>(un, acts, at, dst as *mut f32)
                                }
                            }
                            g += ROWS;
                            continue;
                        }
                        for tt in t0..t1 {
                            let v = dot(un, g, k, tt, acts, k0, kc);
                            // SAFETY: as above, column r0 + g of row tt.
                            unsafe { *(dst as *mut f32).add(tt * n + r0 + g) += v };
                        }
                        g += 1;
                    }
                    t0 = t1;
                }
                k0 += kc;
            }
        },
    );
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Avx2,
    Baseline,
}

fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::kernels::simd::simd() != crate::kernels::simd::Simd::Baseline {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Row `r` of the unpacked group against position `tt`, elements `k0..k0 + kc`: the
/// integer part (the offsets' term is added by the caller).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dot(
    un: &Unpacked,
    r: usize,
    k: usize,
    tt: usize,
    acts: &QuantizedActs,
    k0: usize,
    kc: usize,
) -> f32 {
    let u = &un.u[r * k + k0..r * k + k0 + kc];
    let s = un.signed.as_ref().map(|s| &s[r * k + k0..r * k + k0 + kc]);
    let a = &un.a[(r * k + k0) / 4..(r * k + k0 + kc) / 4];
    let q = &acts.q[tt * k + k0..tt * k + k0 + kc];
    let d = &acts.d[(tt * k + k0) / 4..(tt * k + k0 + kc) / 4];
    dot_baseline(u, s, a, q, d)
}

/// `Σ a·b` with eight independent sums.
#[cfg(test)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The integer dot products in portable code (the same sums as the AVX2 kernel, summed in
/// another order).
fn dot_baseline(u: &[u8], s: Option<&[i8]>, a: &[f32], q: &[i8], d: &[f32]) -> f32 {
    let mut acc = 0f32;
    for blk in 0..d.len() / 8 {
        let mut lanes = [0i32; 8];
        for i in 0..32 {
            let e = 32 * blk + i;
            let qi = match s {
                Some(s) if s[e] < 0 => -(q[e] as i32),
                _ => q[e] as i32,
            };
            lanes[i / 4] += u[e] as i32 * qi;
        }
        for (l, v) in lanes.iter().enumerate() {
            acc += *v as f32 * a[8 * blk + l] * d[8 * blk + l];
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QuantizedActs, Unpacked};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(acc: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(acc, 1);
        let lo = _mm256_castps256_ps128(acc);
        let x = _mm_add_ps(hi, lo);
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
        _mm_cvtss_f32(x)
    }

    /// Where a call works: rows `row..row + 4` of the task's unpacked rows, elements
    /// `k0..k0 + kc` of `k`, positions `t0..t1`, output columns `col..col + 4` of `n`.
    #[derive(Clone, Copy)]
    pub struct At {
        pub row: usize,
        pub k: usize,
        pub k0: usize,
        pub kc: usize,
        pub t0: usize,
        pub t1: usize,
        pub n: usize,
        pub col: usize,
    }

    /// Four unpacked rows against positions `t0..t1`, added to `out` (`[t, n]`): each
    /// activation block is loaded once for four independent accumulations. `SIGNED`:
    /// Q8_0's signs applied to the activations.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn group<const SIGNED: bool>(
        un: &Unpacked,
        acts: &QuantizedActs,
        at: At,
        out: *mut f32,
    ) {
        let At {
            row,
            k,
            k0,
            kc,
            t0,
            t1,
            n,
            col,
        } = at;
        let ones = _mm256_set1_epi16(1);
        let u = un.u.as_ptr().add(row * k + k0);
        let s = un
            .signed
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr().add(row * k + k0));
        let a = un.a.as_ptr().add((row * k + k0) / 4);
        let (u1, u2, u3) = (u.add(k), u.add(2 * k), u.add(3 * k));
        let (a1, a2, a3) = (a.add(k / 4), a.add(k / 2), a.add(3 * k / 4));
        let blocks = kc / 32;
        for tt in t0..t1 {
            let q = acts.q.as_ptr().add(tt * k + k0);
            let d = acts.d.as_ptr().add((tt * k + k0) / 4);
            let (mut c0, mut c1, mut c2, mut c3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            for blk in 0..blocks {
                let o = 32 * blk;
                let qv = _mm256_loadu_si256(q.add(o) as *const __m256i);
                let dx = _mm256_loadu_ps(d.add(8 * blk));
                let step = |acc: __m256, ur: *const u8, ar: *const f32, i: usize| {
                    let uv = _mm256_loadu_si256(ur.add(o) as *const __m256i);
                    let qs = if SIGNED {
                        let sv = _mm256_loadu_si256(s.add(i * k + o) as *const __m256i);
                        _mm256_sign_epi8(qv, sv)
                    } else {
                        qv
                    };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(uv, qs), ones);
                    let scale = _mm256_mul_ps(_mm256_loadu_ps(ar.add(8 * blk)), dx);
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc)
                };
                c0 = step(c0, u, a, 0);
                c1 = step(c1, u1, a1, 1);
                c2 = step(c2, u2, a2, 2);
                c3 = step(c3, u3, a3, 3);
            }
            let o = out.add(tt * n + col);
            *o += hsum(c0);
            *o.add(1) += hsum(c1);
            *o.add(2) += hsum(c2);
            *o.add(3) += hsum(c3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;
    use candle_core::quantized::QTensor;

    /// Every block type against the exact product of the same stored weights: the
    /// deviation is the activations' rounding alone, well under 1% of the product's scale;
    /// the AVX2 kernel and the portable one agree to float rounding.
    #[test]
    fn each_block_type_matches_the_expanded_product_within_the_activation_rounding() {
        let (t, n, k) = (5, 9, 512);
        let x = Tensor::from_vec(uniform(t * k, 1), (t, k), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(uniform(n * k, 2), (n, k), &Device::Cpu).unwrap();
        use GgmlDType::*;
        for dt in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4K, Q6K] {
            let q = QTensor::quantize(&w, dt).unwrap();
            let exact = x
                .matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
                .unwrap();
            let fast = matmul_t(&x, &q).unwrap().expect("supported");
            let e: Vec<f32> = exact.flatten_all().unwrap().to_vec1().unwrap();
            let f: Vec<f32> = fast.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(e.len(), f.len());
            let scale = e.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = e.iter().zip(&f).fold(0f32, |m, (a, b)| {
                assert!(b.is_finite(), "{dt:?}");
                m.max((a - b).abs())
            });
            assert!(worst < 0.01 * scale, "{dt:?}: {worst} vs scale {scale}");
            // a weight misread (a nibble, a scale) moves entries by far more than this
            assert!(
                worst > 0.0,
                "{dt:?}: bit-equal to f32 is not possible with int8 activations"
            );
            // the portable kernel: same integer sums
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let acts = QuantizedActs::new(&xs, k, t, k);
            let data = q.data().unwrap();
            let base = {
                let row_bytes = k / dt.block_size() * dt.type_size();
                let mut un = Unpacked::new(dt, k);
                unpack_row(dt, &data[..row_bytes], k, 0, &mut un);
                dot(&un, 0, k, 0, &acts, 0, k) + dot_f32(&un.b[..k / 16], &acts.dsum[..k / 16])
            };
            assert!(
                (base - f[0]).abs() <= 1e-4 * scale,
                "{dt:?}: {base} vs {}",
                f[0]
            );
        }
    }
}
