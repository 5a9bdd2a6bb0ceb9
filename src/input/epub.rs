//! EPUB books: one document per part of the book, in the reading order its package's spine
//! gives (not the order of the files in the ZIP container, nor their names), each part's
//! visible text taken by the HTML extractor. Ids name the part: `book.epub#chapter-3` (the
//! part's path in the package, without its extension).
//!
//! A book is a ZIP container, so everything read from it is bounded: the number of entries,
//! the bytes each expands to (counted as they are read, whatever the entry's header claims),
//! the bytes of the whole book, and the expansion ratio of each entry. A book over a limit is
//! skipped naming the limit; so is one whose parts are encrypted (DRM), one without a
//! package, or one whose spine names a part it does not hold.

use super::collection::{message_of, Doc, Reader};
use super::container::{parse, Container, Limits, LocalName, Refusal};
use super::html::visible_text;
use crate::error::Result;
use std::io::Read;
use std::path::Path;

/// One part of the book, in reading order.
struct Part {
    /// The path in the container.
    path: String,
    /// The part's name in ids: its path relative to the package, without extension.
    name: String,
}

impl Reader<'_, '_> {
    /// An EPUB file as one document per part of its spine.
    pub(super) fn epub(&mut self, path: &Path, id: &str, reader: Box<dyn Read>) -> Result<()> {
        let Some(bytes) = self.read_capped(path, reader)? else {
            return Ok(());
        };
        let limits = Limits {
            entry: self.opts.max_record_bytes as u64,
            total: 4 * self.opts.max_record_bytes as u64,
        };
        let mut book = match Container::open(bytes, limits) {
            Ok(b) => b,
            Err(why) => return self.problem(path, None, format!("EPUB: {why}")),
        };
        let parts = match book.spine() {
            Ok(p) => p,
            Err(why) => return self.problem(path, None, format!("EPUB: {why}")),
        };
        let mut any = false;
        for part in parts {
            let source = format!("{}#{}", path.display(), part.path);
            let doc_id = format!("{id}#{}", part.name);
            let bytes = match book.read(&part.path) {
                Ok(b) => b,
                Err(why) => return self.problem(path, None, format!("EPUB: {why}")),
            };
            let (xhtml, repaired) = match self.decode(path, None, bytes) {
                Ok(t) => t,
                Err(e) => {
                    let why = format!("EPUB part {}: {}", part.path, message_of(e));
                    return self.problem(path, None, why);
                }
            };
            let text = visible_text(&xhtml);
            if text.trim().is_empty() {
                continue; // a cover image, a blank page: no text to lose
            }
            any = true;
            if !(self.keep)(&doc_id) {
                continue;
            }
            let doc = Doc {
                id: doc_id,
                source,
                label: None,
                lines: false,
                pages: Vec::new(),
            };
            self.whole(doc, &text, repaired)?;
        }
        if !any {
            return self.problem(path, None, "EPUB: no text in any part of its spine".into());
        }
        Ok(())
    }
}

/// The book's reading order, from its package.
trait Spine {
    fn spine(&mut self) -> std::result::Result<Vec<Part>, Refusal>;
    fn refuse_encrypted(&mut self, parts: &[Part]) -> std::result::Result<(), Refusal>;
}

impl Spine for Container {
    /// The parts of the spine, in reading order.
    fn spine(&mut self) -> std::result::Result<Vec<Part>, Refusal> {
        let container = self.xml("META-INF/container.xml")?;
        let opf_path = {
            let doc = parse("META-INF/container.xml", &container)?;
            doc.descendants()
                .find(|n| n.has_tag_name_local("rootfile"))
                .and_then(|n| n.attribute("full-path"))
                .map(str::to_string)
                .ok_or("META-INF/container.xml names no package (rootfile full-path)")?
        };
        let opf = self.xml(&opf_path)?;
        let doc = parse(&opf_path, &opf)?;
        let base = match opf_path.rfind('/') {
            Some(i) => &opf_path[..=i],
            None => "",
        };
        let manifest: Vec<(&str, &str)> = doc
            .descendants()
            .filter(|n| n.has_tag_name_local("item"))
            .filter_map(|n| Some((n.attribute("id")?, n.attribute("href")?)))
            .collect();
        let mut parts = Vec::new();
        for itemref in doc
            .descendants()
            .filter(|n| n.has_tag_name_local("itemref"))
        {
            let Some(idref) = itemref.attribute("idref") else {
                continue;
            };
            let href = manifest
                .iter()
                .find(|(id, _)| *id == idref)
                .map(|(_, h)| *h)
                .ok_or_else(|| {
                    format!("{opf_path}: the spine names {idref:?}, not in the manifest")
                })?;
            let href = percent_decode(href.split('#').next().unwrap_or(href));
            let path = resolve(base, &href);
            if parts.iter().any(|p: &Part| p.path == path) {
                continue;
            }
            let name = match href.rfind('.') {
                Some(i) if !href[i..].contains('/') => href[..i].to_string(),
                _ => href.clone(),
            };
            parts.push(Part { path, name });
        }
        if parts.is_empty() {
            return Err(format!("{opf_path}: an empty spine"));
        }
        self.refuse_encrypted(&parts)?;
        Ok(parts)
    }

