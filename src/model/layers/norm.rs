//! Norms: layer norm with bias (GPT-2, GPT-NeoX) and RMS norm (every other decoder), the
//! latter through the CPU kernels, fused with the residual addition that precedes it.

use crate::error::Result;
use crate::kernels::rows::{cpu_f32, cpu_rows, rows_written};
use crate::kernels::simd as kernel;
use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

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
