//! Weight matrices kept in memory as the file stores them (GGUF quantised blocks, f16/bf16
//! checkpoints) and expanded to the compute dtype only while they are used: a layer's
//! weights exist in f32 just for the duration of its matmul, so an 8B model needs about its
//! file's size in memory, not four times it. The arithmetic is unchanged: expanding a block
//! gives the same f32 numbers whether it happens at load or just before the matmul.

use crate::error::Result;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType,
};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// How weights are held between forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Residency {
    /// As stored in the file, expanded per use (the default: memory ≈ file size).
    #[default]
    Stored,
    /// Expanded to the compute dtype at load (memory ≈ 4 bytes per weight; saves the
    /// per-pass expansion, which matters only for very short batches).
    Expanded,
}

/// How the matmuls of quantised weights are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// Blocks expanded to f32, f32 products: the numbers of transformers and llama.cpp's
    /// f32 reference (the default, held to the parity goldens).
    #[default]
    Exact,
    /// Blocks multiplied as stored with activations quantised to 8 bits per block of 32
    /// ([`crate::kernels::qmatmul`]), as llama.cpp does: faster, within a measured bound.
    Fast,
}

impl Compute {
    /// As the `--compute` flag and the outputs name it.
    pub fn name(self) -> &'static str {
        match self {
            Compute::Exact => "exact",
            Compute::Fast => "fast",
        }
    }

    pub fn parse(s: &str) -> Option<Compute> {
        match s {
            "exact" => Some(Compute::Exact),
            "fast" => Some(Compute::Fast),
            _ => None,
        }
    }
}

/// A `[rows, cols]` matrix.
#[derive(Debug, Clone)]
pub enum Weight {
    /// In the compute dtype.
    Dense(Tensor),
    /// GGUF blocks, expanded to `dtype` per use, or multiplied as stored under
    /// [`Compute::Fast`].
    Quantized {
        q: Arc<QTensor>,
        dtype: DType,
        compute: Compute,
    },
    /// f16/bf16 from a checkpoint, converted to `dtype` per use.
    Half { t: Tensor, dtype: DType },
}

impl Weight {
    /// A quantised tensor, kept as it is under [`Residency::Stored`] (F32 tensors are
    /// expanded: they gain nothing from staying in blocks).
    pub fn from_qtensor(
        q: QTensor,
        dtype: DType,
        residency: Residency,
        compute: Compute,
    ) -> Result<Weight> {
        let fast = compute == Compute::Fast && crate::kernels::qmatmul::supported(q.dtype());
        if (residency == Residency::Expanded && !fast) || q.dtype() == GgmlDType::F32 {
            return Ok(Weight::Dense(q.dequantize(&q.device())?.to_dtype(dtype)?));
        }
        Ok(Weight::Quantized {
            q: Arc::new(q),
            dtype,
            compute,
        })
    }

    /// A checkpoint tensor: kept in f16/bf16 under [`Residency::Stored`] when computing in
    /// a wider dtype, otherwise converted now.
    pub fn from_tensor(t: Tensor, dtype: DType, residency: Residency) -> Result<Weight> {
        let half = matches!(t.dtype(), DType::F16 | DType::BF16);
        if residency == Residency::Stored && half && t.dtype() != dtype {
            return Ok(Weight::Half { t, dtype });
        }
        Ok(Weight::Dense(t.to_dtype(dtype)?))
    }

