//! Documents → passages: a document's text is cut into passages of about `passage_tokens`
//! tokens of the target model, on token boundaries, each with its byte span in the
//! document. A document no longer than one and a half passages is one passage; otherwise
//! passages hold `passage_tokens` tokens (consecutive passages share `overlap` of them) and
//! the last one takes the remainder, so no passage is shorter than half the length.
//!
//! A cut is placed at the end of the token before it, so the space a byte-level tokenizer
//! joins to the next word starts the next passage, and never inside a character. Each
//! passage is then tokenised on its own for scoring (as `score` would tokenise its text);
//! at a cut that is a pre-tokenizer boundary, as the cuts here are, that gives the same ids.

/// Line numbers of passages of a document read in segments, counted as they go by: each
/// byte is counted about once however long the document (passages may overlap, so the
/// cursor also steps back).
#[derive(Debug, Default)]
pub struct Lines {
    /// Line breaks before the current segment.
    before: u64,
    /// Cursor in the current segment, and the line breaks before it there.
    at: usize,
    count: u64,
}

impl Lines {
    /// `[first, last]` lines (from 1) of the passage at bytes `a..b` of the current segment
    /// `text` (a line break ending the passage belongs to its last line).
    pub fn span(&mut self, text: &str, a: usize, b: usize) -> [u64; 2] {
        let first = self.line_at(text, a);
        [first, self.line_at(text, b.saturating_sub(1).max(a))]
    }

    fn line_at(&mut self, text: &str, pos: usize) -> u64 {
        let bytes = text.as_bytes();
        let pos = pos.min(bytes.len());
        if pos >= self.at {
            self.count += newlines(&bytes[self.at..pos]);
        } else {
            self.count -= newlines(&bytes[pos..self.at]);
        }
        self.at = pos;
        self.before + self.count + 1
    }

    /// The current segment `text` is done; the next continues the document.
    pub fn next_segment(&mut self, text: &str) {
        let rest = newlines(&text.as_bytes()[self.at.min(text.len())..]);
        self.before += self.count + rest;
        self.at = 0;
        self.count = 0;
    }
}

fn newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// How documents are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkOptions {
    pub passage_tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            passage_tokens: 128,
            overlap: 0,
        }
    }
}

/// Byte spans of the passages of `text` (named `id` in errors), cut with `tokenizer`.
pub fn cut(
    tokenizer: &crate::model::Tokenizer,
    id: &str,
    text: &str,
    opts: ChunkOptions,
) -> crate::Result<Vec<(usize, usize)>> {
    Ok(spans(text, &tokenizer.offsets(id, text)?, opts))
}

/// The id of passage `k` of document `doc`: `DOC#pK`.
pub fn passage_id(doc: &str, k: usize) -> String {
    format!("{doc}#p{k}")
}

/// Cuts each passage into passages of about `opts.passage_tokens` tokens (ids `ID#pK`),
/// as `scan` cuts documents: `calibrate --passage-tokens` makes its non-member passages
/// alike to a scan's.
pub fn cut_passages(
    tokenizer: &crate::model::Tokenizer,
    passages: Vec<crate::input::Passage>,
    opts: ChunkOptions,
) -> crate::Result<Vec<crate::input::Passage>> {
    let mut out = Vec::new();
    for p in passages {
        for (k, (a, b)) in cut(tokenizer, &p.id, &p.text, opts)?
            .into_iter()
            .enumerate()
        {
            out.push(crate::input::Passage {
                id: passage_id(&p.id, k),
                text: p.text[a..b].to_string(),
                source: p.source.clone(),
                label: p.label,
            });
        }
    }
    Ok(out)
}

