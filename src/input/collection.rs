//! The one reader of inputs: walks them, opens each file in its format (undoing `.gz` /
//! `.zst`), and streams documents to a visitor as text segments, without ever holding the
//! collection in memory. `score` uses it strictly (the first problem is an error naming the
//! file and line); `scan` uses it leniently (a problem skips that file or row, with the
//! reason, and the scan goes on).
//!
//! A document arrives as one or more [`Event::Segment`]s followed by [`Event::End`]. This
//! file holds the dispatch (a file's format and compression), the policies (strict or
//! lenient, UTF-8) and the events; each format's reading is in its own file: `text.rs`
//! (segments of large files), `html.rs`, `jsonl.rs`, `csv.rs` (CSV and TSV), `parquet.rs`.

use super::open::{check_expansion, compression, decompress, detect, transcode, Compression};
use super::walk::{walk, FileEntry, Found, WalkOptions};
use super::{decode_utf8, Format, ReadOptions, STDIN};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What to do with bytes that are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Utf8Policy {
    /// Skip the file (or row), with the offset of the first bad byte as the reason.
    #[default]
    Skip,
    /// Replace each bad sequence with U+FFFD and count the document as repaired.
    Replace,
}

/// How to read a collection.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub read: ReadOptions,
    pub walk: WalkOptions,
    /// The first problem is an error (`score`); otherwise it is reported as skipped.
    pub strict: bool,
    /// Ids relative to the input root (`scan`); otherwise the path as given (`score`).
    pub relative_ids: bool,
    /// Text files are streamed in segments of about this many bytes.
    pub segment_bytes: usize,
    /// Largest HTML file, JSONL line or CSV record read.
    pub max_record_bytes: usize,
    /// Bytes a compressed file (`.gz`, `.zst`) may expand to; past it, or past the ratio
    /// rule ([`super::open::MAX_RATIO`]), the file is skipped naming the bound.
    pub max_expanded_bytes: u64,
    pub utf8: Utf8Policy,
}

impl CollectOptions {
    /// How `score` and the other strict commands read: every file below an input, hidden
    /// ones and links included, each document whole, the first problem an error.
    pub fn strict(read: ReadOptions) -> Self {
        CollectOptions {
            read,
            walk: WalkOptions {
                hidden: true,
                follow_links: true,
                ..WalkOptions::default()
            },
            ..CollectOptions::default()
        }
    }
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            read: ReadOptions::default(),
            walk: WalkOptions::default(),
            strict: true,
            relative_ids: false,
            segment_bytes: usize::MAX,
            max_record_bytes: 256 << 20,
            max_expanded_bytes: super::open::DEFAULT_MAX_EXPANDED,
            utf8: Utf8Policy::Skip,
        }
    }
}

/// A document being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Stable id (see [`CollectOptions::relative_ids`]).
    pub id: String,
    /// Where it is: the file, or `FILE:LINE` for a row.
    pub source: String,
    pub label: Option<bool>,
    /// Its text is the file's own, line for line (a text file, after decompression and
    /// transcoding): a passage's byte span names lines of the file.
    pub lines: bool,
    /// Where each page starts in its text (a PDF's): a passage's byte span names pages
    /// (see [`super::pdf::page_span`]). Empty for a text without pages.
    pub pages: Vec<u64>,
}

impl Doc {
    /// `text` as a passage of this document, named `id`.
    pub fn passage(&self, id: String, text: &str) -> super::Passage {
        super::Passage {
            id,
            text: text.to_string(),
            source: self.source.clone(),
            label: self.label,
        }
    }
}

/// What the reader hands over, in input order.
#[derive(Debug)]
pub enum Event<'a> {
    /// Text of `doc` starting at byte `offset` of its text.
    Segment {
        doc: &'a Doc,
        offset: u64,
        text: &'a str,
    },
    /// `doc` is complete (`problem`: it was cut short by an error after some of it was
    /// read; the text before is kept). `repaired`: invalid UTF-8 was replaced.
    End {
        doc: &'a Doc,
        bytes: u64,
        problem: Option<String>,
        repaired: bool,
    },
    /// A file or row not read, and why.
    Skipped { source: String, reason: String },
}

/// Counts the reader keeps beside the events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CollectStats {
    /// Hidden files and folders left out (not read, not listed).
    pub hidden: usize,
    /// Files `--type`/`--type-not` left out (not read, not listed: asked for).
    pub by_type: usize,
    /// Files and folders `--glob` left out (not read, not listed: asked for).
    pub by_glob: usize,
    /// Files opened.
    pub files: usize,
}

