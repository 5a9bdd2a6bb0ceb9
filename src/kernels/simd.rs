//! Vectorised numeric kernels for the hot loops outside the matmuls: the soft-max
//! statistics over the vocabulary, the attention soft-max, the gated feed-forward
//! activations and the RMS norms (with the residual addition before them).
//!
//! Each is written so that the compiler vectorises it and compiled three times, for the
//! baseline CPU, for AVX2+FMA and for AVX-512, picked at run time. Both builds perform the same operations in the
//! same order (Rust never contracts `a * b + c` into an FMA by itself), so results do not
//! depend on the CPU.

use std::mem::MaybeUninit;

/// `dst = src`, every element written (the lengths must match): `write_copy_of_slice`,
/// stable only since Rust 1.93, above this crate's minimum of 1.89.
pub fn write_slice(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

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
    // fused multiply-adds: half the instructions of the polynomial, one rounding per
    // step instead of two (every build computes the same fused operations: the baseline
    // one through libm's `fmaf`, so the copies still agree bit for bit)
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
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

/// The max keeps `4 · LANES` running maxima: with one vector of them (16 lanes under
/// AVX-512) every step waited on the previous one's compare-and-blend, and the max pass
/// cost 60% as much as the exponentials and sums after it. (A max is the same number in
/// any order.)
#[inline(always)]
fn max_body(row: &[f32]) -> f32 {
    const WIDE: usize = 4 * LANES;
    let mut m = [f32::NEG_INFINITY; WIDE];
    let chunks = row.chunks_exact(WIDE);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..WIDE {
            m[i] = m[i].max(c[i]);
        }
    }
    // the remainder padded with −∞ goes through the same vector step: attention's rows
    // are a few hundred keys long, and their remainder one scalar max at a time (each with
    // its NaN check) was a quarter of the soft-max's samples (`perf`, SmolLM2)
    let mut tail = [f32::NEG_INFINITY; WIDE];
    tail[..rest.len()].copy_from_slice(rest);
    for i in 0..WIDE {
        m[i] = m[i].max(tail[i]);
    }
    // halving the maxima vector-wide down to one vector's worth, then one by one
    let mut w = WIDE / 2;
    while w >= LANES {
        for i in 0..w {
            m[i] = m[i].max(m[i + w]);
        }
        w /= 2;
    }
    m[..LANES].iter().copied().fold(f32::NEG_INFINITY, f32::max)
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

/// Soft-max of `row` in place: `exp(v − max) / Σ exp(v − max)`, the sum in f64.
#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let m = max_body(row);
    // two passes: the exponentials in f32 alone (eight lanes wide; mixed with the f64 sums
    // in one loop the compiler kept four), then their sum in f64 in `LANES` partial sums,
    // value `i` into lane `i % LANES` (the order the sum always had)
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for v in c.iter_mut() {
            *v = exp_neg(*v - m);
        }
    }
    // the remainder as one more vector, padded with −∞ (whose exponential is 0, which
    // leaves every partial sum as it was): one scalar exponential at a time it cost as much
    // as the vector loop on rows of a few hundred keys
    let rest = chunks.into_remainder();
    let mut tail = [f32::NEG_INFINITY; LANES];
    tail[..rest.len()].copy_from_slice(rest);
    for v in tail.iter_mut() {
        *v = exp_neg(*v - m);
    }
    rest.copy_from_slice(&tail[..rest.len()]);
    let mut s = [0f64; LANES];
    for c in row.chunks_exact(LANES) {
        for i in 0..LANES {
            s[i] += c[i] as f64;
        }
    }
    for i in 0..LANES {
        s[i] += tail[i] as f64;
    }
    let inv = (1.0 / s.iter().sum::<f64>()) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `silu(g) · u`, `silu(g) = g / (1 + e^−g)`, with `e^−|g|` from [`exp_neg`] (so it never
/// overflows): for `g < 0`, `g / (1 + e^{|g|}) = g·e^{−|g|} / (1 + e^{−|g|})`.
#[inline(always)]
fn silu_mul_body(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) {
    assert!(g.len() == out.len() && u.len() == out.len());
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        let e = exp_neg(-g.abs());
        let num = if g < 0.0 { g * e } else { g };
        o.write(num / (1.0 + e) * u);
    }
}