    pub fn dims2(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Weight::Dense(t) | Weight::Half { t, .. } => t.dims2()?,
            Weight::Quantized { q, .. } => q.shape().dims2()?,
        })
    }

    /// The whole matrix in the compute dtype.
    pub fn expand(&self) -> Result<Tensor> {
        Ok(match self {
            Weight::Dense(t) => t.clone(),
            Weight::Half { t, dtype } => t.to_dtype(*dtype)?,
            Weight::Quantized { q, dtype, .. } => match dequantize_parallel(q)? {
                Some(t) => t.to_dtype(*dtype)?,
                None => q.dequantize(&q.device())?.to_dtype(*dtype)?,
            },
        })
    }

    /// `x` `[T, in]` times this matrix's transpose → `[T, rows]`: the one matmul on stored
    /// weights every linear layer goes through. Quantised weights under [`Compute::Fast`]
    /// are multiplied as stored ([`crate::kernels::qmatmul`]); everything else is
    /// expanded to the compute dtype for the exact product.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        if let Weight::Quantized {
            q,
            compute: Compute::Fast,
            ..
        } = self
        {
            if let Some(y) = crate::kernels::qmatmul::matmul_t(x, q)? {
                return Ok(y);
            }
        }
        crate::kernels::matmul::matmul_t(x, &self.expand()?)
    }

    /// Rows `start..start + n` in the compute dtype (LM-head blocks, embedding lookups).
    pub fn rows(&self, start: usize, n: usize) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.narrow(0, start, n)?),
            Weight::Half { t, dtype } => Ok(t.narrow(0, start, n)?.to_dtype(*dtype)?),
            Weight::Quantized { q, dtype, .. } => {
                if let Some(t) = rows_parallel(q, start, n)? {
                    return Ok(t.to_dtype(*dtype)?);
                }
                let ids: Vec<u32> = (start as u32..(start + n) as u32).collect();
                self.gather(&Tensor::new(ids.as_slice(), &Device::Cpu)?)
            }
        }
    }

    /// The rows named by `ids` (u32) in the compute dtype: an embedding lookup.
    pub fn gather(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.index_select(ids, 0)?),
            Weight::Half { t, dtype } => Ok(t.index_select(ids, 0)?.to_dtype(*dtype)?),
            Weight::Quantized { q, dtype, .. } => {
                let cols = q.shape().dims2()?.1;
                if cols.is_multiple_of(q.dtype().block_size()) {
                    Ok(q.embedding(ids)?.to_dtype(*dtype)?)
                } else {
                    // rows do not start on block boundaries: expand all, then select
                    Ok(self
                        .expand()?
                        .index_select(&ids.to_device(&q.device())?, 0)?)
                }
            }
        }
    }

    /// The rows of `parts` stacked into one matrix (q, k and v, or gate and up, fused into
    /// one larger matmul), in the form the parts share: `None` when they differ (a GGUF file
    /// quantising `v` differently from `q` and `k`), when quantised rows do not start on
    /// block boundaries, or off the CPU. The stacked matrix computes the same numbers as
    /// the parts: every output column is the same dot product.
    pub fn concat_rows(parts: &[&Weight]) -> Result<Option<Weight>> {
        let cols = parts[0].dims2()?.1;
        for p in parts {
            if p.dims2()?.1 != cols {
                return Ok(None);
            }
        }
        let tensors = |f: &dyn Fn(&Weight) -> Option<(Tensor, DType)>| {
            parts.iter().map(|p| f(p)).collect::<Option<Vec<_>>>()
        };
        match parts[0] {
            Weight::Dense(_) => {
                let Some(ts) = tensors(&|w| match w {
                    Weight::Dense(t) => Some((t.clone(), t.dtype())),
                    _ => None,
                }) else {
                    return Ok(None);
                };
                let ts: Vec<Tensor> = ts.into_iter().map(|(t, _)| t).collect();
                Ok(Some(Weight::Dense(Tensor::cat(&ts, 0)?)))
            }
            Weight::Half { dtype, .. } => {
                let d = *dtype;
                let Some(ts) = tensors(&|w| match w {
                    Weight::Half { t, dtype } if *dtype == d => Some((t.clone(), *dtype)),
                    _ => None,
                }) else {
                    return Ok(None);
                };
                let ts: Vec<Tensor> = ts.into_iter().map(|(t, _)| t).collect();
                if ts.iter().any(|t| t.dtype() != ts[0].dtype()) {
                    return Ok(None);
                }
                Ok(Some(Weight::Half {
                    t: Tensor::cat(&ts, 0)?,
                    dtype: d,
                }))
            }
            Weight::Quantized { q, dtype, compute } => {
                let (qd, d, c) = (q.dtype(), *dtype, *compute);
                let mut data = Vec::new();
                let mut rows = 0;
                for p in parts {
                    match p {
                        Weight::Quantized { q, dtype, compute }
                            if q.dtype() == qd
                                && *dtype == d
                                && *compute == c
                                && q.device().is_cpu() =>
                        {
                            if !cols.is_multiple_of(qd.block_size()) {
                                return Ok(None);
                            }
                            data.extend_from_slice(&q.data()?);
                            rows += q.shape().dims2()?.0;
                        }
                        _ => return Ok(None),
                    }
                }
                let storage = QStorage::from_data(Cow::Owned(data), &Device::Cpu, qd)?;
                Ok(Some(Weight::Quantized {
                    q: Arc::new(QTensor::new(storage, (rows, cols))?),
                    dtype: d,
                    compute: c,
                }))
            }
        }
    }

    /// Rows `start..start + n` as a weight of their own (the parts of a fused projection),
    /// still in blocks where the rows start on block boundaries.
    pub fn split_rows(&self, start: usize, n: usize) -> Result<Weight> {
        match self {
            Weight::Dense(t) => Ok(Weight::Dense(t.narrow(0, start, n)?.contiguous()?)),
            Weight::Half { t, dtype } => Ok(Weight::Half {
                t: t.narrow(0, start, n)?.contiguous()?,
                dtype: *dtype,
            }),
            Weight::Quantized { q, dtype, compute } => {
                let (_, cols) = q.shape().dims2()?;
                let bs = q.dtype().block_size();
                if !cols.is_multiple_of(bs) || !q.device().is_cpu() {
                    return Ok(Weight::Dense(
                        self.expand()?.narrow(0, start, n)?.contiguous()?,
                    ));
                }
                let row_bytes = cols / bs * q.dtype().type_size();
                let data = q.data()?;
                let part = &data[start * row_bytes..(start + n) * row_bytes];
                let storage = QStorage::from_data(Cow::Borrowed(part), &q.device(), q.dtype())?;
                Ok(Weight::Quantized {
                    q: Arc::new(QTensor::new(storage, (n, cols))?),
                    dtype: *dtype,
                    compute: *compute,
                })
            }
        }
    }
}