/// Decides which documents to read (by id), e.g. one shard's. Files whose id is refused
/// are not opened; rows are filtered after parsing.
pub type Keep<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// Reads `inputs` (`-` = stdin) and hands every segment, end and skip to `visit`.
pub fn read_collection(
    inputs: &[PathBuf],
    opts: &CollectOptions,
    keep: Keep,
    visit: &mut dyn FnMut(Event) -> Result<()>,
) -> Result<CollectStats> {
    let mut stats = CollectStats::default();
    let left = walk(inputs, &opts.walk, |found| match found {
        Found::Skipped { path, id, reason } => {
            if !keep(&id) {
                return Ok(()); // another shard lists it
            }
            let source = path.display().to_string();
            if opts.strict {
                return Err(Error::InvalidInput {
                    path,
                    line: None,
                    message: reason,
                });
            }
            visit(Event::Skipped { source, reason })
        }
        Found::File(entry) => {
            stats.files += 1;
            Reader {
                opts,
                keep,
                visit: &mut *visit,
            }
            .file(&entry)
        }
    })?;
    stats.hidden = left.hidden;
    stats.by_type = left.by_type;
    stats.by_glob = left.by_glob;
    Ok(stats)
}

/// A record of a JSONL, CSV, TSV or Parquet file: one document.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub id: Option<String>,
    pub text: String,
    pub label: Option<bool>,
}

pub(super) struct Reader<'a, 'v> {
    pub(super) opts: &'a CollectOptions,
    pub(super) keep: Keep<'a>,
    pub(super) visit: &'v mut dyn FnMut(Event) -> Result<()>,
}

