//! Tokenizers, built from the model file's own description so that ids match the reference
//! implementation exactly: llama.cpp for GGUF files ([`gguf_vocab`]), Hugging Face
//! `tokenizers` for `tokenizer.json`. Special-token strings inside a passage are always
//! plain text; the BOS policy is the file's own.

mod byte_level;
mod gguf_vocab;
pub mod pre;

use crate::error::{Error, Result};
use crate::model::gguf::Gguf;
use gguf_vocab::GgufVocab;
use sha2::{Digest, Sha256};
use std::path::Path;

enum Engine {
    Gguf(Box<GgufVocab>),
    Json(Box<tokenizers::Tokenizer>),
}

/// A model's tokenizer with its BOS policy.
pub struct Tokenizer {
    engine: Engine,
    /// The BOS id prepended to every passage, if the model's tokenizer adds one.
    bos: Option<u32>,
    /// Human-readable kind, e.g. `gguf gpt2 byte-level BPE (pre = smollm)`.
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

fn vocab_hash<'a>(pieces: impl Iterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for t in pieces {
        h.update(t.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

impl Tokenizer {
    /// The tokenizer of what `--model` names, without loading any weights: a `.gguf` file
    /// (vocabulary-only files too), a `tokenizer.json`, a checkpoint folder, or a hub id.
    pub fn open(spec: &str, offline: bool) -> Result<Self> {
        match crate::model::source::ModelSpec::parse(spec) {
            crate::model::source::ModelSpec::Local(p) => {
                if p.is_dir() {
                    Tokenizer::from_json_file(&p.join("tokenizer.json"))
                } else if p.extension().is_some_and(|e| e == "json") {
                    Tokenizer::from_json_file(&p)
                } else if !p.exists() {
                    Err(Error::ModelIo {
                        path: p.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    })
                } else {
                    Tokenizer::from_gguf(&Gguf::open(&p)?)
                }
            }
            crate::model::source::ModelSpec::Hub { repo, revision } => {
                let snap = crate::model::source::resolve_hub(
                    &repo,
                    &revision,
                    offline,
                    crate::model::source::Need::Tokenizer,
                )?;
                Tokenizer::from_json_file(&snap.dir.join("tokenizer.json"))
            }
        }
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let v = GgufVocab::from_gguf(g)?;
        Ok(Tokenizer {
            bos: v.bos,
            kind: v.kind.clone(),
            vocab_hash: vocab_hash(v.texts().iter().map(String::as_str)),
            vocab_size: v.len(),
            engine: Engine::Gguf(Box::new(v)),
        })
    }

    /// Loads a Hugging Face `tokenizer.json`. The BOS policy is the file's own: whatever its
    /// post-processor puts before the text (checked once on a probe text) is prepended;
    /// anything it appends (an EOS) is not, since it is not part of the passage.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let invalid = |message: String| Error::InvalidModel {
            path: path.to_path_buf(),
            message: crate::error::printable(&message),
        };
        if !path.is_file() {
            return Err(invalid("tokenizer.json is missing".into()));
        }
        let mut inner = crate::error::catch_panic(|| tokenizers::Tokenizer::from_file(path))
            .map_err(|p| invalid(format!("malformed tokenizer (the parser gave up: {p})")))?
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
        let kind = match inner.get_model() {
            tokenizers::ModelWrapper::BPE(_) => "tokenizer.json BPE",
            tokenizers::ModelWrapper::Unigram(_) => "tokenizer.json Unigram",
            tokenizers::ModelWrapper::WordPiece(_) => "tokenizer.json WordPiece",
            tokenizers::ModelWrapper::WordLevel(_) => "tokenizer.json WordLevel",
        };
        Ok(Tokenizer {
            vocab_size: inner.get_vocab_size(true),
            engine: Engine::Json(Box::new(inner)),
            bos,
            kind: kind.into(),
            vocab_hash: vocab_hash(vocab.iter().map(|(t, _)| t.as_str())),
        })
    }

    /// The text's tokens (no BOS) with the byte span `[start, end)` of `text` each covers.
    /// Special-token strings in `text` are encoded as plain text.
    pub fn pieces(&self, id: &str, text: &str) -> Result<Vec<(u32, usize, usize)>> {
        let named = |message: String| Error::Tokenizer {
            id: id.to_string(),
            message,
        };
        match &self.engine {
            Engine::Gguf(v) => v.encode(text).map_err(|e| match e {
                Error::Tokenizer { message, .. } => named(message),
                other => other,
            }),
            Engine::Json(t) => {
                let enc = t.encode(text, false).map_err(|e| named(e.to_string()))?;
                Ok(enc
                    .get_ids()
                    .iter()
                    .zip(enc.get_offsets())
                    .map(|(&i, &(a, b))| (i, a, b))
                    .collect())
            }
        }
    }

    /// Token ids as scored: BOS (if the model adds one) followed by the text's tokens.
    /// Special-token strings in `text` are encoded as plain text.
    pub fn encode(&self, id: &str, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.extend(self.bos);
        match &self.engine {
            Engine::Gguf(_) => ids.extend(self.pieces(id, text)?.into_iter().map(|p| p.0)),
            Engine::Json(t) => {
                let enc = t.encode_fast(text, false).map_err(|e| Error::Tokenizer {
                    id: id.to_string(),
                    message: e.to_string(),
                })?;
                ids.extend_from_slice(enc.get_ids());
            }
        }
        Ok(ids)
    }

    /// Byte span `[start, end)` in `text` of each of its tokens (no BOS), for cutting a
    /// document into passages on token boundaries.
    pub fn offsets(&self, id: &str, text: &str) -> Result<Vec<(usize, usize)>> {
        Ok(self
            .pieces(id, text)?
            .into_iter()
            .map(|(_, a, b)| (a, b))
            .collect())
    }

    /// The text of each token (byte-level pieces decoded; a piece that is part of a UTF-8
    /// character shows as U+FFFD).
    pub fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| match &self.engine {
                Engine::Gguf(v) => v.token_string(i),
                Engine::Json(t) => t
                    .decode(&[i], false)
                    .unwrap_or_else(|_| format!("<id {i}>")),
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

/// What tokenizers load, in words (for `inspect --supported` and the README): each entry is
/// `(kind, detail)`.
pub fn support() -> Vec<(String, String)> {
    let mut out = vec![
        (
            "gguf llama (SentencePiece)".to_string(),
            "with or without add_space_prefix; byte fallback; user-defined pieces cut out \
             (Llama 2, Mistral, Phi-3, Baichuan, Gemma 2/3)"
                .to_string(),
        ),
        (
            "gguf gemma4 (BPE on UTF-8)".to_string(),
            "Gemma 4's vocabulary".to_string(),
        ),
    ];
    for f in pre::families().into_iter().filter(|f| f.byte_encode) {
        out.push((
            format!("gguf gpt2 (byte-level BPE), pre = {}", f.names.join(" | ")),
            format!("{} expression(s)", f.regexes.len()),
        ));
    }
    out.push((
        "tokenizer.json".to_string(),
        "any Hugging Face fast tokenizer (BPE, Unigram, WordPiece, WordLevel)".to_string(),
    ));
    out
}

/// What is refused, in words.
pub fn refused() -> Vec<String> {
    vec![
        "gguf tokenizer models bert, t5 (encoders), rwkv, plamo2 and any other name".into(),
        "gguf gpt2 pre-tokenizers not listed above (tekken, gpt-4o, chatglm-bpe, kimi-k2, \
         …): refused by name rather than guessed"
            .into(),
    ]
}
