//! The gated feed-forward block and its activations.

use super::linear::{Linear, Stacked};
use crate::error::Result;
use crate::kernels::rows::{cpu_f32, cpu_rows, rows_written};
use crate::kernels::simd as kernel;
use crate::profile::{self, Phase};
use candle_core::Tensor;

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (Llama, Qwen, Mistral, Phi-3, OLMo 2).
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
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
