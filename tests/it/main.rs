//! The integration tests, one binary: the CLI end to end, parity with the goldens, the
//! tokenizer suite, statistics on known non-members. Tests that need a process of their own
//! are separate binaries: `parity_gemma3` (it measures its own peak RSS) and
//! `hostile_models` (it sets `RUST_BACKTRACE` for the whole process).

mod common;

mod blind_baseline;
mod compute_fast;
mod dcpdd;
mod errors;
mod eval_cli;
mod exposure;
mod finetune_audit;
mod fuzz_seeds;
mod hub_cache;
mod imports;
mod parity_smollm2;
mod parity_tiny;
mod pdf_agreement;
mod prefix;
mod readme;
mod remote;
mod scan;
mod scan_fpr;
mod score_gemma3;
mod score_smollm2;
mod shift_free;
mod stats_backends;
mod tokenizer_suite;
mod verdict_guards;
mod weights;
