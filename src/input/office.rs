//! Word-processor documents: DOCX (Office Open XML) and ODT (OpenDocument), one document per
//! file, its body text in document order: a paragraph (or heading, or list item) per line,
//! a table row per line with its cells separated by tabs. What is not body text is left out
//! on purpose: deleted revisions, field codes, comments, footnotes, headers and footers
//! (they repeat on every page, and a note cut into a sentence breaks it).
//!
//! Which of the two a file is, the container says (`word/document.xml` through its package
//! relationships, or an OpenDocument `mimetype`), not the name. Both are ZIP containers,
//! read within the bounds of [`super::container`].

use super::collection::{message_of, Doc, Reader};
use super::container::{parse, Container, Limits, LocalName, Refusal};
use crate::error::Result;
use roxmltree::Node;
use std::io::Read;
use std::path::Path;

impl Reader<'_, '_> {
    /// A DOCX or ODT file as one document of its body text.
    pub(super) fn office(&mut self, path: &Path, id: String, reader: Box<dyn Read>) -> Result<()> {
        let Some(bytes) = self.read_capped(path, reader)? else {
            return Ok(());
        };
        let limits = Limits {
            entry: self.opts.max_record_bytes as u64,
            total: 4 * self.opts.max_record_bytes as u64,
        };
        let (kind, xml) = match Container::open(bytes, limits).and_then(|mut c| body_xml(&mut c)) {
            Ok(found) => found,
            Err(why) => return self.problem(path, None, why),
        };
        let (xml, _) = match self.decode(path, None, xml) {
            Ok(t) => t,
            Err(e) => {
                let why = format!("{kind}: its body is not text: {}", message_of(e));
                return self.problem(path, None, why);
            }
        };
        let text = match body_text(kind, &xml) {
            Ok(t) => t,
            Err(why) => return self.problem(path, None, format!("{kind}: {why}")),
        };
        if text.trim().is_empty() {
            return self.problem(path, None, format!("{kind}: no text in its body"));
        }
        let doc = Doc {
            id,
            source: path.display().to_string(),
            label: None,
            lines: false,
            pages: Vec::new(),
        };
        self.whole(doc, &text, false)
    }
}

/// The two kinds of document read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docx,
    Odt,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Docx => "DOCX",
            Kind::Odt => "ODT",
        })
    }
}

const ODT_MIME: &str = "application/vnd.oasis.opendocument.text";

/// Which kind the container holds, and its body's XML.
fn body_xml(c: &mut Container) -> std::result::Result<(Kind, Vec<u8>), Refusal> {
    if c.has("mimetype") {
        let mime = c.read("mimetype")?;
        let mime = String::from_utf8_lossy(&mime);
        if mime.trim() == ODT_MIME {
            return Ok((Kind::Odt, c.read("content.xml")?));
        }
        return Err(format!(
            "an OpenDocument container of type {:?}, not a text document (ODT)",
            mime.trim()
        ));
    }
    if c.has("_rels/.rels") {
        let rels = c.xml("_rels/.rels")?;
        let doc = parse("_rels/.rels", &rels)?;
        let main = doc
            .descendants()
            .filter(|n| n.has_tag_name_local("Relationship"))
            .find(|n| {
                n.attribute("Type")
                    .is_some_and(|t| t.ends_with("/officeDocument"))
            })
            .and_then(|n| n.attribute("Target"))
            .map(|t| t.trim_start_matches('/').to_string())
            .ok_or("DOCX: _rels/.rels names no main document (officeDocument)")?;
        if !main.ends_with(".xml") || !main.starts_with("word/") {
            return Err(format!(
                "an Office container whose main part is {main}, not a Word document"
            ));
        }
        return Ok((Kind::Docx, c.read(&main).map_err(|e| format!("DOCX: {e}"))?));
    }
    Err("a ZIP container that is neither a DOCX (no _rels/.rels) nor an ODT (no mimetype)".into())
}

/// The body's text: a line per paragraph or table row.
pub fn body_text(kind: Kind, xml: &str) -> std::result::Result<String, Refusal> {
    let doc = parse("the body", xml)?;
    let mut lines = Vec::new();
    let root = doc.root_element();
    let body = match kind {
        Kind::Docx => root.descendants().find(|n| n.has_tag_name_local("body")),
        Kind::Odt => root.descendants().find(|n| {
            n.has_tag_name_local("text")
                && n.parent_element()
                    .is_some_and(|p| p.has_tag_name_local("body"))
        }),
    }
    .ok_or("no body element")?;
    blocks(kind, body, &mut lines);
    Ok(lines.join("\n"))
}

/// Paragraphs and table rows below `node`, in order, each a line.
fn blocks(kind: Kind, node: Node, out: &mut Vec<String>) {
    for child in node.children().filter(Node::is_element) {
        let name = child.tag_name().name();
        match (kind, name) {
            (Kind::Docx, "p") | (Kind::Odt, "p" | "h") => {
                let mut s = String::new();
                inline(kind, child, &mut s);
                out.push(s);
            }
            (Kind::Docx, "tbl") | (Kind::Odt, "table") => table(kind, child, out),
            // what is not body text
            (Kind::Docx, "sectPr")
            | (Kind::Odt, "tracked-changes" | "sequence-decls" | "variable-decls") => {}
            _ => blocks(kind, child, out), // sdt, customXml, lists, sections…
        }
    }
}

