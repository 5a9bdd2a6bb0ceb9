//! GGUF `tokenizer.ggml.model = llama`: a SentencePiece vocabulary (pieces, scores, token
//! types; no merges), as Gemma 3 ships it. Rebuilt as a `tokenizers` BPE the way Hugging
//! Face's SentencePiece converter does, which reproduces llama.cpp's ids:
//!
//! - vocabulary: the pieces with their GGUF ids;
//! - merges: every split of a normal piece into two normal in-vocabulary pieces, ranked by
//!   the merged piece's score (highest first; ties keep vocabulary order, then the ids of
//!   the left and right parts);
//! - byte fallback (`<0x..>` pieces) for characters outside the vocabulary;
//! - normalizer: spaces become `▁`, no prefix space (`add_space_prefix = false` is required);
//! - user-defined pieces (newline/space/tab runs, HTML tags) are matched in the raw text,
//!   control pieces (`<bos>`, `<start_of_turn>`…) are known but never matched in text.

use crate::error::Result;
use crate::model::gguf::Gguf;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::{AddedToken, Tokenizer};

const NORMAL: i64 = 1;
const UNKNOWN: i64 = 2;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;
const BYTE: i64 = 6;

pub(super) fn build(g: &Gguf, tokens: &[&str]) -> Result<Tokenizer> {
    if g.bool_or("tokenizer.ggml.add_space_prefix", true)? {
        return Err(g.unsupported(
            "SentencePiece tokenizer with add_space_prefix = true is not supported yet".into(),
        ));
    }
    let scores = g.f32_array("tokenizer.ggml.scores")?;
    let types = g.int_array("tokenizer.ggml.token_type")?;
    if scores.len() != tokens.len() || types.len() != tokens.len() {
        return Err(g.invalid(format!(
            "tokenizer arrays disagree: {} tokens, {} scores, {} types",
            tokens.len(),
            scores.len(),
            types.len()
        )));
    }
    if let Some((i, t)) = types
        .iter()
        .enumerate()
        .find(|(_, t)| ![NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE].contains(t))
    {
        return Err(g.unsupported(format!("token {i} has unknown token type {t}")));
    }
    let normal: HashMap<&str, u32> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, t))| **t == NORMAL)
        .map(|(i, (s, _))| (*s, i as u32))
        .collect();
    // (score, merged id, left id, right id) for every split of every normal piece
    let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (piece, &id) in &normal {
        for (cut, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(cut);
            if let (Some(&li), Some(&ri)) = (normal.get(l), normal.get(r)) {
                ranked.push((scores[id as usize], id, li, ri));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3)))
    });
    let merges: Vec<(String, String)> = ranked
        .iter()
        .map(|&(_, _, l, r)| {
            (
                tokens[l as usize].to_string(),
                tokens[r as usize].to_string(),
            )
        })
        .collect();
    let mut vocab = ahash::AHashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        // first occurrence wins, as in SentencePiece
        vocab.entry(t.to_string()).or_insert(i as u32);
    }
    let unk_id = g.usize_or("tokenizer.ggml.unknown_token_id", 0)?;
    let unk = tokens.get(unk_id).ok_or_else(|| {
        g.invalid(format!(
            "unknown_token_id {unk_id} is outside the vocabulary"
        ))
    })?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(unk.to_string())
        .byte_fallback(true)
        .fuse_unk(true)
        .build()
        .map_err(|e| g.invalid(format!("cannot build the SentencePiece model: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let space = Replace::new(" ", "▁").map_err(|e| g.invalid(format!("normalizer: {e}")))?;
    tok.with_normalizer(Some(space))
        .map_err(|e| g.invalid(format!("normalizer: {e}")))?;
    let meta = Replace::new("▁", " ").map_err(|e| g.invalid(format!("decoder: {e}")))?;
    tok.with_decoder(Some(DecoderSequence::new(vec![
        DecoderWrapper::Replace(meta),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ])));
    let user: Vec<AddedToken> = types
        .iter()
        .zip(tokens)
        .filter(|(t, _)| **t == USER_DEFINED)
        .map(|(_, s)| AddedToken::from(s.to_string(), false).normalized(false))
        .collect();
    tok.add_tokens(user)
        .map_err(|e| g.invalid(format!("cannot register user-defined tokens: {e}")))?;
    let control: Vec<AddedToken> = types
        .iter()
        .zip(tokens)
        .filter(|(t, _)| **t == CONTROL)
        .map(|(_, s)| AddedToken::from(s.to_string(), true))
        .collect();
    tok.add_special_tokens(control)
        .map_err(|e| g.invalid(format!("cannot register control tokens: {e}")))?;
    tok.set_encode_special_tokens(true);
    Ok(tok)
}
