//! Vectorised numeric kernels for the hot loops outside the matmuls: the soft-max
//! statistics over the vocabulary, the attention soft-max, and the gated feed-forward
//! activations.
//!
//! Each is written so that the compiler vectorises it and compiled twice, for the baseline
//! CPU and for AVX2+FMA, picked at run time. Both builds perform the same operations in the
//! same order (Rust never contracts `a * b + c` into an FMA by itself), so results do not
//! depend on the CPU.

/// Lanes of the accumulators: independent partial sums the compiler keeps in registers.
const LANES: usize = 16;

/// `e^x` for `x <= 0` in f32 (Cephes' `expf`: range reduction by `ln 2`, degree-6
/// polynomial; relative error below 2e-7), 0 below `-87`, branch-free so that it
/// vectorises.
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
    // 2^n from n's bits: adding 1.5·2^23 puts the integer n (|n| < 2^22, exact) in the
    // low mantissa bits. The same number as `(n as i32 + 127) << 23`, but `as i32` is a
    // saturating cast that the compiler emitted as scalar code with branches, which kept
    // the whole loop at four lanes
    let bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(bits.wrapping_add(127) << 23);
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

/// `(Σ e, Σ e·a, Σ e·a²)` with `a = v − m`, `e = exp(a)` (`e` in f32, sums in f64), and
/// the number of values strictly above `above` (a target's rank among the row, counted in
/// the same pass).
#[inline(always)]
fn sums_body(row: &[f32], m: f32, above: f32) -> (f64, f64, f64, u32) {
    /// Values per block: the exponentials of a block are computed in f32 first (eight
    /// lanes wide; in one loop with the f64 sums the compiler kept four), then summed.
    const BLOCK: usize = 4 * LANES;
    let mut s = [0f64; LANES];
    let mut s1 = [0f64; LANES];
    let mut s2 = [0f64; LANES];
    let mut c = [0u32; LANES];
    // value `j` of the row always lands in lane `j % LANES`: the sums keep their order
    let mut add = |blk: &[f32], e: &[f32], a: &[f32]| {
        for (j, ((&v, &e), &a)) in blk.iter().zip(e).zip(a).enumerate() {
            let l = j % LANES;
            c[l] += u32::from(v > above);
            let (e, a) = (e as f64, a as f64);
            s[l] += e;
            s1[l] += e * a;
            s2[l] += e * a * a;
        }
    };
    let mut e = [0f32; BLOCK];
    let mut a = [0f32; BLOCK];
    let blocks = row.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    for blk in blocks {
        for j in 0..BLOCK {
            a[j] = blk[j] - m;
            e[j] = exp_neg(a[j]);
        }
        for q in 0..BLOCK / LANES {
            let r = q * LANES..(q + 1) * LANES;
            add(&blk[r.clone()], &e[r.clone()], &a[r]);
        }
    }
    let n = rest.len();
    for j in 0..n {
        a[j] = rest[j] - m;
        e[j] = exp_neg(a[j]);
    }
    add(rest, &e[..n], &a[..n]);
    (
        s.iter().sum(),
        s1.iter().sum(),
        s2.iter().sum(),
        c.iter().sum(),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn max_avx2(row: &[f32]) -> f32 {
    max_body(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sums_avx2(row: &[f32], m: f32, above: f32) -> (f64, f64, f64, u32) {
    sums_body(row, m, above)
}

/// Soft-max of `row` in place: `exp(v − max) / Σ exp(v − max)`, the sum in f64.
#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let m = max_body(row);
    // two passes: the exponentials in f32 alone (eight lanes wide; mixed with the f64 sums
    // in one loop the compiler kept four), then their sum in f64 in `LANES` partial sums,
    // value `i` into lane `i % LANES` (the order the sum always had)
    for v in row.iter_mut() {
        *v = exp_neg(*v - m);
    }
    let mut s = [0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            s[i] += c[i] as f64;
        }
    }
    for (i, &e) in rest.iter().enumerate() {
        s[i] += e as f64;
    }
    let inv = (1.0 / s.iter().sum::<f64>()) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_avx2(row: &mut [f32]) {
    softmax_body(row)
}

/// (std caches the CPU detection, so this is a load and a test.)
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The largest value (NaNs ignored; `-inf` for an empty row).
pub fn max(row: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        return unsafe { max_avx2(row) };
    }
    max_body(row)
}

/// See [`sums_body`]; every value of `row` must be `<= m`.
pub fn sums(row: &[f32], m: f32, above: f32) -> (f64, f64, f64, u32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        return unsafe { sums_avx2(row, m, above) };
    }
    sums_body(row, m, above)
}

/// Soft-max of `row` in place (max-subtracted; the row must hold a finite value).
pub fn softmax(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        return unsafe { softmax_avx2(row) };
    }
    softmax_body(row)
}