/// Blocks expanded per task by [`dequantize_parallel`].
const DEQUANT_CHUNK: usize = 512;

/// A CPU quantised tensor expanded to f32 on every worker thread: candle's `dequantize`
/// runs on one thread, and with the weights kept stored (the default) every forward
/// expands every layer — 5% of a SmolLM2 scan on one thread of two. The common block types
/// go through [`crate::kernels::dequant`]'s vectorised copies of candle's formulas, the rest
/// through candle's own `to_float`: the numbers are candle's either way. `None` off the CPU.
fn dequantize_parallel(q: &QTensor) -> Result<Option<Tensor>> {
    let (rows, _) = q.shape().dims2()?;
    rows_parallel(q, 0, rows)
}

/// Rows `start..start + n` of a CPU quantised `[rows, cols]` tensor expanded as in
/// [`dequantize_parallel`] (the LM head's blocks of the vocabulary). `None` off the CPU or
/// when rows do not start on block boundaries.
fn rows_parallel(q: &QTensor, start: usize, n: usize) -> Result<Option<Tensor>> {
    let (_, cols) = q.shape().dims2()?;
    let (dt, bs) = (q.dtype(), q.dtype().block_size());
    if !q.device().is_cpu() || !cols.is_multiple_of(bs) {
        return Ok(None);
    }
    let row_bytes = cols / bs * dt.type_size();
    let data = q.data()?;
    let Some(bytes) = data.get(start * row_bytes..(start + n) * row_bytes) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(n * cols);
    let space = &mut out.spare_capacity_mut()[..n * cols];
    let done = match dt {
        _ if crate::kernels::dequant::layout(dt).is_some() => expand_parallel(dt, bytes, space),
        GgmlDType::F32 => blocks_to_f32::<f32>(bytes, space),
        GgmlDType::F16 => blocks_to_f32::<f16>(bytes, space),
        GgmlDType::BF16 => blocks_to_f32::<bf16>(bytes, space),
        GgmlDType::Q4_0 => blocks_to_f32::<BlockQ4_0>(bytes, space),
        GgmlDType::Q4_1 => blocks_to_f32::<BlockQ4_1>(bytes, space),
        GgmlDType::Q5_0 => blocks_to_f32::<BlockQ5_0>(bytes, space),
        GgmlDType::Q5_1 => blocks_to_f32::<BlockQ5_1>(bytes, space),
        GgmlDType::Q8_0 => blocks_to_f32::<BlockQ8_0>(bytes, space),
        GgmlDType::Q8_1 => blocks_to_f32::<BlockQ8_1>(bytes, space),
        GgmlDType::Q2K => blocks_to_f32::<BlockQ2K>(bytes, space),
        GgmlDType::Q3K => blocks_to_f32::<BlockQ3K>(bytes, space),
        GgmlDType::Q4K => blocks_to_f32::<BlockQ4K>(bytes, space),
        GgmlDType::Q5K => blocks_to_f32::<BlockQ5K>(bytes, space),
        GgmlDType::Q6K => blocks_to_f32::<BlockQ6K>(bytes, space),
        GgmlDType::Q8K => blocks_to_f32::<BlockQ8K>(bytes, space),
    };
    if !done {
        return Ok(None);
    }
    // SAFETY: blocks_to_f32 returned true, so it wrote every element of `space`, the first
    // `n · cols` floats of `out`.
    unsafe { out.set_len(n * cols) };
    Ok(Some(Tensor::from_vec(out, (n, cols), &Device::Cpu)?))
}

