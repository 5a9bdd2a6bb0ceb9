//! The tokenizer a GGUF file describes (`tokenizer.ggml.*`), with llama.cpp's semantics: the
//! ids must be the ones llama.cpp gives (`llama_tokenize` with `parse_special = false`), since
//! those are what the model was run on by the people who made the file.
//!
//! Written here rather than assembled from `tokenizers` parts because several of llama.cpp's
//! rules have no counterpart there: the SentencePiece space prefix goes only on the first text
//! fragment (and after a user-defined token), SentencePiece merges are chosen by the merged
//! piece's score among *all* pieces, user-defined pieces are cut out of the raw text longest
//! first (with Phi-3's right-strip), a byte-level piece missing from the vocabulary is dropped,
//! Gemma 4 runs BPE on raw UTF-8 with whole newline runs. Every token carries the byte span of
//! the input it covers (for cutting documents on token boundaries).
//!
//! Token types (GGUF): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.

use super::byte_level;
use super::pre::{self, PreTokenizer};
use crate::error::{Error, Result};
use crate::model::gguf::Gguf;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;
const BYTE: i64 = 6;

/// One token of an encoding: its id and the byte span `[start, end)` of the input it covers
/// (empty for a token that stands for nothing in the input, e.g. a space prefix).
pub type Piece = (u32, usize, usize);

enum Algorithm {
    /// SentencePiece (`tokenizer.ggml.model = llama`).
    Spm { add_space_prefix: bool },
    /// BPE with a pre-tokenizer (`gpt2`, `gemma4`).
    Bpe {
        pre: PreTokenizer,
        regexes: Vec<fancy_regex::Regex>,
        /// `"left\0right"` → merge rank (the merge `"left right"` of the file).
        ranks: ahash::AHashMap<String, u32>,
        escape_spaces: bool,
    },
}

/// A GGUF vocabulary and the algorithm that tokenises with it.
pub struct GgufVocab {
    algorithm: Algorithm,
    texts: Vec<String>,
    types: Vec<i64>,
    scores: Vec<f32>,
    to_id: ahash::AHashMap<String, u32>,
    /// User-defined pieces cut out of the raw text, longest first, with whether the
    /// whitespace after them is dropped.
    cut_out: Vec<(u32, bool)>,
    /// The BOS llama.cpp adds with `add_special = true`.
    pub bos: Option<u32>,
    /// e.g. `gguf gpt2 byte-level BPE (pre = llama-bpe)`.
    pub kind: String,
}

