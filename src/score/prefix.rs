//! The prefix texts of ReCaLL (`--recall-prefix NAME|FILE`, a non-member prefix) and
//! Con-ReCall (`--member-prefix NAME|FILE`): a named set bundled from `prompts/`, or the
//! user's file. A file's leading `#` lines are its header (source, licence) and not
//! part of the prefix.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The prefix sets in `prompts/`, compiled in: a name works wherever the binary runs.
const BUNDLED: &[(&str, &str)] = &[
    (
        "recall-written-2026",
        include_str!("../../prompts/recall-written-2026.txt"),
    ),
    (
        "member-public-domain",
        include_str!("../../prompts/member-public-domain.txt"),
    ),
];

/// A prefix text, ready to condition on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixText {
    /// The bundled name, or the file's path as given.
    pub name: String,
    /// The prefix, header removed.
    pub text: String,
    /// sha256 of `text` (hex): what calibrations and records store, so that scores made
    /// with another prefix are never compared.
    pub sha256: String,
}

/// The names of the bundled prefix sets.
pub fn bundled_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}

/// A bundled prefix by name, else the file at `spec`.
pub fn load(spec: &str) -> Result<PrefixText> {
    load_as("--recall-prefix", spec)
}

/// [`load`], errors naming `flag`.
pub fn load_as(flag: &str, spec: &str) -> Result<PrefixText> {
    if let Some((name, raw)) = BUNDLED.iter().find(|(n, _)| *n == spec) {
        return parse(flag, name, raw);
    }
    let path = Path::new(spec);
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "{flag} {spec}: neither a bundled prefix ({}) nor a file",
            bundled_names().join(", ")
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Usage(format!("{flag} {spec}: {e}")))?;
    let raw = String::from_utf8(bytes).map_err(|e| {
        Error::Usage(format!(
            "{flag} {spec}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(flag, spec, &raw)
}

/// The text after the header lines (`#` first) and the blank lines that follow them.
fn parse(flag: &str, name: &str, raw: &str) -> Result<PrefixText> {
    let body: Vec<&str> = raw
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .skip_while(|l| l.trim().is_empty())
        .collect();
    let text = body.join("\n").trim_end().to_string();
    if text.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {name}: no text after the header"
        )));
    }
    let sha256 = crate::model::tokenizer::hex(&Sha256::digest(text.as_bytes()));
    Ok(PrefixText {
        name: name.to_string(),
        text,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_not_the_prefix_and_bundled_names_load() {
        let p = load("recall-written-2026").unwrap();
        assert!(
            p.text.starts_with("The lock keeper at Marrow Bend"),
            "{}",
            &p.text[..40]
        );
        assert!(!p.text.contains("licence"));
        assert_eq!(p.sha256.len(), 64);
        let q = parse(
            "--f",
            "x",
            "# source: here\n# licence: CC0\n\n\nHello.\nWorld.\n\n",
        )
        .unwrap();
        assert_eq!(q.text, "Hello.\nWorld.");
        assert!(parse("--f", "x", "# only a header\n\n").is_err());
    }

    #[test]
    fn a_missing_or_binary_file_is_named() {
        let e = load("/nonexistent/prefix.txt").unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/prefix.txt") && e.contains("recall-written-2026"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("bin.txt");
        std::fs::write(&f, b"ok\xff\xfe").unwrap();
        let e = load(f.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("offset 2"), "{e}");
    }
}
