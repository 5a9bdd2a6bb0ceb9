//! Text files as documents: read in segments of `segment_bytes` cut at a line break (or a
//! space, or failing both a character boundary), so a 100 MB one-line file needs memory for
//! one segment, not for the file.

use super::collection::{message_of, Doc, Event, Reader};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

impl Reader<'_, '_> {
    pub(super) fn text(&mut self, path: &Path, id: String, reader: Box<dyn Read>) -> Result<()> {
        let doc = Doc {
            id,
            source: path.display().to_string(),
            label: None,
            lines: true,
            pages: Vec::new(),
        };
        let seg = self.opts.segment_bytes.max(4096);
        let mut r = BufReader::with_capacity(1 << 16, reader);
        let mut buf: Vec<u8> = Vec::new();
        let mut offset = 0u64;
        let mut first = true;
        let mut repaired = false;
        loop {
            let eof = match fill(&mut r, &mut buf, seg) {
                Ok(eof) => eof,
                Err(e) => {
                    let msg = format!("cannot read: {e}");
                    return if first {
                        self.problem(path, None, msg)
                    } else {
                        self.end(&doc, offset, Some(msg), repaired)
                    };
                }
            };
            if first && buf.starts_with(b"\xef\xbb\xbf") {
                // a byte-order mark is an encoding artefact, not text the model saw
                buf.drain(..3);
            }
            if first {
                if let Some(what) = super::open::binary_signature(&buf) {
                    return self.problem(path, None, format!("not text: {what}"));
                }
            }
            let cut = if eof { buf.len() } else { cut_point(&buf, seg) };
            let rest = buf.split_off(cut);
            let bytes = std::mem::replace(&mut buf, rest);
            let text = match self.decode(path, None, bytes) {
                Ok((t, rep)) => {
                    repaired |= rep;
                    t
                }
                Err(e) => {
                    let msg = match e {
                        Error::InvalidInput { message, line, .. } if first => {
                            return self.problem(path, line, message)
                        }
                        other => message_of(other),
                    };
                    let msg = format!(
                        "{msg} (in the segment at byte {offset}); the text before it was scored"
                    );
                    return self.end(&doc, offset, Some(msg), repaired);
                }
            };
            (self.visit)(Event::Segment {
                doc: &doc,
                offset,
                text: &text,
            })?;
            offset += text.len() as u64;
            first = false;
            if eof && buf.is_empty() {
                return self.end(&doc, offset, None, repaired);
            }
        }
    }
}

/// Reads until `buf` holds at least `want` bytes or the input ends; `Ok(true)` at the end.
fn fill(r: &mut impl BufRead, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    while buf.len() < want {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(true);
        }
        let n = chunk.len().min(want - buf.len()).max(1).min(chunk.len());
        buf.extend_from_slice(&chunk[..n]);
        r.consume(n);
    }
    // at the end exactly at the boundary?
    Ok(r.fill_buf()?.is_empty())
}

/// Where to end a segment of `buf` (longer than `seg`): after the last line break that is
/// followed by a non-space, else before the last space followed by a non-space (a token
/// boundary for every pre-tokenizer here), else at the last character boundary.
fn cut_point(buf: &[u8], seg: usize) -> usize {
    let lo = seg / 2;
    let window = &buf[lo..buf.len().min(seg)];
    let after_nl = window
        .windows(2)
        .rposition(|w| w[0] == b'\n' && !w[1].is_ascii_whitespace())
        .map(|i| lo + i + 1);
    let before_space = || {
        window
            .windows(2)
            .rposition(|w| w[0] == b' ' && !w[1].is_ascii_whitespace())
            .map(|i| lo + i)
    };
    after_nl
        .or_else(before_space)
        .unwrap_or_else(|| char_boundary(buf, buf.len().min(seg)))
}

/// The last character boundary at or before `c` in `buf` (`c` may be `buf.len()`, a boundary
/// only when the last character is complete). Bytes with no character start before `c` are
/// not UTF-8: they are cut at `c` (never at 0, which would cut nothing, forever) and the
/// decoder names them.
fn char_boundary(buf: &[u8], c: usize) -> usize {
    let continuation = |b: u8| (b & 0xc0) == 0x80;
    let mut s = c;
    if c == buf.len() {
        // the start of the last character, and whether all of it is here
        s = c.saturating_sub(1);
        while s > 0 && continuation(buf[s]) {
            s -= 1;
        }
        let width = match buf.get(s) {
            Some(b) if *b >= 0xf0 => 4,
            Some(b) if *b >= 0xe0 => 3,
            Some(b) if *b >= 0xc0 => 2,
            _ => 1,
        };
        if s + width <= buf.len() {
            s = c;
        }
    } else {
        while s > 0 && continuation(buf[s]) {
            s -= 1;
        }
    }
    if s == 0 {
        c
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment as long as the limit with neither a line break nor a space in it (a
    /// minified file, a base64 blob): cut at a character boundary, never past the end.
    #[test]
    fn a_run_without_spaces_is_cut_at_a_character_boundary() {
        let seg = 4096;
        let ascii = vec![b'x'; seg];
        assert_eq!(cut_point(&ascii, seg), seg);
        let mut shorter = vec![b'x'; seg - 3]; // a byte-order mark was removed
        assert_eq!(cut_point(&shorter, seg), seg - 3);
        // a 3-byte character cut by the buffer's end is left for the next segment
        shorter.extend_from_slice("€".as_bytes());
        shorter.truncate(seg - 1);
        assert_eq!(cut_point(&shorter, seg), seg - 3);
        // and one that straddles the limit
        let mut long = vec![b'x'; seg - 1];
        long.extend_from_slice("€€".as_bytes());
        assert_eq!(cut_point(&long, seg), seg - 1);
        let c = cut_point(&long, seg);
        assert!(std::str::from_utf8(&long[..c]).is_ok());
        // bytes that are not UTF-8 at all: cut somewhere, not at 0
        let junk = vec![0x80u8; seg + 10];
        assert_eq!(cut_point(&junk, seg), seg);
    }
}
