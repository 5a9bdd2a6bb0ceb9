//! tokenizer.json files (Hugging Face tokenizers, BOS probe, vocabulary hash), then a few
//! texts through whatever loaded.
#[path = "../targets.rs"]
mod targets;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    afl::fuzz!(|data: &[u8]| targets::tokenizer_json(dir.path(), data));
}
