//! GGUF `tokenizer.ggml.model = gpt2`: byte-level BPE from the file's tokens and merges,
//! with the pre-tokenizer llama.cpp selects by `tokenizer.ggml.pre`.
//!
//! Only `pre` values whose behaviour has been checked against llama.cpp token for token are
//! accepted; an unknown one is refused by name rather than guessed (candle's
//! `TokenizerFromGguf` falls back to a ByteLevel that adds a prefix space: wrong ids).

use crate::error::Result;
use crate::model::gguf::Gguf;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token type of control tokens (`<|im_start|>`, ...).
const TOKEN_TYPE_CONTROL: i64 = 3;

/// `pre` values this module implements, with what llama.cpp does for them.
pub const SUPPORTED_PRE: &[&str] = &["smollm"];

pub(super) fn build(g: &Gguf, tokens: &[&str], pre: &str) -> Result<Tokenizer> {
    let pre_tokenizer = match pre {
        // llama.cpp LLAMA_VOCAB_PRE_TYPE_SMOLLM: every digit on its own, then the GPT-2
        // regex, byte-level, no prefix space.
        "smollm" => Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, true)),
        ]),
        other => {
            return Err(g.unsupported(format!(
                "tokenizer.ggml.pre = {other} is not supported for gpt2 tokenizers \
                 (supported: {}); refusing to guess its pre-tokenizer",
                SUPPORTED_PRE.join(", ")
            )))
        }
    };
    let vocab: ahash::AHashMap<String, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    if vocab.len() != tokens.len() {
        return Err(g.invalid(format!(
            "tokenizer.ggml.tokens has {} duplicate entries",
            tokens.len() - vocab.len()
        )));
    }
    let merges = g
        .str_array("tokenizer.ggml.merges")?
        .into_iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                Ok((a.to_string(), b.to_string()))
            }
            _ => Err(g.invalid(format!("tokenizer.ggml.merges[{i}] = {m:?} is not 'a b'"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| g.invalid(format!("cannot build the BPE model: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // Control tokens are known to the tokenizer (so they decode by name) but a literal
    // "<|im_start|>" in a passage is text, as in llama.cpp with parse_special = false.
    let types = g.int_array("tokenizer.ggml.token_type")?;
    let specials: Vec<AddedToken> = types
        .iter()
        .zip(tokens)
        .filter(|(t, _)| **t == TOKEN_TYPE_CONTROL)
        .map(|(_, s)| AddedToken::from(s.to_string(), true))
        .collect();
    tok.add_special_tokens(specials)
        .map_err(|e| g.invalid(format!("cannot register control tokens: {e}")))?;
    tok.set_encode_special_tokens(true);
    Ok(tok)
}
