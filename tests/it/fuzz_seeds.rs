//! The fuzz targets (fuzz/src/targets.rs, the bodies the AFL++ binaries run) built into the
//! test binary and every seed of their corpora replayed through them: a target that no
//! longer compiles, or a seed that now panics, fails here rather than at the next fuzzing
//! session. (Fuzzing itself needs AFL++: scripts/fuzz.sh.)

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&Path, &[u8])) {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&seeds)
        .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", seeds.display());
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        // the seed itself, and its truncations at a few points (what a fuzzer tries first)
        for cut in [data.len(), data.len() / 2, data.len() / 7, 1, 0] {
            run(dir.path(), &data[..cut]);
        }
    }
    eprintln!("fuzz target {target}: {} seeds replayed", files.len());
}

#[test]
fn gguf_seeds_replay() {
    replay("gguf", targets::gguf);
}

#[test]
fn tokenizer_json_seeds_replay() {
    replay("tokenizer_json", targets::tokenizer_json);
}

#[test]
fn inputs_seeds_replay() {
    replay("inputs", targets::inputs);
}
