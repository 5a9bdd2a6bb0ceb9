//! Hostile model files, generated: truncated, bit-flipped and resized GGUF headers
//! (metadata and tensor directory), and tokenizer.json / config.json with fields removed,
//! retyped or corrupted. Whatever the bytes, loading returns (a model or) an error: never a
//! panic, never a backtrace (RUST_BACKTRACE=1 is set), and file bytes in messages are
//! escaped. Thousands of cases per run (PROPTEST_CASES overrides).

#[path = "it/common/mod.rs"]
mod common;

use candle_core::Device;
use miascan::model::Model;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};

fn tiny(rel: &str) -> PathBuf {
    common::golden().join("tiny").join(rel)
}

/// Where the tensor data starts (the header is everything before).
fn header_len(bytes: &[u8]) -> usize {
    let mut c = std::io::Cursor::new(bytes);
    let content = candle_core::quantized::gguf_file::Content::read(&mut c).unwrap();
    content.tensor_data_offset as usize
}

fn check_message(e: &miascan::Error) {
    let msg = e.to_string();
    assert!(!msg.contains("backtrace"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert!(
        !msg.chars().any(|c| c.is_control() && c != '\n'),
        "unescaped control character in {msg:?}"
    );
    assert!(msg.len() < 4000, "message of {} bytes", msg.len());
}

fn load(path: &Path) {
    if let Err(e) = Model::load(path, &Device::Cpu) {
        check_message(&e);
    }
}

/// A mutation of a GGUF header.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    /// A little-endian u64 (a length or a count) written at an offset.
    Word(usize, u64),
}

fn mutation(header: usize, len: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..len).prop_map(Mutation::Truncate),
        (0..header, 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (
            0..header.saturating_sub(8),
            prop_oneof![
                Just(0u64),
                Just(1u64 << 60),
                Just(u64::MAX),
                Just(1u64 << 32),
                any::<u64>()
            ]
        )
            .prop_map(|(at, v)| Mutation::Word(at, v)),
    ]
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match *m {
        Mutation::Truncate(n) => b.truncate(n),
        Mutation::Flip(at, bit) => b[at] ^= 1 << bit,
        Mutation::Word(at, v) => b[at..at + 8].copy_from_slice(&v.to_le_bytes()),
    }
    b
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_gguf_headers_are_errors_not_panics() {
    std::env::set_var("RUST_BACKTRACE", "1");
    let d = tempfile::tempdir().unwrap();
    for (file, n) in [
        ("qwen3/model-q8_0.gguf", 1500),
        ("phi3/model-f32.gguf", 500),
    ] {
        let bytes = std::fs::read(tiny(file)).unwrap();
        let header = header_len(&bytes);
        let path = d.path().join("m.gguf");
        let mut runner = TestRunner::new(Config {
            cases: cases(n),
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&mutation(header, bytes.len()), |m| {
                std::fs::write(&path, apply(&bytes, &m)).unwrap();
                load(&path);
                Ok(())
            })
            .unwrap();
    }
}

/// A JSON value with one field removed, retyped, or made absurd, at any depth.
fn corrupt(v: &serde_json::Value, pick: usize, how: u8) -> serde_json::Value {
    use serde_json::Value;
    let mut v = v.clone();
    let mut seen = 0usize;
    fn walk(v: &mut Value, pick: usize, how: u8, seen: &mut usize) -> bool {
        if let Value::Object(map) = v {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if *seen == pick {
                    match how % 6 {
                        0 => {
                            map.remove(&k);
                        }
                        1 => {
                            map.insert(k, Value::String("x".into()));
                        }
                        2 => {
                            map.insert(k, serde_json::json!(-1));
                        }
                        3 => {
                            map.insert(k, serde_json::json!(1e300));
                        }
                        4 => {
                            map.insert(k, Value::Null);
                        }
                        _ => {
                            map.insert(k, serde_json::json!(1u64 << 62));
                        }
                    }
                    return true;
                }
                *seen += 1;
                if walk(map.get_mut(&k).unwrap(), pick, how, seen) {
                    return true;
                }
            }
        } else if let Value::Array(a) = v {
            for x in a.iter_mut().take(8) {
                if walk(x, pick, how, seen) {
                    return true;
                }
            }
        }
        false
    }
    walk(&mut v, pick, how, &mut seen);
    v
}

#[test]
fn corrupted_config_and_tokenizer_json_are_errors_not_panics() {
    std::env::set_var("RUST_BACKTRACE", "1");
    let d = tempfile::tempdir().unwrap();
    for arch in ["qwen3", "gemma3_text", "phi3", "gpt2", "gpt_neox"] {
        let src = tiny(arch);
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            if name.ends_with(".json") && !name.starts_with("golden") || name == "model.safetensors"
            {
                std::fs::copy(&f, d.path().join(&name)).unwrap();
            }
        }
        for (file, n) in [("config.json", 300), ("tokenizer.json", 100)] {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut runner = TestRunner::new(Config {
                cases: cases(n),
                failure_persistence: None,
                ..Config::default()
            });
            let strategy = prop_oneof![
                (0usize..400, any::<u8>()).prop_map(|(p, h)| (Some((p, h)), None)),
                (0..text.len()).prop_map(|cut| (None, Some(cut))),
            ];
            runner
                .run(&strategy, |(structural, cut)| {
                    let out = match (structural, cut) {
                        (Some((p, h)), _) => corrupt(&value, p, h).to_string(),
                        (_, Some(cut)) => String::from_utf8_lossy(&text.as_bytes()[..cut]).into(),
                        _ => unreachable!(),
                    };
                    std::fs::write(d.path().join(file), out).unwrap();
                    load(d.path());
                    Ok(())
                })
                .unwrap();
            std::fs::write(d.path().join(file), &text).unwrap();
        }
    }
}