/// `gelu(g) · u` with GELU's tanh approximation,
/// `0.5 g (1 + tanh(√(2/π) (g + 0.044715 g³)))`, and `tanh z = sign(z) (1 − e) / (1 + e)`,
/// `e = e^{−2|z|}`.
#[inline(always)]
fn gelu_mul_body(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) {
    assert!(g.len() == out.len() && u.len() == out.len());
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        let z = SQRT_TWO_OVER_PI * g * (1.0 + 0.044715 * g * g);
        let e = exp_neg(-2.0 * z.abs());
        let t = (1.0 - e) / (1.0 + e);
        let t = if z < 0.0 { -t } else { t };
        o.write(0.5 * g * (1.0 + t) * u);
    }
}

/// `out = x / sqrt(mean(x²) + eps) · w` (RMS norm of one row), the sum of squares in
/// `LANES` f32 partial sums added in a fixed order.
#[inline(always)]
fn rms_norm_body(x: &[f32], w: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
    assert!(w.len() == x.len() && out.len() == x.len());
    let mut ss = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            ss[i] += c[i] * c[i];
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        ss[i] += v * v;
    }
    let m = (ss.iter().sum::<f32>() / x.len() as f32 + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        o.write(v / m * w);
    }
}

/// `sum = x + a`, then `out` = the RMS norm of `sum` ([`rms_norm_body`]): a residual addition
/// and the norm after it in one pass over the row, the sum still in L1 when it is normed.
#[inline(always)]
fn add_rms_norm_body(
    x: &[f32],
    a: &[f32],
    w: &[f32],
    eps: f32,
    sum: &mut [MaybeUninit<f32>],
    out: &mut [MaybeUninit<f32>],
) {
    assert!(a.len() == x.len() && sum.len() == x.len());
    for ((s, &x), &a) in sum.iter_mut().zip(x).zip(a) {
        s.write(x + a);
    }
    // SAFETY: every element of `sum` was written just above (its length is x's and a's,
    // asserted), and MaybeUninit<f32> has f32's layout.
    let sum = unsafe { &*(sum as *const [MaybeUninit<f32>] as *const [f32]) };
    rms_norm_body(sum, w, eps, out)
}

/// Defines `pub fn $name`, which runs one of three copies of `$body` picked at run time:
/// compiled for AVX-512 (16 f32 / 8 f64 lanes per instruction; Zen 4/5, Xeons), for
/// AVX2+FMA, or for the baseline. Every copy performs the same operations in the same order
/// (each lane of the `LANES` accumulators adds the same values in the same sequence, and Rust
/// never fuses `a * b + c`), so the results are bit-identical whichever runs.
macro_rules! dispatched {
    ($(#[$doc:meta])* pub fn $name:ident / $with:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?
        = $body:ident;) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            return $with($crate::kernels::simd::simd(), $($arg),*);
            #[allow(unreachable_code)]
            $body($($arg),*)
        }

        /// The copy built for `simd` (which the CPU must have; [`simd`] tells).
        #[cfg(target_arch = "x86_64")]
        fn $with(simd: $crate::kernels::simd::Simd, $($arg: $ty),*) $(-> $ret)? {
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
            fn wide($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn narrow($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            match simd {
                // SAFETY: `simd` came from `simd()`, which checked the CPU for the features.
                $crate::kernels::simd::Simd::Avx512 => unsafe { wide($($arg),*) },
                // SAFETY: as above.
                $crate::kernels::simd::Simd::Avx2 => unsafe { narrow($($arg),*) },
                $crate::kernels::simd::Simd::Baseline => $body($($arg),*),
            }
        }
    };
}
/// For other modules' kernels (the block expansions of `kernels::dequant`).
pub(crate) use dispatched;

/// The widest vector extension the kernels use on this CPU.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    Avx512,
    Avx2,
    Baseline,
}

