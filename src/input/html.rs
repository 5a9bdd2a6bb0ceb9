//! HTML → the text a reader sees: parsed with a real HTML5 parser (html5ever through
//! `scraper`), the text of the body kept, scripts, styles, templates and the head never.
//! Block elements start a new line; runs of whitespace inside text collapse as a browser
//! shows them.

use ego_tree::NodeRef;
use scraper::{Html, Node};

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "head", "title", "svg", "math", "iframe", "object",
];

/// Elements that break the line.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "blockquote",
    "pre",
    "hr",
    "dd",
    "dt",
    "dl",
    "figure",
    "figcaption",
    "main",
    "form",
    "address",
    "td",
    "th",
];

/// The visible text of an HTML document.
pub fn visible_text(html: &str) -> String {
    let doc = Html::parse_document(html);
    let mut out = String::new();
    walk(doc.tree.root(), &mut out, false);
    // one line per block; blank lines and edge spaces dropped
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn walk(node: NodeRef<'_, Node>, out: &mut String, pre: bool) {
    match node.value() {
        Node::Text(t) => {
            if pre {
                out.push_str(t);
            } else {
                for (i, word) in t.split_whitespace().enumerate() {
                    let starts_space = i == 0 && t.starts_with(char::is_whitespace);
                    if (i > 0 || starts_space) && !out.ends_with([' ', '\n']) && !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
                if t.ends_with(char::is_whitespace)
                    && !t.trim().is_empty()
                    && !out.ends_with([' ', '\n'])
                {
                    out.push(' ');
                }
            }
        }
        Node::Element(e) => {
            let name = e.name();
            if HIDDEN.contains(&name) {
                return;
            }
            let block = BLOCK.contains(&name);
            if block {
                out.push('\n');
            }
            let pre = pre || name == "pre" || name == "textarea";
            for c in node.children() {
                walk(c, out, pre);
            }
            if block {
                out.push('\n');
            }
        }
        Node::Document | Node::Fragment => {
            for c in node.children() {
                walk(c, out, pre);
            }
        }
        _ => {}
    }
}

impl super::collection::Reader<'_, '_> {
    /// An HTML file as one document: its visible text (read whole, up to
    /// `max_record_bytes`).
    pub(super) fn html(
        &mut self,
        path: &std::path::Path,
        id: String,
        reader: Box<dyn std::io::Read>,
    ) -> crate::error::Result<()> {
        let Some(bytes) = self.read_capped(path, reader)? else {
            return Ok(());
        };
        let (html, repaired) = match self.decode(path, None, bytes) {
            Ok(t) => t,
            Err(e) => return self.problem(path, None, super::collection::message_of(e)),
        };
        let text = visible_text(&html);
        let doc = super::collection::Doc {
            id,
            source: path.display().to_string(),
            label: None,
            lines: false,
            pages: Vec::new(),
        };
        self.whole(doc, &text, repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_visible_text_only() {
        let html = r#"<!doctype html><html><head><title>T</title><style>p{color:red}</style>
            <script>var x = "<p>no</p>";</script></head>
            <body><h1>Title  here</h1><p>One <b>bold</b>
            word.</p><!-- comment --><noscript>hidden</noscript>
            <ul><li>a &amp; b</li><li>&lt;script&gt;</li></ul><pre>  keep
  spaces</pre></body></html>"#;
        let t = visible_text(html);
        assert_eq!(
            t,
            "Title here\nOne bold word.\na & b\n<script>\nkeep\nspaces"
        );
    }

    #[test]
    fn malformed_html_still_yields_text() {
        assert_eq!(visible_text("<p>open <div>nested"), "open\nnested");
        assert_eq!(visible_text("plain text"), "plain text");
        assert_eq!(visible_text(""), "");
    }
}
