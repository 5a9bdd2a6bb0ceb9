//! PDF files: the text layer, page by page in the order the page's content draws it
//! (pdf-extract on lopdf), one document per file with its pages joined by a blank line, so a
//! sentence that runs over a page break stays in one passage; each passage names the pages
//! it spans (`record.pages`).
//!
//! What cannot be read is skipped with its reason, never guessed at: a PDF with no text
//! layer (scanned pages: run OCR first), one encrypted with a password (one encrypted only
//! to restrict printing or copying opens with the empty password, as every viewer and
//! poppler's `pdftotext` open it), a malformed one. A page that fails alone ends the
//! document there with the reason (the pages before it are kept and scored).
//!
//! The extractor is not ours and panics on some malformed files (it indexes what the file
//! claims), and a file can nest objects deeply enough to need a large stack, so it runs on
//! a thread of its own, named [`THREAD`], with a 256 MiB stack: a panic there is this file's
//! skip, not the scan's end, and the panic hook stays quiet for that thread. A file whose
//! extraction takes longer than [`MAX_SECONDS`] is skipped (its thread is left to finish on
//! its own).

use super::collection::{Doc, Reader};
use super::open::is_pdf;
use crate::error::Result;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// The name of the extraction thread (the panic hook is quiet for it).
pub const THREAD: &str = "miascan-pdf";
/// Longest extraction of one file before it is skipped.
pub const MAX_SECONDS: u64 = 120;

/// The text layer of a PDF, one string per page (a page without text is an empty string),
/// or why it cannot be read. `Err` also for a file with no text on any page.
pub fn pages(bytes: Vec<u8>) -> std::result::Result<Pages, String> {
    quiet_panics_of_this_thread_name();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(THREAD.into())
        .stack_size(256 << 20)
        .spawn(move || {
            let _ = tx.send(extract(&bytes));
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start the PDF reader: {e}"));
    }
    match rx.recv_timeout(Duration::from_secs(MAX_SECONDS)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "the text layer took over {MAX_SECONDS} s to read (left unread)"
        )),
        // the sender was dropped without a send: the extractor panicked
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("malformed: the PDF extractor failed on it".into())
        }
    }
}

/// A PDF's text, page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pages {
    pub pages: Vec<String>,
    /// The page whose text could not be read, and why: the pages before it are kept.
    pub failed: Option<(usize, String)>,
}

fn extract(bytes: &[u8]) -> std::result::Result<Pages, String> {
    use pdf_extract::{Document, PlainTextOutput};
    if !is_pdf(bytes) {
        return Err("no PDF signature (%PDF-) in its first 1024 bytes".into());
    }
    let mut doc = Document::load_mem(bytes).map_err(|e| format!("malformed: {}", one_line(&e)))?;
    if doc.is_encrypted() {
        // An empty user password opens files encrypted only to restrict what a reader may
        // do; any other password is the owner's to give.
        if doc.decrypt("").is_err() {
            return Err("encrypted: it needs a password to open (decrypt it first)".into());
        }
    }
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    let mut out = Pages {
        pages: Vec::with_capacity(numbers.len()),
        failed: None,
    };
    for n in numbers {
        let mut s = String::new();
        let r = {
            let mut output = PlainTextOutput::new(&mut s);
            pdf_extract::output_doc_page(&doc, &mut output, n)
        };
        if let Err(e) = r {
            out.failed = Some((n as usize, one_line(&e)));
            break;
        }
        out.pages.push(tidy(&s));
    }
    if out.pages.iter().all(|p| p.trim().is_empty()) {
        return Err(match out.failed {
            Some((n, why)) => format!("malformed: page {n}: {why}"),
            None if out.pages.len() == 1 => {
                "no text layer on its one page (a scanned page? run OCR first)".into()
            }
            None => format!(
                "no text layer on any of its {} pages (scanned pages? run OCR first)",
                out.pages.len()
            ),
        });
    }
    Ok(out)
}

