//! GGUF blocks expanded to f32 in vector registers, with exactly candle's numbers.
//!
//! With the weights kept as the file stores them (the default), every forward expands
//! every weight matrix again: per 2,048-token batch, 134M weights for SmolLM2 (Q4_1 and a
//! Q8_0 head) and 268M for Gemma 3 (Q8_0 head, Q5_0, Q4_K, Q6_K). Candle's `to_float` is
//! written one element at a time and compiled for the baseline x86-64, which reached
//! 1.5 G weights/s (SmolLM2) and 0.84 G/s (Gemma 3) on two Zen 4 cores: 3% and 6% of a scan.
//! These are the same formulas, block by block, written so that the compiler vectorises
//! them, and built for AVX-512 and AVX2 beside the baseline ([`crate::kernels::simd::dispatched`]).
//!
//! Why the numbers are candle's bit for bit: each element is the same expression, the same
//! f32 operations in the same order (`q · d + m`, `(d · sc) · q`, …; Rust never fuses a
//! multiply and an add), the scales converted from f16 by the same `half` call, and the
//! integer unpacking exact. The tests compare every bit against candle on random blocks.

use crate::kernels::simd::dispatched;
use candle_core::quantized::GgmlDType;
use half::f16;
use std::mem::MaybeUninit;

/// Expands `bytes`, whole blocks of type `dt`, into `out` (every element written), when
/// `dt` is one of the block types here; `false`, touching nothing, for the others or when
/// the lengths do not match.
pub fn expand(dt: GgmlDType, bytes: &[u8], out: &mut [MaybeUninit<f32>]) -> bool {
    let Some((size, elems)) = layout(dt) else {
        return false;
    };
    if !bytes.len().is_multiple_of(size) || bytes.len() / size * elems != out.len() {
        return false;
    }
    match dt {
        GgmlDType::Q4_0 => q4_0(bytes, out),
        GgmlDType::Q4_1 => q4_1(bytes, out),
        GgmlDType::Q5_0 => q5_0(bytes, out),
        GgmlDType::Q5_1 => q5_1(bytes, out),
        GgmlDType::Q8_0 => q8_0(bytes, out),
        GgmlDType::Q4K => q4k(bytes, out),
        GgmlDType::Q6K => q6k(bytes, out),
        _ => return false,
    }
    true
}

/// Bytes and elements of one block (candle's sizes) of the types [`expand`] handles.
pub fn layout(dt: GgmlDType) -> Option<(usize, usize)> {
    use GgmlDType::*;
    matches!(dt, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q6K)
        .then(|| (dt.type_size(), dt.block_size()))
}

#[inline(always)]
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The blocks of `bytes` (`size` bytes each) beside their `N` outputs.
#[inline(always)]
fn blocks<'a, const N: usize>(
    bytes: &'a [u8],
    size: usize,
    out: &'a mut [MaybeUninit<f32>],
) -> impl Iterator<Item = (&'a [u8], &'a mut [MaybeUninit<f32>; N])> {
    bytes.chunks_exact(size).zip(
        out.chunks_exact_mut(N)
            .map(|o| <&mut [MaybeUninit<f32>; N]>::try_from(o).expect("chunks of N")),
    )
}

/// `d · (q − 8)`: d (f16), 16 bytes of two 4-bit values each.
#[inline(always)]
fn q4_0_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<32>(bytes, 18, out) {
        let d = half_at(b, 0);
        let qs: &[u8; 16] = b[2..18].try_into().expect("16 bytes");
        for j in 0..16 {
            let x0 = (qs[j] & 0x0F) as i16 - 8;
            let x1 = (qs[j] >> 4) as i16 - 8;
            o[j].write(x0 as f32 * d);
            o[j + 16].write(x1 as f32 * d);
        }
    }
}

/// `q · d + m`: d, m (f16), 16 bytes of two 4-bit values each.
#[inline(always)]
fn q4_1_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<32>(bytes, 20, out) {
        let (d, m) = (half_at(b, 0), half_at(b, 2));
        let qs: &[u8; 16] = b[4..20].try_into().expect("16 bytes");
        for j in 0..16 {
            o[j].write((qs[j] & 0x0F) as f32 * d + m);
            o[j + 16].write((qs[j] >> 4) as f32 * d + m);
        }
    }
}

