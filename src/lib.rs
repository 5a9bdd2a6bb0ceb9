//! miascan: membership inference for language models — was this text in the training data?
//!
//! The modules in the order data flows through them (the imports between them run one way:
//! `tests/it/imports.rs` fails on a circle):
//!
//! - [`input`]: files → documents (every format, streamed, within bounds); [`chunk`]:
//!   documents → passages on token boundaries;
//! - [`model`]: a tokenizer and a causal LM read from GGUF, checkpoints or the hub, over
//!   [`kernels`]; [`engine`]: that forward (or a server) → per-token statistics ([`stats`]);
//! - [`score`]: the scores, pure functions of those statistics; [`scorer`]: passages → one
//!   engine call per view → scores → a [`record`] each;
//! - [`models`]: the models of a run loaded once, and the options they make;
//! - [`calibrate`]: scores on known non-members → p-values and decisions; [`eval`]: AUROC,
//!   TPR at low FPR, the dataset test, the negative control, the blind baseline;
//!   [`exposure`]: canary exposure;
//! - [`scan`]: a whole collection → log → verdicts and a report; [`report`]: `score`'s table.
//!
//! Beside them: [`error`] (typed errors and exit codes), [`profile`], [`alloc`].

// files → documents
pub mod input;

// documents → passages
pub mod chunk;

// numeric kernels
pub mod kernels;

// tokenizer + causal LM
pub mod model;

// the forward or a server → per-token statistics
pub mod engine;

// the LM head's per-token statistics
pub mod stats;

// the scores
pub mod score;

// passages → scores
pub mod scorer;

// the passage record
pub mod record;

// a run's models, loaded once
pub mod models;

// non-member distributions, p-values
pub mod calibrate;

// evaluation and guards
pub mod eval;

// canary exposure
pub mod exposure;

// a whole collection
pub mod scan;

// `score`'s table
pub mod report;

// beside the pipeline
pub mod alloc;
pub mod error;
pub mod profile;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