/// `bytes`, blocks of a type [`crate::kernels::dequant`] expands, expanded straight into `out` in
/// parallel chunks of [`DEQUANT_CHUNK`] blocks; `false` when the sizes do not fit.
fn expand_parallel(dt: GgmlDType, bytes: &[u8], out: &mut [MaybeUninit<f32>]) -> bool {
    let Some((size, elems)) = crate::kernels::dequant::layout(dt) else {
        return false;
    };
    if !bytes.len().is_multiple_of(size) || bytes.len() / size * elems != out.len() {
        return false;
    }
    out.par_chunks_mut(DEQUANT_CHUNK * elems)
        .zip(bytes.par_chunks(DEQUANT_CHUNK * size))
        .all(|(o, b)| crate::kernels::dequant::expand(dt, b, o))
}

/// `bytes` (the storage of a `Vec<T>` of ggml blocks) expanded into `out` in parallel
/// chunks, every element written; `false`, touching nothing, when the sizes or the
/// alignment do not fit `T`.
///
/// `out` is not zero-filled first (that `memset` of every expanded weight was a quarter of
/// the zero-fills `perf` counted in a forward, ~3.5% of its samples): each chunk is
/// expanded into a small scratch buffer of its worker, still in cache, and copied out.
fn blocks_to_f32<T: GgmlType>(bytes: &[u8], out: &mut [MaybeUninit<f32>]) -> bool {
    let size = std::mem::size_of::<T>();
    let count = bytes.len() / size;
    if size == 0
        || !bytes.len().is_multiple_of(size)
        || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
        || count * T::BLCK_SIZE != out.len()
    {
        return false;
    }
    // SAFETY: length and alignment are checked above, and the ggml block types are plain
    // data (integers and f16 scales: every bit pattern is a value), as candle itself reads
    // them from file bytes.
    let blocks: &[T] = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), count) };
    let chunk = DEQUANT_CHUNK * T::BLCK_SIZE;
    // no larger than the whole output (a small weight is a single chunk)
    let scratch_len = chunk.min(out.len());
    out.par_chunks_mut(chunk)
        .zip(blocks.par_chunks(DEQUANT_CHUNK))
        .for_each_init(
            || vec![0f32; scratch_len],
            |scratch, (o, b)| {
                let s = &mut scratch[..o.len()];
                T::to_float(b, s);
                crate::kernels::simd::write_slice(o, s);
            },
        );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel expansion gives exactly candle's numbers, for every block type a GGUF
    /// file here may hold (k-quants need rows of 256).
    #[test]
    fn parallel_dequantize_matches_candle() {
        let cols = 512;
        let rows = 601; // several chunks of every block type, the last one short
        let xs: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0)
            .collect();
        let t = Tensor::from_vec(xs, (rows, cols), &Device::Cpu).unwrap();
        for dt in [
            GgmlDType::F16,
            GgmlDType::BF16,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&t, dt).unwrap();
            let want: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let w = Weight::Quantized {
                q: Arc::new(QTensor::quantize(&t, dt).unwrap()),
                dtype: DType::F32,
                compute: Compute::Exact,
            };
            let rows_got: Vec<f32> = w
                .rows(100, 250)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(
                rows_got
                    .iter()
                    .zip(&want[100 * cols..350 * cols])
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "rows of {dt:?}"
            );
            let got = dequantize_parallel(&q).unwrap().expect("a CPU block type");
            assert_eq!(got.dims(), &[rows, cols]);
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dt:?}"
            );
        }
    }
}
