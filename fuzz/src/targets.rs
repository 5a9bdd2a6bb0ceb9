#![allow(dead_code)] // each AFL++ binary uses one target
//! The fuzz targets' bodies: what each one does with one input. The AFL++ binaries in
//! `src/bin/` call these in their loops; the main crate's tests include this file
//! (`tests/it/fuzz_seeds.rs`) and replay every seed through it, so the targets build and run
//! in CI without AFL++.

use miascan::input::collection::{read_collection, CollectOptions, Utf8Policy};
use std::path::Path;

/// GGUF files: header, metadata, tensor directory, tokenizer and network loading. `dir` is a
/// scratch folder reused between inputs.
pub fn gguf(dir: &Path, data: &[u8]) {
    let path = dir.join("m.gguf");
    std::fs::write(&path, data).expect("write");
    let _ = miascan::model::Model::load(&path, &candle_core::Device::Cpu);
    let _ = miascan::model::Tokenizer::open(path.to_str().expect("utf-8"), true);
}

/// tokenizer.json files (Hugging Face tokenizers, BOS probe, vocabulary hash), then a few
/// texts through whatever loaded.
pub fn tokenizer_json(dir: &Path, data: &[u8]) {
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, data).expect("write");
    if let Ok(t) = miascan::model::Tokenizer::from_json_file(&path) {
        for text in ["", "Hello world", "<|endoftext|> 🦙 \t\n"] {
            if let Ok(ids) = t.encode("t", text) {
                let _ = t.token_strings(&ids);
            }
            let _ = t.offsets("t", text);
        }
    }
}

/// Input collections: the one streaming reader, leniently (as `scan`) and strictly, on a
/// file whose name is chosen by the first byte (text, JSONL, CSV, HTML, gzip-compressed
/// JSONL, TSV, no extension, a bare `.gz`: read as text if the content is, an EPUB book, a
/// PDF, a DOCX and an ODT document), each read
/// as UTF-8 and, for a tenth of the inputs, as Windows-1252.
pub fn inputs(dir: &Path, data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let name = [
        "doc.txt",
        "doc.jsonl",
        "doc.csv",
        "doc.html",
        "doc.jsonl.gz",
        "doc.tsv",
        "README",
        "changelog.gz",
        "book.epub",
        "paper.pdf",
        "letter.docx",
        "letter.odt",
    ][kind as usize % 12];
    let path = dir.join(name);
    let encoding = (kind % 10 == 9).then_some(encoding_rs::WINDOWS_1252);
    std::fs::write(&path, body).expect("write");
    for strict in [false, true] {
        let opts = CollectOptions {
            read: miascan::input::ReadOptions {
                encoding,
                ..Default::default()
            },
            strict,
            relative_ids: true,
            segment_bytes: 64,
            utf8: if strict {
                Utf8Policy::Skip
            } else {
                Utf8Policy::Replace
            },
            ..CollectOptions::default()
        };
        let _ = read_collection(std::slice::from_ref(&path), &opts, &|_| true, &mut |_| {
            Ok(())
        });
    }
}
