//! A text file (or stdin) read whole as one passage.

use super::{decode_utf8, Passage};
use crate::error::Result;
use std::path::Path;

pub(super) fn parse(path: &Path, bytes: Vec<u8>) -> Result<Passage> {
    let mut text = decode_utf8(path, None, bytes)?;
    // A byte-order mark is an encoding artefact, not content the model could have seen.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let name = path.display().to_string();
    Ok(Passage {
        id: name.clone(),
        text,
        source: name,
        label: None,
    })
}
