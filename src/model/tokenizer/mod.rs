//! Tokenizers, built from the model file's own description so that ids match the reference
//! implementation exactly (llama.cpp for GGUF). All kinds end up as a `tokenizers::Tokenizer`
//! wrapped with the BOS policy; special-token strings inside a passage are always plain text.

mod gguf_bpe;
mod gguf_spm;

use crate::error::{Error, Result};
use crate::model::gguf::Gguf;
use sha2::{Digest, Sha256};

/// A model's tokenizer with its BOS policy.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The BOS id prepended to every passage, if the model's tokenizer adds one.
    bos: Option<u32>,
    /// Human-readable kind, e.g. `gguf gpt2 (pre = smollm)`.
    kind: String,
    /// sha256 over the vocabulary (pieces in id order): two models share a vocabulary iff
    /// their hashes are equal.
    vocab_hash: String,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("bos", &self.bos)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let model = g.str("tokenizer.ggml.model")?;
        let tokens = g.str_array("tokenizer.ggml.tokens")?;
        let add_bos = g.bool_or("tokenizer.ggml.add_bos_token", false)?;
        let bos = if add_bos {
            let id = g.u64("tokenizer.ggml.bos_token_id")?;
            if id as usize >= tokens.len() {
                return Err(g.invalid(format!("bos_token_id {id} is outside the vocabulary")));
            }
            Some(id as u32)
        } else {
            None
        };
        let (inner, kind) = match model {
            "gpt2" => {
                let pre = g.str_opt("tokenizer.ggml.pre")?.unwrap_or("default");
                (
                    gguf_bpe::build(g, &tokens, pre)?,
                    format!("gguf gpt2 byte-level BPE (pre = {pre})"),
                )
            }
            "llama" => (
                gguf_spm::build(g, &tokens)?,
                "gguf SentencePiece (llama) with byte fallback".to_string(),
            ),
            other => {
                return Err(g.unsupported(format!(
                    "tokenizer.ggml.model = {other} is not supported (supported: gpt2, llama)"
                )))
            }
        };
        let mut h = Sha256::new();
        for t in &tokens {
            h.update(t.as_bytes());
            h.update([0u8]);
        }
        Ok(Tokenizer {
            inner,
            bos,
            kind,
            vocab_hash: hex(&h.finalize()),
            vocab_size: tokens.len(),
        })
    }

    /// Loads a Hugging Face `tokenizer.json`. The BOS policy is the file's own: whatever its
    /// post-processor puts before the text (checked once on a probe text) is prepended;
    /// anything it appends (an EOS) is not, since it is not part of the passage.
    pub fn from_json_file(path: &std::path::Path) -> Result<Self> {
        let invalid = |message: String| Error::InvalidModel {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(invalid("tokenizer.json is missing".into()));
        }
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| invalid(format!("cannot read the tokenizer: {e}")))?;
        inner.set_encode_special_tokens(true);
        let probe = |special: bool| -> Result<Vec<u32>> {
            Ok(inner
                .encode_fast("a", special)
                .map_err(|e| invalid(format!("tokenizer fails on a probe text: {e}")))?
                .get_ids()
                .to_vec())
        };
        let (with, without) = (probe(true)?, probe(false)?);
        let lead = with
            .windows(without.len().max(1))
            .position(|w| w == without.as_slice())
            .unwrap_or(0);
        let bos = match &with[..lead] {
            [] => None,
            [b] => Some(*b),
            more => {
                return Err(Error::UnsupportedModel {
                    path: path.to_path_buf(),
                    message: format!(
                        "the tokenizer prepends {} tokens; only a single BOS is supported",
                        more.len()
                    ),
                })
            }
        };
        let mut vocab: Vec<(String, u32)> = inner.get_vocab(true).into_iter().collect();
        vocab.sort_by_key(|(_, id)| *id);
        let mut h = Sha256::new();
        for (t, _) in &vocab {
            h.update(t.as_bytes());
            h.update([0u8]);
        }
        let kind = match inner.get_model() {
            tokenizers::ModelWrapper::BPE(_) => "tokenizer.json BPE",
            tokenizers::ModelWrapper::Unigram(_) => "tokenizer.json Unigram",
            tokenizers::ModelWrapper::WordPiece(_) => "tokenizer.json WordPiece",
            tokenizers::ModelWrapper::WordLevel(_) => "tokenizer.json WordLevel",
        };
        Ok(Tokenizer {
            vocab_size: inner.get_vocab_size(true),
            inner,
            bos,
            kind: kind.into(),
            vocab_hash: hex(&h.finalize()),
        })
    }

    /// Token ids as scored: BOS (if the model adds one) followed by the text's tokens.
    /// Special-token strings in `text` are encoded as plain text.
    pub fn encode(&self, id: &str, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer {
                id: id.to_string(),
                message: e.to_string(),
            })?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        ids.extend(self.bos);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Byte span `[start, end)` in `text` of each of its tokens (no BOS), for cutting a
    /// document into passages on token boundaries.
    pub fn offsets(&self, id: &str, text: &str) -> Result<Vec<(usize, usize)>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                id: id.to_string(),
                message: e.to_string(),
            })?;
        Ok(enc.get_offsets().to_vec())
    }

    /// The text of each token (byte-level pieces decoded; a piece that is part of a UTF-8
    /// character shows as U+FFFD).
    pub fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| {
                self.inner
                    .decode(&[i], false)
                    .unwrap_or_else(|_| format!("<id {i}>"))
            })
            .collect()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn vocab_hash(&self) -> &str {
        &self.vocab_hash
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The BOS policy in words, for `inspect` and reports.
    pub fn bos_policy(&self) -> String {
        match self.bos {
            Some(id) => {
                format!("BOS id {id} prepended; every text token is scored (the BOS itself is not)")
            }
            None => "no BOS; the first text token is context only and is not scored".into(),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
