//! ZIP containers (EPUB books, DOCX and ODT documents), read within bounds: the number of
//! entries, the bytes each entry expands to (counted as they are read, whatever the entry's
//! header claims), the bytes of the whole container, and each entry's expansion ratio. A
//! container over a limit is refused naming the limit (a ZIP bomb is a file, not an outage).

use std::io::{Cursor, Read};

/// Entries a container may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// Expanded bytes per compressed byte above which an entry of over 1 MiB is refused. Text
/// and XML deflate 3–20:1; deflate cannot pass about 1032:1, which a run of one byte
/// reaches: 200:1 is far from the first and well below the second.
pub const MAX_RATIO: u64 = 200;

/// Why a container cannot be read (the message of its skip).
pub(super) type Refusal = String;

/// What may be expanded from one container.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Bytes one entry may expand to.
    pub entry: u64,
    /// Bytes the whole container may expand to.
    pub total: u64,
}

/// An opened container and the bytes expanded from it so far.
pub(super) struct Container {
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
    limits: Limits,
    expanded: u64,
}

impl Container {
    pub fn open(bytes: Vec<u8>, limits: Limits) -> std::result::Result<Container, Refusal> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| format!("not a readable ZIP container ({e})"))?;
        if zip.len() > MAX_ENTRIES {
            return Err(format!(
                "{} entries, more than the {MAX_ENTRIES} a container may hold here",
                zip.len()
            ));
        }
        Ok(Container {
            zip,
            limits,
            expanded: 0,
        })
    }

    /// Entry `name`, expanded within the limits.
    pub fn read(&mut self, name: &str) -> std::result::Result<Vec<u8>, Refusal> {
        let mut f = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(format!("{name} is named but not in the container"))
            }
            Err(e) => return Err(format!("{name}: cannot be read ({e})")),
        };
        if f.encrypted() {
            return Err(format!("{name} is encrypted"));
        }
        let compressed = f.compressed_size();
        let cap = self.limits.entry.min(self.limits.total - self.expanded);
        let mut out = Vec::new();
        (&mut f)
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}: cannot be expanded ({e})"))?;
        let n = out.len() as u64;
        if n > cap {
            return Err(if cap == self.limits.entry {
                format!("{name} expands to more than {} bytes", self.limits.entry)
            } else {
                format!(
                    "the container expands to more than {} bytes in all",
                    self.limits.total
                )
            });
        }
        if n > 1 << 20 && n > MAX_RATIO * compressed.max(1) {
            return Err(format!(
                "{name} expands {}:1, more than {MAX_RATIO}:1 (a ZIP bomb?)",
                n / compressed.max(1)
            ));
        }
        self.expanded += n;
        Ok(out)
    }

    /// Whether the container holds `name`.
    pub fn has(&mut self, name: &str) -> bool {
        self.zip.by_name(name).is_ok()
    }

    pub fn xml(&mut self, name: &str) -> std::result::Result<String, Refusal> {
        let bytes = self.read(name)?;
        String::from_utf8(bytes).map_err(|e| format!("{name} is not UTF-8 ({e})"))
    }
}

pub(super) trait LocalName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl LocalName for roxmltree::Node<'_, '_> {
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

pub(super) fn parse<'a>(
    name: &str,
    text: &'a str,
) -> std::result::Result<roxmltree::Document<'a>, Refusal> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| format!("{name} is not well-formed XML ({e})"))
}
