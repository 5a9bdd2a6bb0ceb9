//! Helpers for the readers' tests: a collection read into documents and skips, the
//! fixtures of a format, and corrupted copies of a fixture.

use super::collection::{read_collection, CollectOptions, Doc, Event};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// `tests/data/DIR/NAME`.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
        .join(name)
}

/// Every document (with its text, one segment each here) and every skip's reason.
pub type Read = (Vec<(Doc, String)>, Vec<String>);

/// Reads `paths` with relative ids, `strict` or leniently, with `max_record_bytes`.
pub fn read(paths: &[PathBuf], strict: bool, max_record_bytes: usize) -> Result<Read> {
    let opts = CollectOptions {
        strict,
        relative_ids: true,
        max_record_bytes,
        ..CollectOptions::default()
    };
    let (mut docs, mut skips) = (Vec::new(), Vec::new());
    read_collection(paths, &opts, &|_| true, &mut |e| {
        match e {
            Event::Segment { doc, text, .. } => docs.push((doc.clone(), text.to_string())),
            Event::Skipped { reason, .. } => skips.push(reason),
            Event::End { .. } => {}
        }
        Ok(())
    })?;
    Ok((docs, skips))
}

/// Reads 400 copies of `good` with 1–7 bytes overwritten at random (a fixed seed), each
/// saved as `name`, leniently: every copy is read or refused with a reason, none panics.
/// Returns (copies read into a document, copies refused); both must happen.
pub fn corrupted_copies(good: &[u8], name: &str) -> (usize, usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(name);
    let (mut read_ok, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut b = good.to_vec();
        for _ in 0..rng.random_range(1..8) {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        std::fs::write(&path, &b).unwrap();
        let (docs, skips) = read(std::slice::from_ref(&path), false, 256 << 20).unwrap();
        if skips.is_empty() {
            read_ok += usize::from(!docs.is_empty());
        } else {
            refused += 1;
        }
    }
    assert!(
        read_ok > 0 && refused > 0,
        "{name}: {read_ok} read, {refused} refused"
    );
    (read_ok, refused)
}