/// The fifth bits of a 5-bit block: bit j of `qh` for element j, bit j + 16 for j + 16,
/// each moved to bit 4.
#[inline(always)]
fn high_bits(qh: u32, j: usize) -> (u8, u8) {
    (
        (((qh >> j) << 4) & 0x10) as u8,
        ((qh >> (j + 12)) & 0x10) as u8,
    )
}

/// `d · (q − 16)`: d (f16), 4 bytes of fifth bits, 16 bytes of low nibbles.
#[inline(always)]
fn q5_0_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<32>(bytes, 22, out) {
        let d = half_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs: &[u8; 16] = b[6..22].try_into().expect("16 bytes");
        for j in 0..16 {
            let (h0, h1) = high_bits(qh, j);
            let x0 = ((qs[j] & 0x0F) | h0) as i32 - 16;
            let x1 = ((qs[j] >> 4) | h1) as i32 - 16;
            o[j].write(x0 as f32 * d);
            o[j + 16].write(x1 as f32 * d);
        }
    }
}

/// `q · d + m`: d, m (f16), 4 bytes of fifth bits, 16 bytes of low nibbles.
#[inline(always)]
fn q5_1_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<32>(bytes, 24, out) {
        let (d, m) = (half_at(b, 0), half_at(b, 2));
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs: &[u8; 16] = b[8..24].try_into().expect("16 bytes");
        for j in 0..16 {
            let (h0, h1) = high_bits(qh, j);
            o[j].write(((qs[j] & 0x0F) | h0) as f32 * d + m);
            o[j + 16].write(((qs[j] >> 4) | h1) as f32 * d + m);
        }
    }
}

/// `q · d`: d (f16), 32 signed bytes.
#[inline(always)]
fn q8_0_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<32>(bytes, 34, out) {
        let d = half_at(b, 0);
        let qs: &[u8; 32] = b[2..34].try_into().expect("32 bytes");
        for j in 0..32 {
            o[j].write(qs[j] as i8 as f32 * d);
        }
    }
}