/// A table: each row a line, its cells' text separated by tabs (a cell's paragraphs joined
/// by spaces; a table inside a cell flattened into it).
fn table(kind: Kind, node: Node, out: &mut Vec<String>) {
    let (row, cell) = match kind {
        Kind::Docx => ("tr", "tc"),
        Kind::Odt => ("table-row", "table-cell"),
    };
    for r in node.descendants().filter(|n| n.has_tag_name_local(row)) {
        // rows of this table only, not of a table nested in a cell
        if r.ancestors()
            .skip(1)
            .find(|a| a.has_tag_name_local(node.tag_name().name()))
            != Some(node)
        {
            continue;
        }
        let cells: Vec<String> = r
            .children()
            .filter(|c| c.has_tag_name_local(cell))
            .map(|c| {
                let mut lines = Vec::new();
                blocks(kind, c, &mut lines);
                lines
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        out.push(cells.join("\t").trim_end().to_string());
    }
}

/// A paragraph's text.
fn inline(kind: Kind, node: Node, s: &mut String) {
    for child in node.children() {
        if child.is_text() {
            // DOCX keeps its text in w:t only; whitespace between elements is layout
            if kind == Kind::Odt {
                s.push_str(child.text().unwrap_or(""));
            }
            continue;
        }
        if !child.is_element() {
            continue;
        }
        match (kind, child.tag_name().name()) {
            (Kind::Docx, "t") => s.push_str(child.text().unwrap_or("")),
            (_, "tab") => s.push('\t'),
            (Kind::Docx, "br" | "cr") | (Kind::Odt, "line-break") => s.push('\n'),
            (Kind::Docx, "noBreakHyphen") => s.push('-'),
            (Kind::Odt, "s") => {
                let n: usize = child
                    .attribute(("urn:oasis:names:tc:opendocument:xmlns:text:1.0", "c"))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                s.extend(std::iter::repeat_n(' ', n.min(1000)));
            }
            // not body text: deletions, field codes, comments, notes
            (
                Kind::Docx,
                "del" | "delText" | "instrText" | "commentReference" | "footnoteReference"
                | "endnoteReference",
            )
            | (Kind::Odt, "note" | "annotation" | "annotation-end" | "tracked-changes") => {}
            _ => inline(kind, child, s), // runs, hyperlinks, insertions, spans
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::input::testing;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        testing::fixture("office", name)
    }

    /// (document id, text) of every document, and every skip's reason, read leniently.
    fn read(paths: &[PathBuf], max_record_bytes: usize) -> (Vec<(String, String)>, Vec<String>) {
        let (docs, skips) = testing::read(paths, false, max_record_bytes).unwrap();
        (docs.into_iter().map(|(d, t)| (d.id, t)).collect(), skips)
    }

    /// The letter python-docx and odfpy wrote from the same text: its body exactly as they
    /// were given it (heading, paragraphs, table rows as tab-separated lines), the header
    /// left out.
    #[test]
    fn docx_and_odt_bodies_read_as_their_writers_were_given_them() {
        let want = std::fs::read_to_string(fixture("letter.expected.txt")).unwrap();
        for name in ["letter.docx", "letter.odt"] {
            let (docs, skips) = read(&[fixture(name)], 256 << 20);
            assert!(skips.is_empty(), "{name}: {skips:?}");
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].0, name);
            assert_eq!(docs[0].1, want.trim_end(), "{name}");
            assert!(
                !docs[0].1.contains("HEADER"),
                "{name}: a header is not body text"
            );
        }
    }

    #[test]
    fn bombs_empty_bodies_and_other_containers_are_skipped_with_their_reason() {
        let names = ["bomb.docx", "empty.docx", "spreadsheet.odt"];
        let paths: Vec<_> = names.iter().map(|n| fixture(n)).collect();
        let (docs, skips) = read(&paths, 256 << 20);
        assert!(docs.is_empty(), "{docs:?}");
        assert!(skips[0].contains("(a ZIP bomb?)"), "{}", skips[0]);
        assert_eq!(skips[1], "DOCX: no text in its body");
        assert!(
            skips[2].contains("not a text document (ODT)"),
            "{}",
            skips[2]
        );
        // a limit on the bytes an entry expands to, counted as read
        let (_, skips) = read(&[fixture("bomb.docx")], 1 << 20);
        assert!(
            skips[0].contains("expands to more than 1048576 bytes"),
            "{skips:?}"
        );
    }

    /// Corrupted letters: each read or refused with a reason, none a panic.
    #[test]
    fn corrupted_documents_never_panic() {
        for name in ["letter.docx", "letter.odt"] {
            let good = std::fs::read(fixture(name)).unwrap();
            testing::corrupted_copies(&good, name);
        }
    }

    #[test]
    fn docx_inline_markup_deletions_and_fields() {
        let xml = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r><w:del><w:r><w:delText>deleted </w:delText></w:r></w:del><w:ins><w:r><w:t>inserted</w:t></w:r></w:ins><w:r><w:tab/><w:t>after tab</w:t><w:br/><w:t>next line</w:t></w:r></w:p>
<w:p><w:r><w:instrText> PAGE </w:instrText></w:r><w:hyperlink><w:r><w:t>link text</w:t></w:r></w:hyperlink></w:p>
<w:sectPr><w:pgSz/></w:sectPr></w:body></w:document>"#;
        let text = super::body_text(super::Kind::Docx, xml).unwrap();
        assert_eq!(text, "Kept inserted\tafter tab\nnext line\nlink text");
    }
}
