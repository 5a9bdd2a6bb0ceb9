//! Numeric kernels, below the model's layers: nothing here knows what a layer or a model is.
//!
//! - [`rows`]: the CPU f32 view of a tensor every kernel reads through (a leaf);
//! - [`simd`]: vectorised row kernels (max, soft-max, statistics sums, norms, activations)
//!   with run-time dispatch between AVX-512, AVX2 and a portable baseline;
//! - [`matmul`]: `x Wᵀ` over gemm with its own column split, and the strided gemm call;
//! - [`dequant`]: GGUF block expansion, bit-identical to candle's;
//! - [`qmatmul`]: `x Wᵀ` on GGUF blocks as stored with 8-bit activations (`--compute fast`);
//! - [`attention`]: causal (windowed, soft-capped) attention over a packed batch.

pub mod attention;
pub mod dequant;
pub mod matmul;
pub mod qmatmul;
pub mod rows;
pub mod simd;
