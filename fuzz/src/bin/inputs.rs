//! Input collections: the one streaming reader, leniently (as `scan`), on a file whose
//! format is chosen by the first byte (text, JSONL, CSV, HTML, gzip-compressed JSONL).
use miascan::input::collection::{read_collection, CollectOptions, Utf8Policy};

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    afl::fuzz!(|data: &[u8]| {
        let Some((&kind, body)) = data.split_first() else {
            return;
        };
        let ext = ["txt", "jsonl", "csv", "html", "jsonl.gz", "tsv"][kind as usize % 6];
        let path = dir.path().join(format!("doc.{ext}"));
        std::fs::write(&path, body).expect("write");
        for strict in [false, true] {
            let opts = CollectOptions {
                strict,
                relative_ids: true,
                segment_bytes: 64,
                utf8: if strict { Utf8Policy::Skip } else { Utf8Policy::Replace },
                ..CollectOptions::default()
            };
            let _ = read_collection(std::slice::from_ref(&path), &opts, &|_| true, &mut |_| Ok(()));
        }
    });
}