/// Scale and min of sub-block `j` of a Q4_K block (6 bits each, packed in 12 bytes).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// `(d · sc) · q − dmin · m` per 32-element sub-block: d, dmin (f16), 12 bytes of scales
/// and mins, 128 bytes of 4-bit values (64 elements per 32 bytes: low nibbles, then high).
#[inline(always)]
fn q4k_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<256>(bytes, 144, out) {
        let (d, min) = (half_at(b, 0), half_at(b, 2));
        let scales: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
        for g in 0..4 {
            let q: &[u8; 32] = b[16 + 32 * g..48 + 32 * g].try_into().expect("32 bytes");
            let (sc, m) = scale_min_k4(2 * g, scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min_k4(2 * g + 1, scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let o = &mut o[64 * g..64 * g + 64];
            for l in 0..32 {
                o[l].write(d1 * (q[l] & 0xF) as f32 - m1);
                o[l + 32].write(d2 * (q[l] >> 4) as f32 - m2);
            }
        }
    }
}

/// `(d · sc) · (q − 32)` per 16-element sub-block: 128 bytes of low nibbles, 64 bytes of
/// 2-bit high parts, 16 signed scales, d (f16).
#[inline(always)]
fn q6k_body(bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
    for (b, o) in blocks::<256>(bytes, 210, out) {
        let d = half_at(b, 208);
        for n in 0..2 {
            let ql: &[u8; 64] = b[64 * n..64 * n + 64].try_into().expect("64 bytes");
            let qh: &[u8; 32] = b[128 + 32 * n..160 + 32 * n].try_into().expect("32 bytes");
            let sc = |i: usize| d * b[192 + 8 * n + i] as i8 as f32;
            let o = &mut o[128 * n..128 * n + 128];
            for half in 0..2 {
                let (s1, s2, s3, s4) = (sc(half), sc(half + 2), sc(half + 4), sc(half + 6));
                for l in 16 * half..16 * half + 16 {
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    o[l].write(s1 * q1 as f32);
                    o[l + 32].write(s2 * q2 as f32);
                    o[l + 64].write(s3 * q3 as f32);
                    o[l + 96].write(s4 * q4 as f32);
                }
            }
        }
    }
}

dispatched! {
    /// Q4_0 blocks → f32.
    pub fn q4_0 / q4_0_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q4_0_body;
}
dispatched! {
    /// Q4_1 blocks → f32.
    pub fn q4_1 / q4_1_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q4_1_body;
}
dispatched! {
    /// Q5_0 blocks → f32.
    pub fn q5_0 / q5_0_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q5_0_body;
}
dispatched! {
    /// Q5_1 blocks → f32.
    pub fn q5_1 / q5_1_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q5_1_body;
}
dispatched! {
    /// Q8_0 blocks → f32.
    pub fn q8_0 / q8_0_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q8_0_body;
}
dispatched! {
    /// Q4_K blocks → f32.
    pub fn q4k / q4k_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q4k_body;
}
dispatched! {
    /// Q6_K blocks → f32.
    pub fn q6k / q6k_with(bytes: &[u8], out: &mut [MaybeUninit<f32>]) = q6k_body;
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::simd::Simd;
    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::{DType, Device};
    use std::borrow::Cow;

    fn bits(out: &[MaybeUninit<f32>]) -> Vec<u32> {
        // SAFETY: only called on outputs the expansion wrote in full
        out.iter()
            .map(|x| unsafe { x.assume_init() }.to_bits())
            .collect()
    }

    /// One block type's expansion built for `level`.
    #[cfg(target_arch = "x86_64")]
    fn expand_at(level: Simd, dt: GgmlDType, bytes: &[u8], out: &mut [MaybeUninit<f32>]) {
        match dt {
            GgmlDType::Q4_0 => q4_0_with(level, bytes, out),
            GgmlDType::Q4_1 => q4_1_with(level, bytes, out),
            GgmlDType::Q5_0 => q5_0_with(level, bytes, out),
            GgmlDType::Q5_1 => q5_1_with(level, bytes, out),
            GgmlDType::Q8_0 => q8_0_with(level, bytes, out),
            GgmlDType::Q4K => q4k_with(level, bytes, out),
            GgmlDType::Q6K => q6k_with(level, bytes, out),
            _ => unreachable!("a type expand handles"),
        }
    }

    /// Random blocks (every nibble and bit pattern, scales of every sign and size, and
    /// some infinite or NaN scales), expanded here and by candle: the same bits, on every
    /// vector level this CPU has.
    #[test]
    fn random_blocks_give_candles_bits() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for dt in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let (size, elems) = layout(dt).unwrap();
            let blocks = 37;
            let mut bytes: Vec<u8> = (0..blocks * size).map(|_| next() as u8).collect();
            // the f16 scales (where they lie in each block) mostly ordinary numbers
            let scale_at: &[usize] = match dt {
                GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q8_0 => &[0],
                GgmlDType::Q6K => &[208],
                _ => &[0, 2],
            };
            for (i, b) in bytes.chunks_exact_mut(size).enumerate() {
                for &at in scale_at {
                    if i % 9 != 0 {
                        let v = f16::from_f32((next() % 2001) as f32 / 1000.0 - 1.0);
                        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            let storage = QStorage::from_data(Cow::Borrowed(&bytes), &Device::Cpu, dt).unwrap();
            let q = QTensor::new(storage, (blocks, elems)).unwrap();
            let want: Vec<u32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let mut out = vec![MaybeUninit::<f32>::uninit(); blocks * elems];
            assert!(expand(dt, &bytes, &mut out));
            assert_eq!(bits(&out), want, "{dt:?}");
            #[cfg(target_arch = "x86_64")]
            for level in [Simd::Avx512, Simd::Avx2, Simd::Baseline] {
                // the levels this CPU can run: the detected one and those below it
                if (level as u8) < (crate::kernels::simd::simd() as u8) {
                    continue;
                }
                let mut out = vec![MaybeUninit::<f32>::uninit(); blocks * elems];
                expand_at(level, dt, &bytes, &mut out);
                assert_eq!(bits(&out), want, "{dt:?} at {level:?}");
            }
            // a length that is not whole blocks is refused
            assert!(!expand(dt, &bytes[1..], &mut out[..(blocks - 1) * elems]));
        }
    }
}
