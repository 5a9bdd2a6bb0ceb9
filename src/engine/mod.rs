//! The engine seam: what scoring asks of a model. An engine turns sequences (token ids, or
//! text that the engine tokenises itself) into per-token statistics of every scored
//! position; everything above it — scores, calibration, `eval`, `dataset-test`, `scan` — is
//! the same whichever engine computed them.
//!
//! - [`local::LocalEngine`]: miascan's own forward (tokenizer + network + LM-head
//!   statistics, CPU or CUDA). Exact: the full next-token distribution at every position.
//! - [`remote::RemoteEngine`]: an OpenAI-compatible server (vLLM, SGLang, hosted APIs) that
//!   returns the log-probabilities of prompt tokens. The server tokenises; only the actual
//!   token's log-prob and the top few alternatives come back, so scores that need the whole
//!   distribution (Min-K%++'s mean and spread, entropies) are not available through it
//!   ([`Engine::full_distribution`]).
//!
//! **Scored positions**, for both: with tokens `t_0 … t_{n-1}` as the model reads them (a BOS
//! first if the model adds one), positions `1 … n-1` are scored; the first token is context.

pub mod local;
pub mod remote;

use crate::error::Result;
use crate::model::{ModelIdentity, Tokenizer};
use crate::stats::TokenStat;

pub use local::{LocalEngine, PrefixFit};
pub use remote::{is_url, RemoteEngine};

/// One sequence to score.
#[derive(Debug, Clone, PartialEq)]
pub enum Seq {
    /// Token ids as the model reads them (BOS included), with the byte span of each text
    /// token when known (empty otherwise).
    Tokens {
        ids: Vec<u32>,
        spans: Vec<(usize, usize)>,
    },
    /// Text the engine tokenises itself (a server).
    Text(String),
}

impl Seq {
    /// Tokens, or an estimate for text (4 bytes a token): what a group's budget counts.
    pub fn tokens(&self) -> usize {
        match self {
            Seq::Tokens { ids, .. } => ids.len(),
            Seq::Text(t) => t.len() / 4 + 1,
        }
    }
}

/// A scored sequence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    /// The tokens as the model read them, the first (context) included.
    pub ids: Vec<u32>,
    /// How many leading ids are not text (a BOS): `spans[i]` is the span of
    /// `ids[text_from + i]`.
    pub text_from: usize,
    /// Byte span of each text token in the text (empty when unknown).
    pub spans: Vec<(usize, usize)>,
    /// The token strings as the engine renders them, when it renders them (a server).
    pub tokens: Option<Vec<String>>,
    /// Statistics of positions `1 … n-1`; for an engine that reads every sequence after a
    /// prefix ([`LocalEngine::conditioned_on`]), of every text token (`text_from … n-1`).
    pub stats: Vec<TokenStat>,
}

/// Every sequence's statistics, or the first sequence's error: for callers that need all of
/// them (`tokenize`, a run that stops at the first failure).
pub fn all_scored(each: Vec<Result<Scored>>) -> Result<Vec<Scored>> {
    each.into_iter().collect()
}

/// A model that scores sequences: the seam between the scoring pipeline and what runs the
/// model.
pub trait Engine: Send + Sync {
    /// What the model is: name, a hash of its weights (local) or a fingerprint of its
    /// answers (server), how it computes.
    fn identity(&self) -> &ModelIdentity;
    /// The local tokenizer, when the engine has one: ids are then known before scoring, and
    /// [`Seq::Tokens`] is what it scores. `None`: give it [`Seq::Text`].
    fn tokenizer(&self) -> Option<&Tokenizer>;
    /// Statistics of positions `1 … n-1` of each sequence, in order. The outer error stops
    /// the run (a local failure, a bug); an inner one is that sequence's alone — a server
    /// request that kept failing fails the prompts it carried, not the others of the
    /// group, so a scan lists exactly those passages as failed.
    fn score(&self, seqs: Vec<Seq>) -> Result<Vec<Result<Scored>>>;
    /// Whether `mu`, `sigma` and `rank` of [`TokenStat`] are computed over the whole
    /// vocabulary. Without it only `logp` and `top1` are exact and the scores that need the
    /// rest are refused by name.
    fn full_distribution(&self) -> bool;
    /// The first-token policy in words.
    fn bos_policy(&self) -> String;
    /// A key equal for two engines that tokenise alike (token-level comparisons of a
    /// target and a reference need it).
    fn vocab_key(&self) -> String;
    /// The text of tokens (for per-token details).
    fn token_strings(&self, ids: &[u32]) -> Vec<String>;
    /// Whether `n` passages of `tokens` tokens fill a group (what is scored at once).
    fn group_full(&self, n: usize, tokens: usize) -> bool;
    /// Whether [`Seq::Tokens`] can be scored (a server that gives no token ids cannot take
    /// them back: extraction windows are then not scored).
    fn scores_ids(&self) -> bool {
        true
    }
}