impl Reader<'_, '_> {
    /// A problem with a file or row: an error when strict, else a skip.
    pub(super) fn problem(
        &mut self,
        path: &Path,
        line: Option<usize>,
        message: String,
    ) -> Result<()> {
        if self.opts.strict {
            return Err(Error::InvalidInput {
                path: path.to_path_buf(),
                line,
                message,
            });
        }
        let source = match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        };
        (self.visit)(Event::Skipped {
            source,
            reason: message,
        })
    }

    fn file(&mut self, entry: &FileEntry) -> Result<()> {
        let path = &entry.path;
        let stdin = path.as_os_str() == STDIN;
        let (format, comp) = match self.opts.read.format {
            Format::Auto if stdin => (Format::Text, Compression::None),
            // score reads every file: one of an unknown kind as text
            Format::Auto if self.opts.strict => {
                detect(path).unwrap_or((Format::Text, Compression::None))
            }
            Format::Auto => match detect(path) {
                Ok(fc) => fc,
                Err(reason) => return self.problem(path, None, reason),
            },
            f => (f, compression(path)),
        };
        let doc_id = if self.opts.relative_ids {
            entry.id.clone()
        } else {
            path.display().to_string()
        };
        if format == Format::Parquet {
            return self.parquet(path, &doc_id);
        }
        let whole_file = matches!(
            format,
            Format::Text | Format::Html | Format::Pdf | Format::Office
        );
        if whole_file && !(self.keep)(&doc_id) {
            return Ok(());
        }
        if comp != Compression::None && !stdin {
            // a compression bomb is skipped whole, before any of it is read as text
            let checked = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"));
            let max = self.opts.max_expanded_bytes;
            if let Err(reason) = checked.and_then(|f| check_expansion(Box::new(f), comp, max)) {
                return self.problem(path, None, reason);
            }
        }
        let raw: Box<dyn Read> = if stdin {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(path) {
                Ok(f) => Box::new(f),
                Err(e) if self.opts.strict => {
                    return Err(Error::InputIo {
                        path: path.clone(),
                        source: e,
                    })
                }
                Err(e) => return self.problem(path, None, format!("cannot open: {e}")),
            }
        };
        let reader = match decompress(raw, comp, self.opts.max_expanded_bytes) {
            Ok(r) => r,
            Err(e) => return self.problem(path, None, format!("cannot decompress: {e}")),
        };
        // Containers are bytes, not text: only text formats are transcoded.
        let (format, reader) = match format {
            Format::Text | Format::Auto if self.opts.read.format == Format::Auto => {
                match sniff(reader) {
                    Ok(found) => found,
                    Err(e) => return self.problem(path, None, format!("cannot read: {e}")),
                }
            }
            other => (other, reader),
        };
        let reader = match format {
            Format::Epub | Format::Pdf | Format::Office => reader,
            _ => transcode(reader, self.opts.read.encoding),
        };
        match format {
            Format::Pdf => self.pdf(path, doc_id, reader),
            Format::Office => self.office(path, doc_id, reader),
            Format::Text | Format::Auto => self.text(path, doc_id, reader),
            Format::Html => self.html(path, doc_id, reader),
            Format::Jsonl => self.jsonl(path, &doc_id, reader),
            Format::Csv => self.table(path, &doc_id, reader, b','),
            Format::Tsv => self.table(path, &doc_id, reader, b'\t'),
            Format::Epub => self.epub(path, &doc_id, reader),
            Format::Parquet => unreachable!("read above"),
        }
    }

    /// Decodes `bytes`: the text and whether it was repaired (`--invalid-utf8 replace`;
    /// binary data never is), or the error naming the first bad byte.
    pub(super) fn decode(
        &self,
        path: &Path,
        line: Option<usize>,
        bytes: Vec<u8>,
    ) -> Result<(String, bool)> {
        match std::str::from_utf8(&bytes) {
            Ok(_) if !is_binary(&bytes) => Ok((String::from_utf8(bytes).expect("checked"), false)),
            Err(_) if self.opts.utf8 == Utf8Policy::Replace && !is_binary(&bytes) => {
                Ok((String::from_utf8_lossy(&bytes).into_owned(), true))
            }
            _ => decode_utf8(path, line, bytes).map(|s| (s, false)),
        }
    }

    pub(super) fn end(
        &mut self,
        doc: &Doc,
        bytes: u64,
        problem: Option<String>,
        repaired: bool,
    ) -> Result<()> {
        (self.visit)(Event::End {
            doc,
            bytes,
            problem,
            repaired,
        })
    }

    /// One whole document from a decoded text.
    pub(super) fn whole(&mut self, doc: Doc, text: &str, repaired: bool) -> Result<()> {
        (self.visit)(Event::Segment {
            doc: &doc,
            offset: 0,
            text,
        })?;
        self.end(&doc, text.len() as u64, None, repaired)
    }

    pub(super) fn read_capped(
        &mut self,
        path: &Path,
        reader: Box<dyn Read>,
    ) -> Result<Option<Vec<u8>>> {
        let cap = self.opts.max_record_bytes;
        let mut bytes = Vec::new();
        match reader.take(cap as u64 + 1).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() > cap => {
                self.problem(path, None, format!("larger than {cap} bytes"))?;
                Ok(None)
            }
            Ok(_) => Ok(Some(bytes)),
            Err(e) => {
                self.problem(path, None, format!("cannot read: {e}"))?;
                Ok(None)
            }
        }
    }

    /// The id of a row: the id field or the line (relative ids: `FILE#ID`, `FILE:LINE`).
    fn row_id(&self, file_id: &str, id: Option<String>, line: usize) -> String {
        match (id, self.opts.relative_ids) {
            (Some(id), true) => format!("{file_id}#{id}"),
            (Some(id), false) => id,
            (None, _) => format!("{file_id}:{line}"),
        }
    }

    pub(super) fn row(
        &mut self,
        path: &Path,
        file_id: &str,
        line: usize,
        row: Row,
        repaired: bool,
    ) -> Result<()> {
        let id = self.row_id(file_id, row.id, line);
        if !(self.keep)(&id) {
            return Ok(());
        }
        let doc = Doc {
            id,
            source: format!("{}:{line}", path.display()),
            label: row.label,
            lines: false,
            pages: Vec::new(),
        };
        self.whole(doc, &row.text, repaired)
    }
}

pub(super) fn message_of(e: Error) -> String {
    match e {
        Error::InvalidInput { message, .. } => message,
        other => other.to_string(),
    }
}

/// A file the name calls text whose first bytes are a PDF's is read as a PDF (the content
/// decides); the bytes peeked are put back in front of the rest.
fn sniff(mut r: Box<dyn Read>) -> std::io::Result<(Format, Box<dyn Read>)> {
    let mut start = Vec::with_capacity(1024);
    (&mut r).take(1024).read_to_end(&mut start)?;
    let format = if start.starts_with(b"%PDF-") {
        Format::Pdf
    } else {
        Format::Text
    };
    Ok((format, Box::new(std::io::Cursor::new(start).chain(r))))
}

