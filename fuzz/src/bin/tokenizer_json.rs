//! tokenizer.json files (Hugging Face tokenizers, BOS probe, vocabulary hash), then a few
//! texts through whatever loaded.
fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokenizer.json");
    afl::fuzz!(|data: &[u8]| {
        std::fs::write(&path, data).expect("write");
        if let Ok(t) = miascan::model::Tokenizer::from_json_file(&path) {
            for text in ["", "Hello world", "<|endoftext|> 🦙 \t\n"] {
                if let Ok(ids) = t.encode("t", text) {
                    let _ = t.token_strings(&ids);
                }
                let _ = t.offsets("t", text);
            }
        }
    });
}
