//! What a file is: its name picks a structured reader (JSONL, CSV/TSV, Parquet, HTML) and
//! the compression (`.gz`, `.zst`); every other file is read as text, and its *content*
//! decides whether it is text (the text reader refuses binary data: a NUL byte, as ripgrep
//! decides, or the signature of a PDF or a ZIP container). Readers undo the compression and
//! transcode UTF-16 (by its byte-order mark) or a legacy encoding (`--encoding`) to UTF-8.

use super::Format;
use std::io::Read;
use std::path::Path;

/// Compression wrapped around a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The format and compression a file name says: a structured format by its extension, else
/// text (README, LICENSE, changelog, source code, `.conf`…: the content decides). `Err`
/// only for what cannot be read as named (a compressed Parquet file).
pub fn detect(path: &Path) -> Result<(Format, Compression), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (inner, comp) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let ext = Path::new(inner)
        .extension()
        .map(|e| e.to_string_lossy().into_owned());
    let format = match ext.as_deref() {
        Some("txt" | "text" | "md" | "markdown" | "rst") => Format::Text,
        Some("html" | "htm" | "xhtml") => Format::Html,
        Some("jsonl" | "ndjson") => Format::Jsonl,
        Some("csv") => Format::Csv,
        Some("tsv" | "tab") => Format::Tsv,
        Some("parquet") if comp == Compression::None => Format::Parquet,
        Some("epub") if comp == Compression::None => Format::Epub,
        Some("pdf") => Format::Pdf,
        Some("docx" | "odt") if comp == Compression::None => Format::Office,
        Some("parquet") => {
            return Err(
                "a compressed Parquet file (Parquet compresses inside: decompress it)".into(),
            )
        }
        _ => Format::Text,
    };
    Ok((format, comp))
}

/// The compression of a name alone (for `--format` given explicitly).
pub fn compression(path: &Path) -> Compression {
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".gz") {
        Compression::Gzip
    } else if name.ends_with(".zst") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `r` so that it yields UTF-8: a UTF-16 (or UTF-8) byte-order mark decides, else
/// `encoding` when given, else the bytes pass through as they are (to be checked as UTF-8).
pub fn transcode<'a>(
    r: Box<dyn Read + 'a>,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Box<dyn Read + 'a> {
    Box::new(
        encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(encoding)
            .bom_override(true)
            .utf8_passthru(true)
            .build(r),
    )
}

/// Why bytes that start a file are not text, for the formats whose signature is known and
/// that have no NUL byte early on (a PDF, a ZIP container). Other
/// binary files are found by their NUL bytes.
pub fn binary_signature(start: &[u8]) -> Option<&'static str> {
    if start.starts_with(b"%PDF-") {
        Some("a PDF file (its text layer is read when it starts with %PDF- or is named .pdf)")
    } else if start.starts_with(b"PK\x03\x04") {
        Some("a ZIP archive (EPUB, DOCX and ODT are read by those names; unpack other archives to scan their files)")
    } else {
        None
    }
}

/// Where a PDF's signature may start (the specification allows leading bytes).
const SIGNATURE_WINDOW: usize = 1024;

/// Whether `start` (a file's first bytes) holds a PDF signature.
pub fn is_pdf(start: &[u8]) -> bool {
    let w = &start[..start.len().min(SIGNATURE_WINDOW)];
    w.windows(5).any(|x| x == b"%PDF-")
}

/// Wraps `r` in the decoder for `c`.
pub fn decompress<'a>(
    r: Box<dyn Read + 'a>,
    c: Compression,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => r,
        // MultiGzDecoder: concatenated members (as `cat a.gz b.gz` makes) are one stream
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        let f = |n: &str| detect(Path::new(n));
        assert_eq!(f("a.txt"), Ok((Format::Text, Compression::None)));
        assert_eq!(f("A.MD"), Ok((Format::Text, Compression::None)));
        assert_eq!(f("x.html.gz"), Ok((Format::Html, Compression::Gzip)));
        assert_eq!(f("x.jsonl.zst"), Ok((Format::Jsonl, Compression::Zstd)));
        assert_eq!(f("t.tsv"), Ok((Format::Tsv, Compression::None)));
        // every other name is text, and its content decides
        assert_eq!(f("p.png"), Ok((Format::Text, Compression::None)));
        assert_eq!(f("README"), Ok((Format::Text, Compression::None)));
        assert_eq!(f("main.rs"), Ok((Format::Text, Compression::None)));
        assert_eq!(f("changelog.gz"), Ok((Format::Text, Compression::Gzip)));
        assert_eq!(f("NEWS.Debian.gz"), Ok((Format::Text, Compression::Gzip)));
        assert_eq!(
            f("train-00000-of-00002.parquet"),
            Ok((Format::Parquet, Compression::None))
        );
        assert!(f("x.parquet.zst").is_err());
    }
}