/// Binary data is never repaired into text.
fn is_binary(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads leniently and returns "id@offset:text" segments, ends and skips as strings.
    fn events(inputs: &[PathBuf], opts: &CollectOptions) -> Vec<String> {
        let mut out = Vec::new();
        read_collection(inputs, opts, &|_| true, &mut |e| {
            out.push(match e {
                Event::Segment { doc, offset, text } => format!("{}@{offset}:{text}", doc.id),
                Event::End {
                    doc,
                    bytes,
                    problem,
                    repaired,
                } => format!(
                    "end {} {bytes}{}{}",
                    doc.id,
                    problem.map(|p| format!(" ({p})")).unwrap_or_default(),
                    if repaired { " repaired" } else { "" }
                ),
                Event::Skipped { source, reason } => format!(
                    "skip {}: {reason}",
                    Path::new(&source).file_name().unwrap().to_string_lossy()
                ),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    fn lenient() -> CollectOptions {
        CollectOptions {
            strict: false,
            relative_ids: true,
            ..Default::default()
        }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_format_and_every_problem_is_read_or_listed() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        std::fs::create_dir(&c).unwrap();
        let w = |n: &str, b: &[u8]| std::fs::write(c.join(n), b).unwrap();
        w("a.txt", "\u{feff}plain".as_bytes());
        w("b.html", b"<p>Hi <script>x()</script>there</p>");
        w(
            "c.jsonl",
            b"{\"id\":\"r1\",\"text\":\"one\"}\n{bad\n{\"text\":\"two\"}\n",
        );
        w("d.csv", b"id,text\n7,\"seven, quoted\"\n8\n9,nine\n");
        w("e.tsv.gz", &gz(b"text\tid\ntab one\tx\n"));
        let mut z = gz(b"a long enough text to be cut when truncated");
        z.truncate(z.len() - 10);
        w("f.txt.gz", &z);
        w("g.png", b"\x89PNG\r\n\x1a\n\0\0");
        w("h.txt", b"latin \xe9t\xe9");
        w("i.txt", b"bin\0ary");
        w("j.md", b"");
        w(
            "k.jsonl.zst",
            &zstd::encode_all(&b"{\"text\":\"zst\"}\n"[..], 3).unwrap(),
        );
        // content decides: names that say nothing are text when their bytes are
        w("l.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n");
        w("m.docx", b"PK\x03\x04\x14\x00");
        w("n.txt", b"\xff\xfeH\x00i\x00 \x00\x3e\xd8\x99\xdd"); // UTF-16LE, BOM, "Hi 🦙"
        w("t-README", b"read me");
        w("x-changelog.gz", &gz(b"version 2: fixes"));
        w("y.rs", b"fn main() {}\n");
        let ev = events(&[c], &lenient());
        let expect = [
            "c/a.txt@0:plain",
            "end c/a.txt 5",
            "c/b.html@0:Hi there",
            "end c/b.html 8",
            "c/c.jsonl#r1@0:one",
            "end c/c.jsonl#r1 3",
            "skip c.jsonl:2: malformed JSON: key must be a string at line 1 column 2",
            "c/c.jsonl:3@0:two",
            "end c/c.jsonl:3 3",
            "c/d.csv#7@0:seven, quoted",
            "end c/d.csv#7 13",
            "skip d.csv:3: malformed row: CSV error: record 2 (line: 3, byte: 26): found record with 1 fields, but the previous record has 2 fields",
            "c/d.csv#9@0:nine",
            "end c/d.csv#9 4",
            "c/e.tsv.gz#x@0:tab one",
            "end c/e.tsv.gz#x 7",
        ];
        assert_eq!(ev[..expect.len()], expect, "{ev:#?}");
        let rest = &ev[expect.len()..];
        assert!(
            rest[0].starts_with("skip f.txt.gz: cannot decompress: incomplete"),
            "{rest:?}"
        );
        assert_eq!(
            rest[1],
            "skip g.png:3: binary data (NUL byte at offset 8); not a text file"
        );
        assert!(
            rest[2].starts_with("skip h.txt:1: invalid UTF-8 at byte offset 6"),
            "{rest:?}"
        );
        assert!(
            rest[3].starts_with("skip i.txt:1: binary data (NUL byte at offset 3)"),
            "{rest:?}"
        );
        assert_eq!(
            rest[4..],
            [
                "c/j.md@0:",
                "end c/j.md 0",
                "c/k.jsonl.zst:1@0:zst",
                "end c/k.jsonl.zst:1 3",
                "skip l.pdf: PDF: malformed: failed parsing cross reference table: invalid start value",
                "skip m.docx: not a readable ZIP container (invalid Zip archive: Could not find EOCD)",
                "c/n.txt@0:Hi 🦙",
                "end c/n.txt 7",
                "c/t-README@0:read me",
                "end c/t-README 7",
                "c/x-changelog.gz@0:version 2: fixes",
                "end c/x-changelog.gz 16",
                "c/y.rs@0:fn main() {}\n",
                "end c/y.rs 13",
            ]
        );
    }

    #[test]
    fn legacy_encodings_are_transcoded_when_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("old.txt");
        std::fs::write(&p, b"caf\xe9 cr\xe8me").unwrap();
        // UTF-8 by default: Latin-1 bytes are invalid and the file is skipped
        let ev = events(std::slice::from_ref(&p), &lenient());
        assert!(ev[0].starts_with("skip old.txt:1: invalid UTF-8"), "{ev:?}");
        let opts = CollectOptions {
            read: ReadOptions {
                encoding: encoding_rs::Encoding::for_label(b"windows-1252"),
                ..ReadOptions::default()
            },
            ..lenient()
        };
        let ev = events(std::slice::from_ref(&p), &opts);
        assert_eq!(ev[0], "old.txt@0:café crème", "{ev:?}");
    }

    #[test]
    fn invalid_utf8_can_be_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.txt");
        std::fs::write(&p, b"latin \xe9t\xe9").unwrap();
        let opts = CollectOptions {
            utf8: Utf8Policy::Replace,
            ..lenient()
        };
        let ev = events(&[p], &opts);
        assert_eq!(
            ev,
            ["h.txt@0:latin \u{fffd}t\u{fffd}", "end h.txt 13 repaired"]
        );
    }

    #[test]
    fn big_files_stream_in_segments_cut_at_line_breaks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.txt");
        let line = "word ".repeat(300) + "\n";
        let text = line.repeat(100); // 150 KB
        std::fs::write(&p, &text).unwrap();
        let opts = CollectOptions {
            segment_bytes: 16 << 10,
            ..lenient()
        };
        let mut joined = String::new();
        let mut n = 0;
        read_collection(std::slice::from_ref(&p), &opts, &|_| true, &mut |e| {
            if let Event::Segment { offset, text, .. } = e {
                assert_eq!(offset as usize, joined.len());
                assert!(text.len() <= 16 << 10);
                assert!(text.ends_with('\n'), "cut after a line break");
                joined.push_str(text);
                n += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(joined, text);
        assert!(n >= 10, "{n} segments");
        // one line of 200 KB without breaks: cut before spaces
        let text = "ab ".repeat(70_000);
        std::fs::write(&p, &text).unwrap();
        let mut joined = String::new();
        read_collection(&[p], &opts, &|_| true, &mut |e| {
            if let Event::Segment { text, .. } = e {
                joined.push_str(text);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(joined, text);
    }

    #[test]
    fn parquet_rows_from_pyarrow_are_documents() {
        // tests/data/rows.parquet: written by scripts/fixtures/make-parquet-fixture.py (pyarrow)
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rows.parquet");
        let opts = CollectOptions {
            read: ReadOptions {
                label_field: Some("member".into()),
                ..ReadOptions::default()
            },
            ..lenient()
        };
        let mut got = Vec::new();
        read_collection(&[p], &opts, &|_| true, &mut |e| {
            match e {
                Event::Segment { doc, text, .. } => {
                    got.push(format!("{} {:?} {text}", doc.id, doc.label))
                }
                Event::Skipped { source, reason } => got.push(format!(
                    "skip {}: {reason}",
                    Path::new(&source).file_name().unwrap().to_string_lossy()
                )),
                Event::End { .. } => {}
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            [
                "rows.parquet#a1 Some(true) The ferry leaves at noon.",
                "rows.parquet#a2 Some(false) Tides turn twice a day.",
                "skip rows.parquet:3: column \"text\" is null",
                "rows.parquet#a4 Some(false) <script>alert(1)</script> is text here.",
            ]
        );
        let opts = CollectOptions {
            read: ReadOptions {
                text_field: "body".into(),
                ..ReadOptions::default()
            },
            ..lenient()
        };
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rows.parquet");
        let ev = events(&[p], &opts);
        assert_eq!(ev.len(), 1);
        assert!(
            ev[0].contains("no \"body\" column") && ev[0].contains("id, text, member, views"),
            "{ev:?}"
        );
    }

    #[test]
    fn shard_filter_skips_documents_unread() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("a.txt"), "a").unwrap();
        std::fs::write(c.join("b.txt"), "b").unwrap();
        std::fs::write(c.join("r.jsonl"), "{\"text\":\"x\"}\n{\"text\":\"y\"}\n").unwrap();
        let mut ids = Vec::new();
        read_collection(
            &[c],
            &lenient(),
            &|id: &str| {
                id.ends_with('b') || id.ends_with(":2") || id.ends_with(".txt") && id.contains('b')
            },
            &mut |e| {
                if let Event::End { doc, .. } = e {
                    ids.push(doc.id.clone());
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(ids, ["c/b.txt", "c/r.jsonl:2"]);
    }
}