/// The CPU's level, detected once. `MIASCAN_SIMD=avx2` or `baseline` caps it, to compare
/// the builds on one machine.
#[cfg(target_arch = "x86_64")]
pub(crate) fn simd() -> Simd {
    use std::arch::is_x86_feature_detected as has;
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("MIASCAN_SIMD");
        let avx2 = has!("avx2") && has!("fma") && cap.as_deref() != Ok("baseline");
        let avx512 = avx2
            && has!("avx512f")
            && has!("avx512vl")
            && has!("avx512dq")
            && has!("avx512bw")
            && cap.as_deref() != Ok("avx2");
        match (avx512, avx2) {
            (true, _) => Simd::Avx512,
            (false, true) => Simd::Avx2,
            _ => Simd::Baseline,
        }
    })
}

dispatched! {
    /// The largest value (NaNs ignored; `-inf` for an empty row).
    pub fn max / max_with(row: &[f32]) -> f32 = max_body;
}

dispatched! {
    /// See [`sums_body`]; every value of `row` must be `<= m`.
    pub fn sums / sums_with(row: &[f32], m: f32, above: f32) -> (f64, f64, f64, u32) = sums_body;
}

dispatched! {
    /// Soft-max of `row` in place (max-subtracted; the row must hold a finite value).
    pub fn softmax / softmax_with(row: &mut [f32]) = softmax_body;
}

dispatched! {
    /// `out` = RMS norm of the row `x` with weights `w` (all one length).
    pub fn rms_norm / rms_norm_with(x: &[f32], w: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) = rms_norm_body;
}

dispatched! {
    /// `sum = x + a` and `out` = its RMS norm (all one length), in one pass.
    pub fn add_rms_norm / add_rms_norm_with(
        x: &[f32], a: &[f32], w: &[f32], eps: f32, sum: &mut [MaybeUninit<f32>], out: &mut [MaybeUninit<f32>]
    ) = add_rms_norm_body;
}

dispatched! {
    /// `out = silu(g) · u` element-wise (the three slices have one length).
    pub fn silu_mul / silu_mul_with(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) = silu_mul_body;
}

