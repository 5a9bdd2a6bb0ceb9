//! Weight matrices kept in memory as the file stores them (GGUF quantised blocks, f16/bf16
//! checkpoints) and expanded to the compute dtype only while they are used: a layer's
//! weights exist in f32 just for the duration of its matmul, so an 8B model needs about its
//! file's size in memory, not four times it. The arithmetic is unchanged: expanding a block
//! gives the same f32 numbers whether it happens at load or just before the matmul.

use crate::error::Result;
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
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

/// A `[rows, cols]` matrix.
#[derive(Debug, Clone)]
pub enum Weight {
    /// In the compute dtype.
    Dense(Tensor),
    /// GGUF blocks, expanded to `dtype` per use.
    Quantized { q: Arc<QTensor>, dtype: DType },
    /// f16/bf16 from a checkpoint, converted to `dtype` per use.
    Half { t: Tensor, dtype: DType },
}

impl Weight {
    /// A quantised tensor, kept as it is under [`Residency::Stored`] (F32 tensors are
    /// expanded: they gain nothing from staying in blocks).
    pub fn from_qtensor(q: QTensor, dtype: DType, residency: Residency) -> Result<Weight> {
        if residency == Residency::Expanded || q.dtype() == GgmlDType::F32 {
            return Ok(Weight::Dense(q.dequantize(&q.device())?.to_dtype(dtype)?));
        }
        Ok(Weight::Quantized {
            q: Arc::new(q),
            dtype,
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
            Weight::Quantized { q, dtype } => q.dequantize(&q.device())?.to_dtype(*dtype)?,
        })
    }

    /// Rows `start..start + n` in the compute dtype (LM-head blocks, embedding lookups).
    pub fn rows(&self, start: usize, n: usize) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.narrow(0, start, n)?),
            Weight::Half { t, dtype } => Ok(t.narrow(0, start, n)?.to_dtype(*dtype)?),
            Weight::Quantized { .. } => {
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
            Weight::Quantized { q, dtype } => {
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
            Weight::Quantized { q, dtype } => {
                let (qd, d) = (q.dtype(), *dtype);
                let mut data = Vec::new();
                let mut rows = 0;
                for p in parts {
                    match p {
                        Weight::Quantized { q, dtype }
                            if q.dtype() == qd && *dtype == d && q.device().is_cpu() =>
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
            Weight::Quantized { q, dtype } => {
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
                })
            }
        }
    }
}