/// Byte spans `[start, end)` of the passages of a text of `len` bytes whose tokens have
/// the byte `offsets` (as [`crate::model::Tokenizer::offsets`] gives). Empty when the text
/// has no token.
pub fn spans(text: &str, offsets: &[(usize, usize)], opts: ChunkOptions) -> Vec<(usize, usize)> {
    let n = offsets.len();
    let p = opts.passage_tokens.max(1);
    let step = p.saturating_sub(opts.overlap).max(1);
    if n == 0 {
        return Vec::new();
    }
    if n <= p + p / 2 {
        return vec![(0, text.len())];
    }
    // the first valid cut at or after token i: (token index, byte)
    let cut = |mut i: usize| -> (usize, usize) {
        while i < n {
            let b = offsets[i - 1].1;
            if b <= offsets[i].0 && b > 0 && text.is_char_boundary(b) {
                return (i, b);
            }
            i += 1;
        }
        (n, text.len())
    };
    let mut out = Vec::new();
    let (mut s, mut sb) = (0usize, 0usize);
    loop {
        if n - s <= p + p / 2 {
            out.push((sb, text.len()));
            return out;
        }
        let (e, eb) = cut(s + p);
        if e >= n {
            out.push((sb, text.len()));
            return out;
        }
        out.push((sb, eb));
        let (ns, nsb) = if step >= p { (e, eb) } else { cut(s + step) };
        if ns <= s || ns >= n {
            out.last_mut().expect("pushed").1 = text.len();
            return out;
        }
        (s, sb) = (ns, nsb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines counted incrementally over segments and overlapping passages agree with
    /// counting from the document's start each time.
    #[test]
    fn passage_lines_match_a_count_from_the_start() {
        let doc: String = (1..=40)
            .map(|i| format!("line {i}{}\n", " x".repeat(i % 7)))
            .collect();
        let line_of = |pos: usize| doc[..pos].matches('\n').count() as u64 + 1;
        // three segments cut at line breaks; passages overlap and end on or before breaks
        let cuts = [0, doc.len() / 3, 2 * doc.len() / 3, doc.len()];
        let cuts: Vec<usize> = cuts
            .iter()
            .map(|&c| {
                if c == 0 || c == doc.len() {
                    c
                } else {
                    doc[c..].find('\n').unwrap() + c + 1
                }
            })
            .collect();
        let mut lines = Lines::default();
        for w in cuts.windows(2) {
            let seg = &doc[w[0]..w[1]];
            let mut a = 0;
            while a < seg.len() {
                let b = (a + 23).min(seg.len());
                let want = [line_of(w[0] + a), line_of(w[0] + b - 1)];
                assert_eq!(lines.span(seg, a, b), want, "segment at {}, {a}..{b}", w[0]);
                a = if b == seg.len() { b } else { b - 9 }; // overlap: the cursor steps back
            }
            lines.next_segment(seg);
        }
        let mut one = Lines::default();
        assert_eq!(
            one.span("a\nb\n", 0, 2),
            [1, 1],
            "a passage's own line break is its last line's"
        );
        assert_eq!(one.span("a\nb\n", 2, 4), [2, 2]);
    }

    /// Whitespace "tokens" with byte-level-style offsets (a word owns its leading space).
    fn words(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c == ' ' && i > 0 {
                out.push((start, i));
                start = i;
            }
        }
        if start < text.len() {
            out.push((start, text.len()));
        }
        out
    }

    fn opts(p: usize, o: usize) -> ChunkOptions {
        ChunkOptions {
            passage_tokens: p,
            overlap: o,
        }
    }

    #[test]
    fn short_documents_are_one_passage_and_empty_ones_none() {
        let t = "a b c d e";
        assert_eq!(spans(t, &words(t), opts(4, 0)), [(0, t.len())]);
        assert!(spans("", &[], opts(4, 0)).is_empty());
    }

    #[test]
    fn passages_tile_the_text_and_the_tail_is_merged() {
        let t: String = (0..22).map(|i| format!(" w{i}")).collect();
        let s = spans(&t, &words(&t), opts(5, 0));
        // 22 tokens: 5, 5, 5, then 7 (a tail of 2 < 2.5 is merged into the last passage)
        let counts: Vec<usize> = s.iter().map(|&(a, b)| words(&t[a..b]).len()).collect();
        assert_eq!(counts, [5, 5, 5, 7]);
        let t23: String = (0..23).map(|i| format!(" w{i}")).collect();
        let s23 = spans(&t23, &words(&t23), opts(5, 0));
        let counts: Vec<usize> = s23.iter().map(|&(a, b)| words(&t23[a..b]).len()).collect();
        assert_eq!(counts, [5, 5, 5, 5, 3], "a tail of 3 >= 2.5 stands alone");
        assert_eq!(s[0].0, 0);
        assert_eq!(s.last().unwrap().1, t.len());
        for w in s.windows(2) {
            assert_eq!(w[0].1, w[1].0, "contiguous");
        }
        assert!(
            t[s[1].0..].starts_with(" w5"),
            "the space starts the next passage"
        );
    }

    #[test]
    fn overlap_repeats_tokens() {
        let t: String = (0..20).map(|i| format!(" w{i}")).collect();
        let s = spans(&t, &words(&t), opts(8, 4));
        assert!(t[s[1].0..].starts_with(" w4"));
        assert!(s[0].1 > s[1].0);
        assert_eq!(s.last().unwrap().1, t.len());
    }

    #[test]
    fn never_cuts_inside_a_character() {
        // byte-level pieces of one emoji share its span: no cut between them
        let t = "ab😀cd";
        let offs = vec![(0, 1), (1, 2), (2, 6), (2, 6), (2, 6), (6, 7), (7, 8)];
        let s = spans(t, &offs, opts(1, 0));
        for &(a, b) in &s {
            assert!(t.is_char_boundary(a) && t.is_char_boundary(b));
        }
        assert_eq!(s.last().unwrap().1, t.len());
    }
}
