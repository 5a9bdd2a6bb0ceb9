//! A file's format from its name, and a reader that undoes its compression (`.gz`, `.zst`).

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

/// The format and compression a file name says, `Err(reason)` when the name says nothing
/// miascan reads.
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
        Some("parquet") => {
            return Err(
                "a compressed Parquet file (Parquet compresses inside: decompress it)".into(),
            )
        }
        Some(other) => return Err(format!("unsupported format (.{other})")),
        None => return Err("no file extension: format unknown (use --format)".into()),
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
        assert!(f("p.png").unwrap_err().contains(".png"));
        assert!(f("index").unwrap_err().contains("no file extension"));
        assert!(f("a.gz").is_err());
        assert_eq!(
            f("train-00000-of-00002.parquet"),
            Ok((Format::Parquet, Compression::None))
        );
        assert!(f("x.parquet.zst").is_err());
    }
}