/// `silu(g) · u`, `silu(g) = g / (1 + e^−g)`, with `e^−|g|` from [`exp_neg`] (so it never
/// overflows): for `g < 0`, `g / (1 + e^{|g|}) = g·e^{−|g|} / (1 + e^{−|g|})`.
#[inline(always)]
fn silu_mul_body(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        let e = exp_neg(-g.abs());
        let num = if g < 0.0 { g * e } else { g };
        *o = num / (1.0 + e) * u;
    }
}

/// `gelu(g) · u` with GELU's tanh approximation,
/// `0.5 g (1 + tanh(√(2/π) (g + 0.044715 g³)))`, and `tanh z = sign(z) (1 − e) / (1 + e)`,
/// `e = e^{−2|z|}`.
#[inline(always)]
fn gelu_mul_body(g: &[f32], u: &[f32], out: &mut [f32]) {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        let z = SQRT_TWO_OVER_PI * g * (1.0 + 0.044715 * g * g);
        let e = exp_neg(-2.0 * z.abs());
        let t = (1.0 - e) / (1.0 + e);
        let t = if z < 0.0 { -t } else { t };
        *o = 0.5 * g * (1.0 + t) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_avx2(g: &[f32], u: &[f32], out: &mut [f32]) {
    silu_mul_body(g, u, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_mul_avx2(g: &[f32], u: &[f32], out: &mut [f32]) {
    gelu_mul_body(g, u, out)
}

/// `out = silu(g) · u` element-wise (the three slices have one length).
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        return unsafe { silu_mul_avx2(g, u, out) };
    }
    silu_mul_body(g, u, out)
}

/// `out = gelu_tanh(g) · u` element-wise (the three slices have one length).
pub fn gelu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        return unsafe { gelu_mul_avx2(g, u, out) };
    }
    gelu_mul_body(g, u, out)
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
        assert_eq!(sums(&row, m, 0.5), sums_body(&row, m, 0.5));
        let above = row.iter().filter(|&&v| v > 0.5).count() as u32;
        assert_eq!(sums(&row, m, 0.5).3, above);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[1.0, f32::NAN, 3.0]), 3.0);
        let mut a = row.clone();
        let mut b = row.clone();
        softmax(&mut a);
        softmax_body(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn softmax_matches_f64() {
        let row: Vec<f32> = (0..37)
            .map(|i| ((i * 31) % 37) as f32 / 3.0 - 6.0)
            .collect();
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        let mut got = row.clone();
        softmax(&mut got);
        for (g, &v) in got.iter().zip(&row) {
            let want = (v as f64 - m).exp() / z;
            assert!((*g as f64 - want).abs() < 1e-7, "{g} vs {want}");
        }
        let mut one = [5.0f32];
        softmax(&mut one);
        assert_eq!(one, [1.0]);
    }

    #[test]
    fn gated_activations_match_f64() {
        let g: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) / 37.0).collect();
        let u: Vec<f32> = (0..2001).map(|i| 1.0 + (i % 7) as f32 / 3.0).collect();
        let mut a = vec![0f32; g.len()];
        let mut b = vec![0f32; g.len()];
        silu_mul(&g, &u, &mut a);
        gelu_mul(&g, &u, &mut b);
        for i in 0..g.len() {
            let (x, y) = (g[i] as f64, u[i] as f64);
            let silu = x / (1.0 + (-x).exp()) * y;
            let z = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            let gelu = 0.5 * x * (1.0 + z.tanh()) * y;
            assert!(
                (a[i] as f64 - silu).abs() <= 1e-6 * (1.0 + silu.abs()),
                "silu({x})"
            );
            assert!(
                (b[i] as f64 - gelu).abs() <= 1e-6 * (1.0 + gelu.abs()),
                "gelu({x})"
            );
        }
        let mut c = vec![0f32; g.len()];
        silu_mul_body(&g, &u, &mut c);
        assert_eq!(a, c, "dispatched and baseline builds agree");
        gelu_mul_body(&g, &u, &mut c);
        assert_eq!(b, c, "dispatched and baseline builds agree");
    }
}
