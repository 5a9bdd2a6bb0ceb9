//! Linear maps: one (`y = x Wᵀ + b`), or several of the same input stacked into one matmul.

use crate::error::Result;
use crate::model::weight::Weight;
use candle_core::Tensor;

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

    /// `x`: `[T, in]` → `[T, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.matmul_t(x)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
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
