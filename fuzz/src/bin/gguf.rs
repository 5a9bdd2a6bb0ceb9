//! GGUF files: header, metadata, tensor directory, tokenizer and network loading.
fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.gguf");
    afl::fuzz!(|data: &[u8]| {
        std::fs::write(&path, data).expect("write");
        let _ = miascan::model::Model::load(&path, &candle_core::Device::Cpu);
        let _ = miascan::model::Tokenizer::open(path.to_str().expect("utf-8"), true);
    });
}