impl GgufVocab {
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let model = g.str("tokenizer.ggml.model")?;
        let mut texts: Vec<String> = g
            .str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(String::from)
            .collect();
        let n = texts.len();
        if n == 0 {
            return Err(g.invalid("tokenizer.ggml.tokens is empty".into()));
        }
        let types = if g.has("tokenizer.ggml.token_type") {
            g.int_array("tokenizer.ggml.token_type")?
        } else {
            vec![1; n]
        };
        let scores = if g.has("tokenizer.ggml.scores") {
            g.f32_array("tokenizer.ggml.scores")?
        } else {
            vec![0.0; n]
        };
        if types.len() != n || scores.len() != n {
            return Err(g.invalid(format!(
                "tokenizer arrays disagree: {n} tokens, {} types, {} scores",
                types.len(),
                scores.len()
            )));
        }
        let mut to_id = ahash::AHashMap::with_capacity(n);
        for (i, t) in texts.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            // the last of duplicated pieces wins, as in llama.cpp
            to_id.insert(t.clone(), i as u32);
        }
        let pre_name = g.str_opt("tokenizer.ggml.pre")?;
        let (algorithm, add_bos_default, kind) = match model {
            "llama" => {
                let add_space_prefix = g.bool_or("tokenizer.ggml.add_space_prefix", true)?;
                (
                    Algorithm::Spm { add_space_prefix },
                    true,
                    format!(
                        "gguf SentencePiece (llama), {} space prefix, byte fallback",
                        if add_space_prefix { "with" } else { "no" }
                    ),
                )
            }
            "gpt2" | "gemma4" => {
                let name = if model == "gemma4" {
                    "gemma4"
                } else {
                    pre_name.unwrap_or("default")
                };
                let pre = pre::find(name).ok_or_else(|| {
                    g.unsupported(format!(
                        "tokenizer.ggml.pre = {} is not supported (supported: {}); refusing \
                         to guess its pre-tokenizer",
                        escape(name),
                        pre::supported().join(", ")
                    ))
                })?;
                let regexes = pre
                    .regexes
                    .iter()
                    .map(|r| {
                        fancy_regex::Regex::new(r)
                            .map_err(|e| g.invalid(format!("pre-tokenizer {name}: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let merges = g.str_array("tokenizer.ggml.merges")?;
                let mut ranks = ahash::AHashMap::with_capacity(merges.len());
                for (i, m) in merges.iter().enumerate() {
                    // llama.cpp splits at the first space after the first byte
                    let cut = m.bytes().skip(1).position(|c| c == b' ').map(|p| p + 1);
                    let Some(cut) = cut else {
                        return Err(g.invalid(format!(
                            "tokenizer.ggml.merges[{i}] = {} is not 'a b'",
                            escape(m)
                        )));
                    };
                    let key = format!("{}\0{}", &m[..cut], &m[cut + 1..]);
                    ranks.entry(key).or_insert(i as u32);
                }
                let add_bos = pre.add_bos;
                let kind = if pre.byte_encode {
                    format!("gguf {model} byte-level BPE (pre = {name})")
                } else {
                    format!("gguf {model} BPE on UTF-8 with byte fallback (pre = {name})")
                };
                let escape_spaces = !pre.byte_encode;
                (
                    Algorithm::Bpe {
                        pre,
                        regexes,
                        ranks,
                        escape_spaces,
                    },
                    add_bos,
                    kind,
                )
            }
            other => {
                return Err(g.unsupported(format!(
                    "tokenizer.ggml.model = {} is not supported (supported: llama, gpt2, \
                     gemma4; bert and t5 vocabularies are encoders, not causal models)",
                    escape(other)
                )))
            }
        };
        let force_bos =
            matches!(&algorithm, Algorithm::Bpe { pre, .. } if pre.names.contains(&"gemma4"));
        let add_bos = force_bos || g.bool_or("tokenizer.ggml.add_bos_token", add_bos_default)?;
        let bos = if add_bos {
            let default = if model == "llama" { 1 } else { 11 };
            let id = g.u64("tokenizer.ggml.bos_token_id").or_else(|e| {
                if g.has("tokenizer.ggml.bos_token_id") {
                    Err(e)
                } else {
                    Ok(default)
                }
            })?;
            if id as usize >= n {
                return Err(g.invalid(format!(
                    "tokenizer.ggml.bos_token_id = {id} is outside the vocabulary of {n}"
                )));
            }
            Some(id as u32)
        } else {
            None
        };
        // Phi-3's converter marks its added pieces to swallow the whitespace after them.
        let name = g
            .str_opt("general.name")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_lowercase();
        let phi3 = name.contains("phi-3") || name.contains("phi3");
        let mut cut_out: Vec<(u32, bool)> = cut_out_ids(g, &types, &to_id)
            .into_iter()
            .map(|i| (i, phi3))
            .collect();
        cut_out.sort_by_key(|(i, _)| (Reverse(texts[*i as usize].len()), *i));
        Ok(GgufVocab {
            algorithm,
            texts,
            types,
            scores,
            to_id,
            cut_out,
            bos,
            kind,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// The pieces in id order (for the vocabulary hash).
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// The tokens of `text` (no BOS) with their byte spans.
    pub fn encode(&self, text: &str) -> Result<Vec<Piece>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut prev_special = true;
        for frag in self.partition(text) {
            match frag {
                Fragment::Token(id, a, b) => {
                    out.push((id, a, b));
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    match &self.algorithm {
                        Algorithm::Spm { add_space_prefix } => {
                            let w = Work::new(text, a, b, *add_space_prefix && prev_special, true);
                            self.spm(&w, &mut out)?;
                        }
                        Algorithm::Bpe {
                            pre,
                            regexes,
                            ranks,
                            escape_spaces,
                        } => {
                            let w = Work::new(text, a, b, false, *escape_spaces);
                            self.bpe(&w, pre, regexes, ranks, &mut out)?;
                        }
                    }
                    prev_special = false;
                }
            }
        }
        Ok(out)
    }

    /// Cuts the user-defined pieces out of the raw text, as llama.cpp's
    /// `tokenizer_st_partition` does with `parse_special = false`.
    fn partition(&self, text: &str) -> Vec<Fragment> {
        let mut frags = vec![Fragment::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        for &(id, rstrip) in &self.cut_out {
            let piece = self.texts[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                let Fragment::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = text[a..b].find(piece) {
                    let m = a + at;
                    if m > a {
                        next.push(Fragment::Text(a, m));
                    }
                    next.push(Fragment::Token(id, m, m + piece.len()));
                    a = m + piece.len();
                    if rstrip {
                        // C's isspace: space, \t, \n, \v, \f, \r
                        while a < b && matches!(text.as_bytes()[a], b' ' | b'\t'..=b'\r') {
                            a += 1;
                        }
                    }
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }

    /// SentencePiece: start from characters, repeatedly merge the neighbouring pair whose
    /// concatenation is a piece with the highest score (leftmost on ties); what is left
    /// and is not a piece becomes byte pieces.
    fn spm(&self, w: &Work, out: &mut Vec<Piece>) -> Result<()> {
        let mut syms = Symbols::chars(&w.text, 0, w.text.len());
        let mut heap: BinaryHeap<SpmPair> = BinaryHeap::new();
        let pair = |syms: &Symbols, l: usize, r: usize| -> Option<SpmPair> {
            let s = syms.get(l).start;
            let e = syms.get(r).end;
            let id = *self.to_id.get(&w.text[s..e])?;
            Some(SpmPair {
                score: self.scores[id as usize],
                left: l,
                right: r,
                size: e - s,
            })
        };
        for i in 1..syms.len() {
            heap.extend(pair(&syms, i - 1, i));
        }
        while let Some(p) = heap.pop() {
            let (l, r) = (syms.get(p.left), syms.get(p.right));
            if l.dead() || r.dead() || (l.end - l.start) + (r.end - r.start) != p.size {
                continue;
            }
            syms.merge(p.left, p.right);
            if let Some(prev) = syms.get(p.left).prev {
                heap.extend(pair(&syms, prev, p.left));
            }
            if let Some(next) = syms.get(p.left).next {
                heap.extend(pair(&syms, p.left, next));
            }
        }
        for s in syms.live() {
            let t = &w.text[s.start..s.end];
            if let Some(&id) = self.to_id.get(t) {
                out.push((id, w.orig(s.start), w.orig(s.end)));
                continue;
            }
            for k in s.start..s.end {
                let id = self
                    .byte_token(w.text.as_bytes()[k])
                    .ok_or_else(|| Error::Tokenizer {
                        id: String::new(),
                        message: format!(
                            "the vocabulary has no byte piece for 0x{:02X}",
                            w.text.as_bytes()[k]
                        ),
                    })?;
                out.push((id, w.orig(k), w.orig(k + 1)));
            }
        }
        Ok(())
    }

    fn byte_token(&self, b: u8) -> Option<u32> {
        if let Some(&id) = self.to_id.get(format!("<0x{b:02X}>").as_str()) {
            return Some(id);
        }
        if b.is_ascii() {
            return self.to_id.get((b as char).to_string().as_str()).copied();
        }
        None
    }

    /// BPE: split by the pre-tokenizer, then in each piece repeatedly merge the neighbouring
    /// pair with the lowest merge rank (leftmost on ties).
    fn bpe(
        &self,
        w: &Work,
        pre: &PreTokenizer,
        regexes: &[fancy_regex::Regex],
        ranks: &ahash::AHashMap<String, u32>,
        out: &mut Vec<Piece>,
    ) -> Result<()> {
        let mut words = vec![(0usize, w.text.len())];
        for re in regexes {
            let mut next = Vec::with_capacity(words.len() * 2);
            for (a, b) in words {
                let piece = &w.text[a..b];
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let m = m.map_err(|e| Error::Tokenizer {
                        id: String::new(),
                        message: format!("pre-tokenizer: {e}"),
                    })?;
                    if m.start() > last {
                        next.push((a + last, a + m.start()));
                    }
                    if m.end() > m.start() {
                        next.push((a + m.start(), a + m.end()));
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push((a + last, b));
                }
            }
            words = next;
        }
        let mut key = String::new();
        let mut enc = String::new();
        let mut pos: Vec<usize> = Vec::new();
        for (a, b) in words {
            // the text the vocabulary is written in, and where each unit of the word is in it
            let (text, units): (&str, Symbols) = if pre.byte_encode {
                enc.clear();
                pos.clear();
                for &byte in &w.text.as_bytes()[a..b] {
                    pos.push(enc.len());
                    enc.push(byte_level::char_of(byte));
                }
                pos.push(enc.len());
                (enc.as_str(), Symbols::chars(&enc, 0, enc.len()))
            } else {
                (&w.text[a..b], Symbols::chars(&w.text[a..b], 0, b - a))
            };
            // input byte of a unit boundary in `text`
            let at = |k: usize| -> usize {
                if pre.byte_encode {
                    a + pos.partition_point(|&p| p < k)
                } else {
                    a + k
                }
            };
            let whole = (pre.ignore_merges
                || (pre.whole_newlines && text.bytes().all(|c| c == b'\n')))
                && self.to_id.contains_key(text);
            let mut syms = units;
            if whole {
                syms = Symbols::one(text.len());
            } else {
                let mut heap: BinaryHeap<Reverse<BpePair>> = BinaryHeap::new();
                let mut pair = |syms: &Symbols, l: usize, r: usize, heap: &mut BinaryHeap<_>| {
                    let (ls, rs) = (syms.get(l), syms.get(r));
                    key.clear();
                    key.push_str(&text[ls.start..ls.end]);
                    key.push('\0');
                    key.push_str(&text[rs.start..rs.end]);
                    if let Some(&rank) = ranks.get(key.as_str()) {
                        heap.push(Reverse((rank, l, r, ls.end - ls.start, rs.end - rs.start)));
                    }
                };
                for i in 1..syms.len() {
                    pair(&syms, i - 1, i, &mut heap);
                }
                while let Some(Reverse((_, l, r, ln, rn))) = heap.pop() {
                    let (ls, rs) = (syms.get(l), syms.get(r));
                    if ls.dead() || rs.dead() || ls.end - ls.start != ln || rs.end - rs.start != rn
                    {
                        continue;
                    }
                    syms.merge(l, r);
                    if let Some(prev) = syms.get(l).prev {
                        pair(&syms, prev, l, &mut heap);
                    }
                    if let Some(next) = syms.get(l).next {
                        pair(&syms, l, next, &mut heap);
                    }
                }
            }
            for s in syms.live() {
                let t = &text[s.start..s.end];
                if let Some(&id) = self.to_id.get(t) {
                    out.push((id, w.orig(at(s.start)), w.orig(at(s.end))));
                    continue;
                }
                // not a piece: its bytes one by one, each dropped if the vocabulary lacks
                // it (llama.cpp's behaviour)
                for k in s.start..s.end {
                    let byte = text.as_bytes()[k];
                    let id = if pre.byte_encode {
                        self.to_id
                            .get(std::str::from_utf8(&[byte]).unwrap_or(""))
                            .copied()
                    } else {
                        self.to_id.get(format!("<0x{byte:02X}>").as_str()).copied()
                    };
                    if let Some(id) = id {
                        let (x, y) = (at(k), at(k + 1).max(at(k)));
                        out.push((id, w.orig(x), w.orig(y)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The text a token stands for, for display: byte-level characters and `<0x..>` pieces
    /// turned back into bytes, `▁` into spaces; a partial UTF-8 character shows as U+FFFD.
    pub fn token_string(&self, id: u32) -> String {
        let Some(t) = self.texts.get(id as usize) else {
            return format!("<id {id}>");
        };
        let ty = self.types[id as usize];
        if ty == BYTE {
            if let Some(b) = parse_byte_piece(t) {
                return String::from_utf8_lossy(&[b]).into_owned();
            }
        }
        if ty == CONTROL || ty == USER_DEFINED {
            return t.clone();
        }
        match &self.algorithm {
            Algorithm::Bpe { pre, .. } if pre.byte_encode => {
                let bytes: Vec<u8> = t
                    .chars()
                    .flat_map(|c| match byte_level::byte_of(c) {
                        Some(b) => vec![b],
                        None => c.to_string().into_bytes(),
                    })
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => match parse_byte_piece(t) {
                Some(b) => String::from_utf8_lossy(&[b]).into_owned(),
                None => t.replace('▁', " "),
            },
        }
    }
}

fn parse_byte_piece(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Text from the file shown in a message: control characters and anything unusual escaped.
fn escape(s: &str) -> String {
    s.escape_debug().to_string()
}

/// A BPE merge candidate: (rank, left, right, left length, right length); lowest rank
/// first, then leftmost.
type BpePair = (u32, usize, usize, usize, usize);

enum Fragment {
    Text(usize, usize),
    Token(u32, usize, usize),
}

/// A fragment as the tokenizer sees it (space prefix added, spaces as `▁`), with the input
/// byte of each of its bytes.
struct Work {
    text: String,
    /// `orig[k]`: input byte where byte `k` of `text` comes from; `orig[len]` = end.
    orig: Vec<usize>,
}

impl Work {
    fn new(input: &str, a: usize, b: usize, prefix: bool, escape_spaces: bool) -> Work {
        let mut text = String::with_capacity(b - a + 4);
        let mut orig = Vec::with_capacity(b - a + 4);
        if prefix {
            text.push(if escape_spaces { '▁' } else { ' ' });
            orig.resize(text.len(), a);
        }
        for (i, c) in input[a..b].char_indices() {
            let at = a + i;
            if c == ' ' && escape_spaces {
                text.push('▁');
                orig.resize(text.len(), at);
            } else {
                text.push(c);
                orig.extend(at..at + c.len_utf8());
            }
        }
        orig.push(b);
        Work { text, orig }
    }

    /// Input byte of byte `k` of the text; at a token's end, where the token ends in the
    /// input (a `▁` standing for a space ends after that space, a space prefix is empty).
    fn orig(&self, k: usize) -> usize {
        self.orig[k]
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Sym {
    fn dead(&self) -> bool {
        self.end == self.start
    }
}

/// A doubly linked list of spans of a text, merged pairwise.
struct Symbols(Vec<Sym>);

impl Symbols {
    /// One symbol per character of `text[a..b]`.
    fn chars(text: &str, a: usize, b: usize) -> Symbols {
        let mut v: Vec<Sym> = Vec::with_capacity(b - a);
        for (i, c) in text[a..b].char_indices() {
            let k = v.len();
            v.push(Sym {
                start: a + i,
                end: a + i + c.len_utf8(),
                prev: k.checked_sub(1),
                next: None,
            });
            if k > 0 {
                v[k - 1].next = Some(k);
            }
        }
        Symbols(v)
    }

    fn one(len: usize) -> Symbols {
        Symbols(vec![Sym {
            start: 0,
            end: len,
            prev: None,
            next: None,
        }])
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, i: usize) -> Sym {
        self.0[i]
    }

    /// Merges symbol `r` into its left neighbour `l`.
    fn merge(&mut self, l: usize, r: usize) {
        let rs = self.0[r];
        self.0[l].end = rs.end;
        self.0[l].next = rs.next;
        self.0[r].start = rs.end;
        if let Some(n) = rs.next {
            self.0[n].prev = Some(l);
        }
    }

    fn live(&self) -> impl Iterator<Item = Sym> + '_ {
        self.0.iter().copied().filter(|s| !s.dead())
    }
}

/// A SentencePiece merge candidate: highest score first, then leftmost.
struct SpmPair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for SpmPair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for SpmPair {}
impl PartialOrd for SpmPair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for SpmPair {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then(o.left.cmp(&self.left))
            .then(o.right.cmp(&self.right))
    }
}
/// Token texts that llama.cpp's vocabulary loader (`llama_vocab::impl::load`, llama.cpp as
/// vendored by llama-cpp-python 0.3.36) treats as end-of-generation tokens and therefore
/// marks *control* whatever type the file gives them ("control-looking token ... its type
/// will be overridden"). A control token is never cut out of plain text, so a literal
/// `</s>` in a passage is text, not id 2, even where the file calls the piece user-defined
/// (Phi-3's vocabulary does).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Fill-in-the-middle token texts the loader looks for by category when the file names no
/// id for it (the metadata keys, new and deprecated), marking what it finds control too.
/// (It takes the first match in hash-map order; a vocabulary with two candidates of one
/// category that the file leaves non-control would differ here. None of the suite does.)
const FIM_TEXTS: &[(&[&str], &[&str])] = &[
    (
        &[
            "tokenizer.ggml.fim_pre_token_id",
            "tokenizer.ggml.prefix_token_id",
        ],
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
    ),
    (
        &[
            "tokenizer.ggml.fim_suf_token_id",
            "tokenizer.ggml.suffix_token_id",
        ],
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
    ),
    (
        &[
            "tokenizer.ggml.fim_mid_token_id",
            "tokenizer.ggml.middle_token_id",
        ],
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
    ),
    (
        &["tokenizer.ggml.fim_pad_token_id"],
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    ),
    (
        &["tokenizer.ggml.fim_rep_token_id"],
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
    ),
    (&["tokenizer.ggml.fim_sep_token_id"], &["<|file_sep|>"]),
];

/// The pieces cut out of plain text before the model's algorithm runs: those that end up
/// user-defined and neither control nor unknown after llama.cpp's loader has applied its
/// overrides (`tokenizer_st_partition` with `parse_special = false` skips control and
/// unknown tokens). `to_id` maps a text to its last id, as the loader's map does.
fn cut_out_ids(g: &Gguf, types: &[i64], to_id: &ahash::AHashMap<String, u32>) -> Vec<u32> {
    let mut control: std::collections::HashSet<u32> = EOG_TEXTS
        .iter()
        .filter_map(|t| to_id.get(*t).copied())
        .collect();
    for (keys, texts) in FIM_TEXTS {
        let named = keys
            .iter()
            .any(|k| g.u64(k).is_ok_and(|id| (id as usize) < types.len()));
        if !named {
            control.extend(texts.iter().filter_map(|t| to_id.get(*t).copied()));
        }
    }
    // the loader's later exceptions: gpt-oss's channel markers always rendered
    // (user-defined), `<|end|>` not an end where `<|return|>` and `<|call|>` (or
    // `<|calls|>` and `<|flush|>`) exist (user-defined), and `</s>` a normal token beside
    // Gemma 4's `<|tool_response>` or PLaMo's `<|plamo:eos|>` end token
    let id = |t: &str| to_id.get(t).copied();
    let has = |t: &str| to_id.contains_key(t);
    let mut user: std::collections::HashSet<u32> =
        ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]
            .iter()
            .filter_map(|t| id(t))
            .collect();
    let call = has("<|call|>") || has("<|calls|>");
    if has("<|end|>") && call && (has("<|return|>") || has("<|flush|>")) {
        user.extend(id("<|end|>"));
    }
    let plamo_end = id("<|plamo:eos|>").is_some_and(|p| {
        ["eos", "eot", "eom"]
            .iter()
            .any(|k| g.u64(&format!("tokenizer.ggml.{k}_token_id")).ok() == Some(p as u64))
    });
    let normal = if has("<|tool_response>") || plamo_end {
        id("</s>")
    } else {
        None
    };
    (0..types.len() as u32)
        .filter(|i| {
            let ty = types[*i as usize];
            if user.contains(i) {
                return true;
            }
            Some(*i) != normal && ty == USER_DEFINED && !control.contains(i)
        })
        .collect()
}
