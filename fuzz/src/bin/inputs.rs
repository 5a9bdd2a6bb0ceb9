//! Input collections: the one streaming reader, leniently (as `scan`), on a file whose
//! format is chosen by the first byte (text, JSONL, CSV, HTML, gzip-compressed JSONL).
#[path = "../targets.rs"]
mod targets;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    afl::fuzz!(|data: &[u8]| targets::inputs(dir.path(), data));
}
