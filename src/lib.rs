//! miascan: membership inference for language models — was this text in the training data?
//!
//! The data path is the module structure: [`input`] → [`model`] (tokenizer + forward with
//! hidden states for every position) → [`stats`] (per-token log-prob, mu, sigma) →
//! [`score`] (pure functions of those) → [`report`]. [`scorer`] drives it, one forward pass
//! per passage serving every score.

pub mod alloc;
pub mod calibrate;
pub mod chunk;
pub mod error;
pub mod exposure;
pub mod input;
pub mod kernels;
pub mod model;
pub mod models;
pub mod profile;
pub mod record;
pub mod report;
pub mod scan;
pub mod score;
pub mod scorer;
pub mod stats;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
pub mod engine;
pub mod eval;
