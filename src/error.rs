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

    /// A model server that cannot be used: unreachable after the retries, an error answer,
    /// an answer that fails a check (missing or misaligned log-probs, a changed
    /// fingerprint). `endpoint` is scheme, host and path: never a credential.
    #[error("model server {endpoint}: {message}")]
    Server { endpoint: String, message: String },

    /// A broken invariant of miascan's own (a kernel handed a tensor it cannot read, a
    /// worker thread that died): a bug to report, not something the input can fix.
    #[error("internal error: {0}")]
    Internal(String),

    /// A tensor computation failed (out of memory, device error). Not expected on valid input.
    #[error("computation failed: {}", plain(.0))]
    Compute(#[from] candle_core::Error),
}

/// A candle error's message without the backtrace candle attaches when `RUST_BACKTRACE` is
/// set (`Error::bt()`): users get one line naming the problem, whatever their shell says.
pub fn plain(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => plain(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", plain(inner)),
        other => other.to_string(),
    }
}

/// `s` with control characters escaped (`\u{1}`) and cut to its first 1,000 characters:
/// text that may come from a file's bytes (a tensor name, a tokenizer error) must not reach
/// a terminal raw, nor flood it.
pub fn printable(s: &str) -> String {
    const MAX: usize = 1000;
    let n = s.chars().count();
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if n > MAX {
        out.push_str(&format!("… ({} more characters)", n - MAX));
    }
    out
}

thread_local! {
    /// Set while [`catch_panic`] runs: its panics become errors, so the hook stays quiet.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside a dependency's parser into `Err(message)`, silently:
/// user-supplied files must never abort the process or print a dependency's panic text.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info)
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no detail".into())
    })
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Turns an I/O error on `path` into [`Error::OutputIo`]: the one way every writer
    /// names the file it could not write (`.map_err(Error::output(&path))`).
    pub fn output(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + use<> {
        let path = path.to_path_buf();
        move |source| Error::OutputIo {
            path: path.clone(),
            source,
        }
    }

    /// The process exit code for this error (see the README's "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InputIo { .. } | Error::InvalidInput { .. } | Error::EmptyInput(_) => 3,
            Error::ModelIo { .. } | Error::InvalidModel { .. } | Error::UnsupportedModel { .. } => {
                4
            }
            Error::Usage(_) | Error::Device(_) => 2,
            Error::Server { .. } => 6,
            Error::Tokenizer { .. }
            | Error::OutputIo { .. }
            | Error::Compute(_)
            | Error::Internal(_) => 1,
        }
    }
}
