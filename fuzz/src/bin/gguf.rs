//! GGUF files: header, metadata, tensor directory, tokenizer and network loading.
#[path = "../targets.rs"]
mod targets;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    afl::fuzz!(|data: &[u8]| targets::gguf(dir.path(), data));
}