    /// DRM: `META-INF/encryption.xml` listing a part of the spine (font obfuscation, which
    /// only touches fonts, does not stop the text from being read).
    fn refuse_encrypted(&mut self, parts: &[Part]) -> std::result::Result<(), Refusal> {
        if !self.has("META-INF/encryption.xml") {
            return Ok(());
        }
        let enc = self.xml("META-INF/encryption.xml")?;
        let doc = parse("META-INF/encryption.xml", &enc)?;
        let locked = doc
            .descendants()
            .filter(|n| n.has_tag_name_local("CipherReference"))
            .filter_map(|n| n.attribute("URI"))
            .map(percent_decode)
            .find(|uri| parts.iter().any(|p| &p.path == uri));
        match locked {
            Some(uri) => Err(format!("encrypted (DRM): {uri} cannot be read")),
            None => Ok(()),
        }
    }
}

/// `base` + `href` as a path in the container (`..` and `.` resolved, never above the root).
fn resolve(base: &str, href: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in base.split('/').chain(href.split('/')) {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// `%20` and friends in an href; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::testing;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        testing::fixture("epub", name)
    }

    /// (document id, text) of every document, and the reason of every skip.
    type Read = (Vec<(String, String)>, Vec<String>);

    fn read(path: &Path, strict: bool) -> Result<Read> {
        let (docs, skips) = testing::read(&[path.to_path_buf()], strict, 256 << 20)?;
        Ok((docs.into_iter().map(|(d, t)| (d.id, t)).collect(), skips))
    }

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    /// The book EbookLib wrote: its parts in spine order (not file-name order), the cover
    /// (an image, no text) left out, each part's visible text as EbookLib was given it.
    #[test]
    fn a_book_is_read_part_by_part_in_spine_order() {
        let (docs, skips) = read(&fixture("book.epub"), true).unwrap();
        assert!(skips.is_empty(), "{skips:?}");
        let expected: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(fixture("book.expected.json")).unwrap())
                .unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.0.as_str()).collect();
        let want: Vec<String> = expected
            .iter()
            .map(|e| format!("book.epub#{}", e["part"].as_str().unwrap()))
            .collect();
        assert_eq!(ids, want);
        for ((_, text), e) in docs.iter().zip(&expected) {
            assert_eq!(words(text), words(e["text"].as_str().unwrap()));
        }
    }

    /// Hostile and broken books are skipped naming why (and are errors when strict).
    #[test]
    fn drm_bombs_and_broken_books_are_refused_by_name() {
        for (name, why) in [
            ("drm.epub", "encrypted (DRM): c1.xhtml"),
            ("bomb.epub", "(a ZIP bomb?)"),
            ("no-package.epub", "names no package"),
        ] {
            let (docs, skips) = read(&fixture(name), false).unwrap();
            assert!(docs.is_empty(), "{name}");
            assert_eq!(skips.len(), 1, "{name}: {skips:?}");
            assert!(
                skips[0].starts_with("EPUB: ") && skips[0].contains(why),
                "{name}: {skips:?}"
            );
            let e = read(&fixture(name), true).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(why), "{e}");
        }
        let d = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(fixture("book.epub")).unwrap();
        let cut = d.path().join("cut.epub");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let (_, skips) = read(&cut, false).unwrap();
        assert!(
            skips[0].contains("not a readable ZIP container"),
            "{skips:?}"
        );
    }

    /// Corrupted books (bytes overwritten at random, deterministic seed): each is read or
    /// refused, never a panic.
    #[test]
    fn corrupted_books_never_panic() {
        let good = std::fs::read(fixture("book.epub")).unwrap();
        testing::corrupted_copies(&good, "x.epub");
    }

    #[test]
    fn every_entry_counts_against_the_limits() {
        let bytes = std::fs::read(fixture("book.epub")).unwrap();
        let tight = Limits {
            entry: 400,
            total: 1 << 20,
        };
        let mut book = Container::open(bytes.clone(), tight).unwrap();
        let e = book.spine().err().unwrap_or_default();
        assert!(e.contains("expands to more than 400 bytes"), "{e}");
        let small_total = Limits {
            entry: 1 << 20,
            total: 2000,
        };
        let mut book = Container::open(bytes, small_total).unwrap();
        let mut err = String::new();
        for p in [
            "META-INF/container.xml",
            "EPUB/content.opf",
            "EPUB/text/b-intro.xhtml",
            "EPUB/toc.ncx",
        ] {
            if let Err(e) = book.read(p) {
                err = e;
                break;
            }
        }
        assert!(err.contains("more than 2000 bytes in all"), "{err:?}");
    }

    #[test]
    fn hrefs_resolve_inside_the_container() {
        assert_eq!(resolve("OEBPS/", "text/ch1.xhtml"), "OEBPS/text/ch1.xhtml");
        assert_eq!(resolve("OEBPS/text/", "../ch2.xhtml"), "OEBPS/ch2.xhtml");
        assert_eq!(resolve("", "../../etc/passwd"), "etc/passwd");
        assert_eq!(percent_decode("my%20chapter.xhtml"), "my chapter.xhtml");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
