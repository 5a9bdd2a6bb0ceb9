//! The library's error type. Every variant names what the user must look at: the file, the
//! line, the tensor or the metadata key, so that a message is enough to fix the input.

use std::path::PathBuf;

/// Errors raised by miascan's library. `main` maps each family to an exit code
/// ([`Error::exit_code`]); the codes are documented in the README.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file or stream could not be read.
    #[error("cannot read {path}: {source}")]
    InputIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Input that is not valid for its format: invalid UTF-8, binary data, a malformed
    /// JSONL line, a missing text field.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    InvalidInput {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// No passage at all was found in the inputs.
    #[error("no passages to score: {0}")]
    EmptyInput(String),

    /// A model file that is missing or cannot be read.
    #[error("cannot read model {path}: {source}")]
    ModelIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file that is malformed, truncated, or inconsistent with itself.
    #[error("invalid model {path}: {message}")]
    InvalidModel { path: PathBuf, message: String },
    /// A well-formed model that miascan does not support (architecture, tokenizer kind).
    #[error("unsupported model {path}: {message}")]
    UnsupportedModel { path: PathBuf, message: String },

    /// A tokenizer failure on a passage.
    #[error("tokenizer failed on passage {id}: {message}")]
    Tokenizer { id: String, message: String },

    /// A device that was asked for but is not compiled in or not present.
    #[error("device {0}")]
    Device(String),

    /// Options that contradict each other or are out of range.
    #[error("{0}")]
    Usage(String),

    /// Writing results failed.
    #[error("cannot write {path}: {source}")]
    OutputIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A tensor computation failed (out of memory, device error). Not expected on valid input.
    #[error("computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The process exit code for this error (see the README's "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InputIo { .. } | Error::InvalidInput { .. } | Error::EmptyInput(_) => 3,
            Error::ModelIo { .. } | Error::InvalidModel { .. } | Error::UnsupportedModel { .. } => {
                4
            }
            Error::Usage(_) | Error::Device(_) => 2,
            Error::Tokenizer { .. } | Error::OutputIo { .. } | Error::Compute(_) => 1,
        }
    }
}