/// A page's text as the extractor lays it out, undone where typesetting changed the words
/// (as poppler's `pdftotext` undoes it, so that the text is what a text pipeline would have
/// given a model): trailing spaces and the blank lines at its start and end removed, the
/// typographic ligatures (U+FB00–FB06: `ﬁ` for `fi`) spelled out, and a word hyphenated at
/// the end of a line joined when a lower-case letter is on both sides (`mes-` / `sage`;
/// `February-` / `March` is left as it is).
fn tidy(s: &str) -> String {
    let all: Vec<&str> = s.lines().map(str::trim_end).collect();
    let first = all.iter().position(|l| !l.is_empty()).unwrap_or(all.len());
    let last = all
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    let lines = &all[first..last];
    let mut out = String::with_capacity(s.len());
    let mut joined = false;
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && !joined {
            out.push('\n');
        }
        let line = if joined { line.trim_start() } else { line };
        let next = lines.get(i + 1).map(|l| l.trim_start());
        joined = next.is_some_and(|n| hyphenated(line, n));
        let line = if joined {
            &line[..line.len() - 1]
        } else {
            line
        };
        for c in line.chars() {
            match ligature(c) {
                Some(l) => out.push_str(l),
                None => out.push(c),
            }
        }
    }
    out
}

/// Whether `line` ends in a word broken by a hyphen that `next` completes.
fn hyphenated(line: &str, next: &str) -> bool {
    let mut end = line.chars().rev();
    end.next() == Some('-')
        && end.next().is_some_and(char::is_lowercase)
        && next.chars().next().is_some_and(char::is_lowercase)
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        '\u{fb05}' | '\u{fb06}' => "st",
        _ => return None,
    })
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

/// Installs (once) a panic hook that stays quiet for the extraction thread and hands every
/// other panic to the hook that was there before.
fn quiet_panics_of_this_thread_name() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(THREAD) {
                before(info);
            }
        }));
    });
}

/// Pages joined by a blank line, and where each page starts in the joined text.
fn join(pages: &[String]) -> (String, Vec<u64>) {
    let mut text = String::new();
    let mut starts = Vec::with_capacity(pages.len());
    for p in pages {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        starts.push(text.len() as u64);
        text.push_str(p);
    }
    (text, starts)
}

/// `[first, last]` pages (from 1) of the bytes `a..b` of a text whose pages start at
/// `starts` (a passage ending in the blank line between pages belongs to the earlier one).
pub fn page_span(starts: &[u64], a: u64, b: u64) -> [u64; 2] {
    let page = |pos: u64| starts.partition_point(|&s| s <= pos).max(1) as u64;
    [page(a), page(b.saturating_sub(1).max(a))]
}