#[test]
fn safetensors_header_claiming_100_gb_is_refused_before_allocating() {
    let d = tempfile::tempdir().unwrap();
    let src = tiny("llama");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), d.path().join(f)).unwrap();
    }
    let header = serde_json::json!({
        "model.embed_tokens.weight": {"dtype": "F32", "shape": [25_000_000_000u64], "data_offsets": [0, 100_000_000_000u64]}
    })
    .to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 64]);
    std::fs::write(d.path().join("model.safetensors"), bytes).unwrap();
    let e = Model::load(d.path(), &Device::Cpu).unwrap_err();
    check_message(&e);
    assert!(e.to_string().contains("truncated"), "{e}");
    // a header length beyond the file
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(d.path().join("model.safetensors"), bytes).unwrap();
    let e = Model::load(d.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("header"), "{e}");
}

#[test]
fn corrupted_rope_base_is_an_error_naming_the_key() {
    // rope.freq_base 10000 → −2.2e-14 by one flipped sign/exponent pattern, as a user saw
    let bytes = std::fs::read(tiny("qwen3/model-f32.gguf")).unwrap();
    let pos = bytes
        .windows(b"qwen3.rope.freq_base".len())
        .position(|w| w == b"qwen3.rope.freq_base")
        .unwrap()
        + b"qwen3.rope.freq_base".len()
        + 4; // value type (u32), then the f32
    let mut b = bytes.clone();
    b[pos..pos + 4].copy_from_slice(&(-2.2e-14f32).to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.gguf");
    std::fs::write(&p, b).unwrap();
    let e = Model::load(&p, &Device::Cpu).unwrap_err();
    assert!(matches!(e, miascan::Error::InvalidModel { .. }), "{e}");
    assert!(e.to_string().contains("qwen3.rope.freq_base"), "{e}");
}

/// Deterministic and exhaustive: every field of every tiny checkpoint's config.json (nested
/// ones too) removed, made a string, -1, 1e300, null or 2^62, one at a time.
#[test]
fn every_config_field_corrupted_every_way() {
    std::env::set_var("RUST_BACKTRACE", "1");
    let d = tempfile::tempdir().unwrap();
    let mut n = 0;
    for arch in [
        "llama",
        "llama31",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma2",
        "gemma3_text",
        "olmo2",
        "phi3",
        "gpt2",
        "gpt_neox",
    ] {
        let src = tiny(arch);
        for f in ["tokenizer.json", "model.safetensors"] {
            std::fs::copy(src.join(f), d.path().join(f)).unwrap();
        }
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        for pick in 0..60 {
            for how in 0..6u8 {
                let bad = corrupt(&value, pick, how);
                if bad == value {
                    continue;
                }
                std::fs::write(d.path().join("config.json"), bad.to_string()).unwrap();
                load(d.path());
                n += 1;
            }
        }
    }
    eprintln!("{n} corrupted configs");
    assert!(n > 1000);
}

/// A metadata array claiming 2^26 … 2^60 elements is refused by its length against the
/// bytes left, before anything is allocated for it (peak RSS of `inspect` on these files,
/// measured: 7.5 MB).
#[test]
fn huge_metadata_array_lengths_are_refused_up_front() {
    let bytes = std::fs::read(tiny("qwen3/model-q8_0.gguf")).unwrap();
    let key = b"tokenizer.ggml.tokens";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 8;
    let d = tempfile::tempdir().unwrap();
    for n in [1u64 << 26, (1 << 30) - 1, 1 << 32, 1 << 60] {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&n.to_le_bytes());
        let p = d.path().join("m.gguf");
        std::fs::write(&p, b).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_miascan"))
            .args(["inspect", p.to_str().unwrap()])
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "{n}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("array"), "{err}");
        assert!(
            !err.contains("backtrace") && err.lines().count() == 1,
            "{err}"
        );
    }
}

/// A tensor whose dimensions multiply past 2^64 (found by the fuzzer: candle's element count
/// overflowed) is refused by name.
#[test]
fn tensor_dimensions_that_overflow_are_refused() {
    let bytes = std::fs::read(tiny("qwen3/model-q8_0.gguf")).unwrap();
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).rposition(|w| w == name).unwrap() + name.len();
    let mut b = bytes.clone();
    // n_dims (u32), then dims[0], dims[1] (u64)
    b[at + 12..at + 20].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.gguf");
    std::fs::write(&p, b).unwrap();
    let e = Model::load(&p, &Device::Cpu).unwrap_err();
    check_message(&e);
    let msg = e.to_string();
    assert!(
        msg.contains("token_embd.weight") && msg.contains("impossible shape"),
        "{msg}"
    );
}