dispatched! {
    /// `out = gelu_tanh(g) · u` element-wise (the three slices have one length).
    pub fn gelu_mul / gelu_mul_with(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) = gelu_mul_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x` as output space for the kernels, which write only initialised floats into it.
    fn space(x: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: MaybeUninit<f32> has f32's layout, and nothing uninitialised is written.
        unsafe { &mut *(x as *mut [f32] as *mut [MaybeUninit<f32>]) }
    }

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

    /// The padded remainders change nothing: on every length up to a few vectors, the max
    /// is the scalar fold's (NaNs ignored the same way) and the soft-max matches f64.
    #[test]
    fn max_and_softmax_on_every_short_length() {
        for len in 0..=200usize {
            let mut row: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 + len) % 211) as f32 / 9.0 - 11.0)
                .collect();
            if len > 3 {
                row[len / 2] = f32::NAN;
            }
            let want = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&row).to_bits(), want.to_bits(), "max, {len}");
            row.retain(|v| !v.is_nan());
            if row.is_empty() {
                continue;
            }
            let m = row
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
            let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            let mut got = row.clone();
            softmax(&mut got);
            for (&g, &v) in got.iter().zip(&row) {
                let p = (v as f64 - m).exp() / z;
                assert!((g as f64 - p).abs() < 1e-6 * p.max(1e-3), "softmax, {len}");
            }
        }
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

    /// Every copy the CPU can run (the AVX-512 one on most servers, which the dispatched
    /// test above then covers alone) gives the baseline's bits on rows of awkward lengths.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_build_this_cpu_runs_agrees_bit_for_bit() {
        let levels = match simd() {
            Simd::Baseline => &[Simd::Baseline][..],
            Simd::Avx2 => &[Simd::Baseline, Simd::Avx2][..],
            Simd::Avx512 => &[Simd::Baseline, Simd::Avx2, Simd::Avx512][..],
        };
        for len in [0usize, 1, 15, 17, 63, 65, 1001, 4133] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1009) as f32 / 23.0 - 30.0)
                .collect();
            let u: Vec<f32> = (0..len).map(|i| 1.0 + (i % 5) as f32 / 7.0).collect();
            let m = max_body(&row);
            for &l in levels {
                assert_eq!(max_with(l, &row).to_bits(), m.to_bits(), "{l:?} {len}");
                let (a, b) = (sums_with(l, &row, m, -3.0), sums_body(&row, m, -3.0));
                assert_eq!(
                    (a.0.to_bits(), a.1.to_bits(), a.2.to_bits(), a.3),
                    (b.0.to_bits(), b.1.to_bits(), b.2.to_bits(), b.3),
                    "{l:?} {len}"
                );
                let (mut x, mut y) = (vec![0f32; len], vec![0f32; len]);
                silu_mul_with(l, &row, &u, space(&mut x));
                silu_mul_body(&row, &u, space(&mut y));
                assert_eq!(x, y, "silu {l:?} {len}");
                gelu_mul_with(l, &row, &u, space(&mut x));
                gelu_mul_body(&row, &u, space(&mut y));
                assert_eq!(x, y, "gelu {l:?} {len}");
                let (mut n1, mut n2, mut sm) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
                rms_norm_with(l, &row, &u, 1e-6, space(&mut n1));
                rms_norm_body(&row, &u, 1e-6, space(&mut n2));
                assert_eq!(n1, n2, "rms_norm {l:?} {len}");
                add_rms_norm_with(l, &u, &row, &u, 1e-6, space(&mut sm), space(&mut n1));
                add_rms_norm_body(&u, &row, &u, 1e-6, space(&mut x), space(&mut n2));
                assert_eq!((&sm, &n1), (&x, &n2), "add_rms_norm {l:?} {len}");
                if len > 0 {
                    let (mut x, mut y) = (row.clone(), row.clone());
                    softmax_with(l, &mut x);
                    softmax_body(&mut y);
                    assert_eq!(x, y, "softmax {l:?} {len}");
                }
            }
        }
    }

    #[test]
    fn rms_norms_match_f64_and_the_fused_addition_changes_nothing() {
        let x: Vec<f32> = (0..2049)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 7.0)
            .collect();
        let a: Vec<f32> = (0..2049)
            .map(|i| ((i * 11) % 13) as f32 / 5.0 - 1.0)
            .collect();
        let w: Vec<f32> = (0..2049).map(|i| 0.5 + (i % 3) as f32).collect();
        let s: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();
        let ms = s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len() as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        let mut out = vec![0f32; s.len()];
        rms_norm(&s, &w, 1e-5, space(&mut out));
        for i in 0..s.len() {
            let want = s[i] as f64 * inv * w[i] as f64;
            assert!(
                (out[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{i}"
            );
        }
        let (mut sum, mut fused) = (vec![0f32; s.len()], vec![0f32; s.len()]);
        add_rms_norm(&x, &a, &w, 1e-5, space(&mut sum), space(&mut fused));
        assert_eq!(sum, s);
        assert_eq!(fused, out);
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
        silu_mul(&g, &u, space(&mut a));
        gelu_mul(&g, &u, space(&mut b));
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
        silu_mul_body(&g, &u, space(&mut c));
        assert_eq!(a, c, "dispatched and baseline builds agree");
        gelu_mul_body(&g, &u, space(&mut c));
        assert_eq!(b, c, "dispatched and baseline builds agree");
    }
}