impl Reader<'_, '_> {
    /// A PDF file as one document of its text layer. A file named `.pdf` without a PDF
    /// signature is read as text: the content decides.
    pub(super) fn pdf(&mut self, path: &Path, id: String, reader: Box<dyn Read>) -> Result<()> {
        let Some(bytes) = self.read_capped(path, reader)? else {
            return Ok(());
        };
        if !is_pdf(&bytes) {
            let r = super::open::transcode(
                Box::new(std::io::Cursor::new(bytes)),
                self.opts.read.encoding,
            );
            return self.text(path, id, r);
        }
        let read = match pages(bytes) {
            Ok(p) => p,
            Err(why) => return self.problem(path, None, format!("PDF: {why}")),
        };
        let (text, starts) = join(&read.pages);
        let doc = Doc {
            id,
            source: path.display().to_string(),
            label: None,
            lines: false,
            pages: starts,
        };
        match read.failed {
            None => self.whole(doc, &text, false),
            Some((n, why)) => {
                (self.visit)(super::collection::Event::Segment {
                    doc: &doc,
                    offset: 0,
                    text: &text,
                })?;
                let why = format!(
                    "PDF: page {n} could not be read ({why}); pages 1–{} were scored",
                    n - 1
                );
                self.end(&doc, text.len() as u64, Some(why), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::testing;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        testing::fixture("pdf", name)
    }

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    /// (document id, text, page starts) of every document, and every skip's reason.
    type Read = (Vec<(String, String, Vec<u64>)>, Vec<String>);

    fn read(paths: &[PathBuf], strict: bool) -> Result<Read> {
        let (docs, skips) = testing::read(paths, strict, 256 << 20)?;
        Ok((
            docs.into_iter().map(|(d, t)| (d.id, t, d.pages)).collect(),
            skips,
        ))
    }

    /// The paper ReportLab drew: every page's words as it was given them, in order, and the
    /// page starts pointing at each page's first word.
    #[test]
    fn a_paper_is_read_page_by_page_as_its_writer_was_given_it() {
        let expected: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(fixture("paper.expected.json")).unwrap())
                .unwrap();
        for name in ["paper.pdf", "owner-only.pdf"] {
            let (docs, skips) = read(&[fixture(name)], true).unwrap();
            assert!(skips.is_empty(), "{skips:?}");
            assert_eq!(docs.len(), 1, "{name}: one document per file");
            let (id, text, starts) = &docs[0];
            assert_eq!(id, name);
            assert_eq!(starts.len(), expected.len(), "{name}: a start per page");
            for (i, page) in expected.iter().enumerate() {
                let want = page["text"].as_str().unwrap();
                let a = starts[i] as usize;
                let b = starts.get(i + 1).map_or(text.len(), |&s| s as usize);
                assert_eq!(words(&text[a..b]), words(want), "{name}: page {}", i + 1);
            }
        }
    }

    #[test]
    fn unreadable_pdfs_are_skipped_with_their_reason() {
        let names = ["locked.pdf", "scanned.pdf", "truncated.pdf"];
        let paths: Vec<_> = names.iter().map(|n| fixture(n)).collect();
        let (docs, skips) = read(&paths, false).unwrap();
        assert!(docs.is_empty(), "{docs:?}");
        assert_eq!(skips.len(), 3, "{skips:?}");
        assert!(
            skips[0].starts_with("PDF: encrypted: it needs a password"),
            "{}",
            skips[0]
        );
        assert!(skips[1].starts_with("PDF: no text layer"), "{}", skips[1]);
        assert!(skips[2].starts_with("PDF: malformed"), "{}", skips[2]);
        // strictly (score), the first is an error naming the file
        let e = read(&paths, true).unwrap_err().to_string();
        assert!(e.contains("locked.pdf") && e.contains("encrypted"), "{e}");
    }

    /// Corrupted papers: each read or refused with a reason, none a panic (the extractor's
    /// own panics are caught on its thread).
    #[test]
    fn corrupted_pdfs_never_panic() {
        let good = std::fs::read(fixture("paper.pdf")).unwrap();
        testing::corrupted_copies(&good, "x.pdf");
    }

    #[test]
    fn the_content_decides_not_the_name() {
        // named .pdf but text: read as text
        let (docs, skips) = read(&[fixture("not-a-pdf.pdf")], true).unwrap();
        assert!(skips.is_empty());
        assert_eq!(
            docs[0].1,
            "This is a plain text note saved with the wrong name.\n"
        );
        assert!(docs[0].2.is_empty(), "a text file has no pages");
        // a PDF with no name that says so: read as a PDF
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("REPORT");
        std::fs::copy(fixture("paper.pdf"), &p).unwrap();
        let (docs, _) = read(&[p], true).unwrap();
        assert_eq!(docs[0].2.len(), 3, "three pages");
        assert!(docs[0].1.starts_with("Tidal Timetables"), "{}", docs[0].1);
    }

    #[test]
    fn page_spans_count_from_one_and_the_gap_belongs_before() {
        let (text, starts) = join(&["ab".into(), "cd".into(), "ef".into()]);
        assert_eq!(text, "ab\n\ncd\n\nef");
        assert_eq!(starts, [0, 4, 8]);
        assert_eq!(page_span(&starts, 0, 2), [1, 1]);
        assert_eq!(page_span(&starts, 0, 4), [1, 1]); // "ab\n\n"
        assert_eq!(page_span(&starts, 0, 5), [1, 2]);
        assert_eq!(page_span(&starts, 4, 10), [2, 3]);
        assert_eq!(page_span(&starts, 9, 10), [3, 3]);
    }

    #[test]
    fn tidy_drops_layout_blank_lines_and_trailing_spaces() {
        assert_eq!(tidy("\n\n  a  \n\nb \n\n"), "  a\n\nb");
        assert_eq!(tidy("\n \n"), "");
        assert_eq!(
            tidy("the mes-\n  sage is de\u{fb01}ned"),
            "the message is defined"
        );
        let kept = "February-\nMarch, well-\n\nknown";
        assert_eq!(tidy(kept), kept);
        assert_eq!(tidy("a long-\nterm\u{fb02}ow"), "a longtermflow");
    }

    #[test]
    fn signature_may_follow_leading_bytes() {
        assert!(is_pdf(b"%PDF-1.7\n"));
        assert!(is_pdf(b"\xef\xbb\xbfjunk\n%PDF-1.4"));
        assert!(!is_pdf(b"This is a note about %PDF"));
    }

    #[test]
    fn a_panic_in_the_extractor_thread_is_an_error_not_a_crash() {
        quiet_panics_of_this_thread_name();
        let h = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(|| panic!("index out of bounds"))
            .unwrap();
        assert!(h.join().is_err());
        // and garbage that looks like a PDF is refused with a reason
        let e = pages(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF".to_vec());
        assert!(e.is_err(), "{e:?}");
    }
}
