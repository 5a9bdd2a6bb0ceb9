//! The command line's router: the subcommands, one module each, whose flags become library
//! objects (`common.rs` holds the argument groups they share). Kept thin: the library does
//! the work.

pub mod calibrate;
pub mod common;
pub mod dataset_test;
pub mod eval;
pub mod exposure;
pub mod freq;
pub mod inspect;
pub mod merge;
pub mod output;
pub mod scan;
pub mod score;
pub mod tokenize;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "miascan",
    version,
    about = "Was this text in a language model's training data?"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a collection: documents of every format cut into passages, scored as they are
    /// read, with document and collection verdicts, a crash-safe log (--resume), shards
    /// (--shard I/N) and a report (DIR/report.html).
    Scan(Box<scan::Args>),
    /// Join the result directories of `scan --shard I/N` runs.
    Merge(merge::Args),
    /// Score passages: per-token log-probs in one forward pass, every score from them.
    Score(Box<score::Args>),
    /// Store each score's distribution on known non-members, for p-values and decisions.
    Calibrate(Box<calibrate::Args>),
    /// Evaluate every score on known members and non-members: AUROC with bootstrap
    /// interval, TPR at 0.1/1/5% FPR, ROC plot, blind baseline.
    Eval(Box<eval::Args>),
    /// Dataset inference: does a suspect collection score higher than a validation
    /// collection, as a whole (Welch t-test on a learned combination of the scores)?
    DatasetTest(Box<dataset_test::Args>),
    /// Canary exposure: rank each secret's likelihood among random fills of its template
    /// (Carlini et al. 2019): rank, exact p-value, exposure in bits.
    Exposure(Box<exposure::Args>),
    /// DC-PDD's token frequency table: `freq build` counts a reference corpus in a
    /// model's vocabulary, `freq show` describes a table.
    Freq(freq::Args),
    /// Describe a model file: architecture, size, context, vocabulary, tokenizer, BOS policy.
    Inspect(inspect::Args),
    /// The model's own tokenisation of each input: JSONL {id, ids, tokens, spans}, from a
    /// .gguf (vocabulary-only files too), a tokenizer.json or a checkpoint folder.
    Tokenize(tokenize::Args),
}
