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

/// Expanded bytes per compressed byte above which a compressed file (`.gz`, `.zst`) is
/// refused once it has expanded past [`RATIO_FREE_BYTES`]: the rule ZIP entries follow
/// ([`super::container::MAX_RATIO`]). Compressed logs and changelogs expand 3–50:1; a run of
/// one letter reaches about 1000:1 in gzip, far more in zstd.
pub const MAX_RATIO: u64 = super::container::MAX_RATIO;
/// Expansion below which no ratio is held against a file (small files of repeated text).
pub const RATIO_FREE_BYTES: u64 = 1 << 20;
/// Bytes a compressed file may expand to by default (`--max-expanded-bytes`).
pub const DEFAULT_MAX_EXPANDED: u64 = 1 << 30;

/// Counts the bytes read through it (the compressed side of a decoder).
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A decoder's output held within bounds: at most `max` bytes, and no more than
/// [`MAX_RATIO`] expanded bytes per compressed byte once past [`RATIO_FREE_BYTES`]. Past a
/// bound it fails with an error of kind `InvalidData` whose message names the bound.
pub struct Bounded<'a> {
    decoder: Box<dyn Read + 'a>,
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
    expanded: u64,
    max: u64,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.expanded += n as u64;
        let refuse = |m: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidData, m));
        if self.expanded > self.max {
            return refuse(format!(
                "expands to more than {} bytes (--max-expanded-bytes)",
                self.max
            ));
        }
        let compressed = self.compressed.get().max(1);
        if self.expanded > RATIO_FREE_BYTES && self.expanded > MAX_RATIO * compressed {
            return refuse(format!(
                "expands more than {MAX_RATIO}:1 ({} bytes from {compressed}; a compression bomb?)",
                self.expanded
            ));
        }
        Ok(n)
    }
}

/// Wraps `r` in the decoder for `c`, its output bounded as [`Bounded`] says (`max`
/// expanded bytes). An uncompressed `r` is returned as it is.
pub fn decompress<'a>(
    r: Box<dyn Read + 'a>,
    c: Compression,
    max: u64,
) -> std::io::Result<Box<dyn Read + 'a>> {
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let counted = Counting {
        inner: r,
        count: count.clone(),
    };
    let decoder: Box<dyn Read + 'a> = match c {
        Compression::None => return Ok(counted.inner),
        // MultiGzDecoder: concatenated members (as `cat a.gz b.gz` makes) are one stream
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(counted)?),
    };
    Ok(Box::new(Bounded {
        decoder,
        compressed: count,
        expanded: 0,
        max,
    }))
}

/// Decompresses `r` to its end without keeping it: `Err` with the bound's message when it
/// is over a bound (or cannot be decompressed), so a compression bomb is refused before any
/// of it is read as text.
pub fn check_expansion(r: Box<dyn Read + '_>, c: Compression, max: u64) -> Result<u64, String> {
    let mut d = decompress(r, c, max).map_err(|e| format!("cannot decompress: {e}"))?;
    std::io::copy(&mut d, &mut std::io::sink()).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => e.to_string(),
        _ => format!("cannot decompress: {e}"),
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

#[cfg(test)]
mod bounds {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn check(c: Compression, packed: Vec<u8>, max: u64) -> Result<u64, String> {
        check_expansion(Box::new(std::io::Cursor::new(packed)), c, max)
    }

    #[test]
    fn a_compression_bomb_is_refused_by_its_ratio() {
        let letters = vec![b'a'; 20 << 20];
        let gz = gzip(&letters);
        let e = check(Compression::Gzip, gz, DEFAULT_MAX_EXPANDED).unwrap_err();
        assert!(e.contains("more than 200:1"), "{e}");
        let zst = zstd::encode_all(&letters[..], 3).unwrap();
        let e = check(Compression::Zstd, zst, DEFAULT_MAX_EXPANDED).unwrap_err();
        assert!(e.contains("more than 200:1"), "{e}");
    }

    #[test]
    fn small_or_ordinary_files_pass_and_the_cap_holds() {
        // under 1 MiB no ratio is held against a file, however repetitive
        let small = vec![b'a'; 1 << 20];
        assert_eq!(
            check(Compression::Gzip, gzip(&small), DEFAULT_MAX_EXPANDED),
            Ok(1 << 20)
        );
        // text of ordinary redundancy (numbered log lines: about 10:1) passes at any size
        let log: String = (0..200_000)
            .map(|i| format!("{i:08} GET /item/{} 200 {}\n", i * 7919 % 100_003, i % 977))
            .collect();
        let n = log.len() as u64;
        assert_eq!(
            check(
                Compression::Gzip,
                gzip(log.as_bytes()),
                DEFAULT_MAX_EXPANDED
            ),
            Ok(n)
        );
        // the per-file cap, whatever the ratio
        let e = check(Compression::Gzip, gzip(log.as_bytes()), n - 1).unwrap_err();
        assert!(
            e.contains("more than") && e.contains("--max-expanded-bytes"),
            "{e}"
        );
        // uncompressed input is not bounded here
        let mut plain = decompress(
            Box::new(std::io::Cursor::new(small.clone())),
            Compression::None,
            1,
        )
        .unwrap();
        let mut out = Vec::new();
        plain.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), small.len());
    }
}
