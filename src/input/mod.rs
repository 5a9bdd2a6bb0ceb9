//! Inputs → documents. One streaming reader ([`collection`]) serves every command: `score`
//! reads strictly (a text file is one passage, a JSONL line is one passage, the first
//! problem is an error naming the file and line: nothing is skipped silently), `scan` reads
//! leniently (every format, problems skipped and listed, documents streamed in segments).

pub mod collection;
mod container;
mod csv;
mod epub;
mod html;
mod jsonl;
mod office;
pub mod open;
mod parquet;
pub mod pdf;
pub mod scored;
#[cfg(test)]
mod testing;
mod text;
pub mod walk;

pub use collection::{read_collection, CollectOptions, CollectStats, Doc, Event, Utf8Policy};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One unit of text to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Stable identifier: the JSONL `id` field, or `FILE` for a text file, or `FILE:LINE`
    /// for a JSONL line without an id.
    pub id: String,
    /// The exact text scored (a leading UTF-8 byte-order mark of a text file removed).
    pub text: String,
    /// Where it came from, `FILE` or `FILE:LINE`, for error messages and reports.
    pub source: String,
    /// Membership label, when the input carries one (`--label-field`).
    pub label: Option<bool>,
}

/// How to read an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// By extension (`score`: `.jsonl`/`.ndjson` are JSONL, anything else is text; `scan`:
    /// see [`open::detect`]); stdin is text.
    #[default]
    Auto,
    /// The whole file is one document.
    Text,
    /// One JSON object per line.
    Jsonl,
    /// The visible text of an HTML page.
    Html,
    /// One row per document, text in a named column.
    Csv,
    Tsv,
    /// One row per document (Hugging Face datasets' format), text in a named column.
    Parquet,
    /// One document per part of an EPUB book's spine.
    Epub,
    /// The text layer of a PDF, one document per file, passages naming their pages.
    Pdf,
    /// The body text of a DOCX or ODT document (the container says which), one document.
    Office,
}

/// Options for reading inputs.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub format: Format,
    /// JSONL field holding the text (default `text`).
    pub text_field: String,
    /// JSONL field holding the id (default `id`).
    pub id_field: String,
    /// JSONL field holding a membership label (`true`/`false` or `1`/`0`), required on
    /// every line when set.
    pub label_field: Option<String>,
    /// The encoding of files without a byte-order mark (`--encoding`): `None` reads UTF-8.
    /// A UTF-16 or UTF-8 byte-order mark always decides.
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            text_field: "text".into(),
            id_field: "id".into(),
            label_field: None,
            encoding: None,
        }
    }
}

/// The name used for standard input in ids and messages.
pub const STDIN: &str = "-";

/// Reads every input (`-` for stdin) into passages, in order, strictly: errors on the
/// first input that cannot be read; errors if no passage results at all.
pub fn read_inputs(inputs: &[PathBuf], opts: &ReadOptions) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    let copts = CollectOptions::strict(opts.clone());
    read_collection(inputs, &copts, &|_| true, &mut |e| {
        match e {
            // strict reading delivers every document as one segment
            Event::Segment { doc, text, .. } => out.push(doc.passage(doc.id.clone(), text)),
            Event::End { .. } | Event::Skipped { .. } => {}
        }
        Ok(())
    })?;
    if out.is_empty() {
        let names: Vec<_> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::EmptyInput(if names.is_empty() {
            "no input given".into()
        } else {
            format!("{} held no passage", names.join(", "))
        }));
    }
    Ok(out)
}

/// Decodes bytes as UTF-8, with an error that names the byte offset and line of the first
/// invalid sequence. Binary data (a NUL byte) is refused as such.
pub(crate) fn decode_utf8(path: &Path, line: Option<usize>, bytes: Vec<u8>) -> Result<String> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(Error::InvalidInput {
            path: path.to_path_buf(),
            line: line.or_else(|| Some(line_of(&bytes, pos))),
            message: format!("binary data (NUL byte at offset {pos}); not a text file"),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let pos = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        Error::InvalidInput {
            path: path.to_path_buf(),
            line: line.or_else(|| Some(line_of(bytes, pos))),
            message: format!(
                "invalid UTF-8 at byte offset {pos} (byte 0x{:02x}); convert the file to UTF-8",
                bytes[pos]
            ),
        }
    })
}

fn line_of(bytes: &[u8], pos: usize) -> usize {
    1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn text_file_is_one_passage_and_bom_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "a.txt", "\u{feff}Hello\nworld\n".as_bytes());
        let ps = read_inputs(std::slice::from_ref(&p), &ReadOptions::default()).unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].text, "Hello\nworld\n");
        assert_eq!(ps[0].id, p.display().to_string());
    }

    #[test]
    fn invalid_utf8_names_file_line_and_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "bad.txt", b"ok line\nbad \xff here\n");
        let e = read_inputs(&[p], &ReadOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bad.txt:2"), "{msg}");
        assert!(msg.contains("invalid UTF-8 at byte offset 12"), "{msg}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn binary_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "x.bin", b"\x7fELF\x00\x00\x01");
        let msg = read_inputs(&[p], &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("x.bin") && msg.contains("binary"), "{msg}");
    }

    #[test]
    fn empty_input_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "e.jsonl", b"\n  \n");
        let e = read_inputs(&[p], &ReadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::EmptyInput(_)), "{e}");
        let e = read_inputs(&[], &ReadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::EmptyInput(_)), "{e}");
    }

    #[test]
    fn empty_text_file_is_a_passage_not_an_error() {
        // An empty file is a passage that is too short to score: reported, not dropped.
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "empty.txt", b"");
        let ps = read_inputs(&[p], &ReadOptions::default()).unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].text, "");
    }

    #[test]
    fn directories_are_read_recursively_in_sorted_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        write(&d, "b.txt", b"B");
        write(&d, "sub/a.txt", b"A");
        write(&d, "a.jsonl", b"{\"text\": \"J\"}\n");
        let ps = read_inputs(&[d.path().to_path_buf()], &ReadOptions::default()).unwrap();
        let texts: Vec<_> = ps.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["J", "B", "A"]);
    }

    #[test]
    fn missing_file_is_an_input_error() {
        let e = read_inputs(
            &[PathBuf::from("/nonexistent/miascan.txt")],
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/miascan.txt"));
        assert_eq!(e.exit_code(), 3);
    }
}
