//! Bad models and bad inputs give clear errors (never panics) with documented exit codes.
use crate::common;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use miascan::model::Model;
use miascan::Error;
use std::path::Path;

fn write_gguf(path: &Path, meta: &[(&str, Value)]) {
    let t = QTensor::quantize(
        &Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut f, &meta, &[("token_embd.weight", &t)]).unwrap();
}

fn tokenizer_meta(pre: &str) -> Vec<(&'static str, Value)> {
    let toks = ["a", "b", "ab", "c"]
        .iter()
        .map(|s| Value::String(s.to_string()))
        .collect();
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String(pre.into())),
        ("tokenizer.ggml.tokens", Value::Array(toks)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1); 4]),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("a b".into())]),
        ),
    ]
}

#[test]
fn missing_model_file() {
    let e = Model::load(Path::new("/nonexistent/model.gguf"), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::ModelIo { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/model.gguf"));
    assert_eq!(e.exit_code(), 4);
}

#[test]
fn truncated_gguf_names_the_tensor() {
    let src = std::fs::read(common::model(common::SMOLLM2)).unwrap();
    let d = tempfile::tempdir().unwrap();
    for cut in [src.len() / 2, 1000, 10] {
        let p = d.path().join("cut.gguf");
        std::fs::write(&p, &src[..cut]).unwrap();
        let e = Model::load(&p, &Device::Cpu).unwrap_err();
        assert!(matches!(e, Error::InvalidModel { .. }), "cut at {cut}: {e}");
        if cut == src.len() / 2 {
            assert!(e.to_string().contains("truncated: tensor"), "{e}");
        }
    }
}

#[test]
fn not_a_gguf_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.gguf");
    std::fs::write(&p, b"this is plain text, not a model").unwrap();
    let e = Model::load(&p, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::InvalidModel { .. }), "{e}");
}

/// Writes a small GGUF with a tokenizer (`pre`), an architecture and extra metadata, and
/// returns the error loading it gives.
fn load_error(pre: &str, arch: &str, extra: Vec<(&'static str, Value)>) -> Error {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.gguf");
    let mut meta = tokenizer_meta(pre);
    meta.push(("general.architecture", Value::String(arch.into())));
    meta.extend(extra);
    write_gguf(&p, &meta);
    Model::load(&p, &Device::Cpu).unwrap_err()
}

#[test]
fn hostile_header_values_are_errors_not_panics() {
    let e = load_error(
        "smollm",
        "llama",
        vec![("general.alignment", Value::U32(0))],
    );
    assert!(matches!(e, Error::InvalidModel { .. }), "{e}");
}

/// On the command line, a parser's panic is one clean message naming the file, exit 4, and
/// no panic text on stderr.
#[test]
fn hostile_model_file_gives_one_clean_message() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("hostile.gguf");
    let mut meta = tokenizer_meta("smollm");
    meta.push(("general.architecture", Value::String("llama".into())));
    meta.push(("general.alignment", Value::U32(0)));
    write_gguf(&p, &meta);
    let o = common::cli(&["inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hostile.gguf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unsupported_architecture_is_named() {
    let e = load_error("smollm", "mamba", vec![]);
    assert!(matches!(e, Error::UnsupportedModel { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("mamba") && msg.contains("supported"), "{msg}");
}

#[test]
fn unknown_pre_tokenizer_is_refused_by_name() {
    let e = load_error("tekken", "llama", vec![]);
    assert!(matches!(e, Error::UnsupportedModel { .. }), "{e}");
    assert!(e.to_string().contains("pre = tekken"), "{e}");
}

#[test]
fn cli_exit_codes_and_messages() {
    let d = tempfile::tempdir().unwrap();
    let model = common::model(common::SMOLLM2);
    let m = model.to_str().unwrap();
    // bad input: invalid UTF-8 → 3, file named
    let bad = d.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9\n").unwrap();
    let o = common::cli(&["score", "-m", m, bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("latin1.txt") && err.contains("invalid UTF-8"),
        "{err}"
    );
    // malformed JSONL → 3 with the line
    let j = d.path().join("p.jsonl");
    std::fs::write(&j, "{\"text\": \"fine\"}\n{oops}\n").unwrap();
    let o = common::cli(&["score", "-m", m, j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("p.jsonl:2"));
    // missing model → 4
    let ok = d.path().join("ok.txt");
    std::fs::write(&ok, "Some text.").unwrap();
    let o = common::cli(&["score", "-m", "/nonexistent.gguf", ok.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    // usage → 2
    let o = common::cli(&["score", "--k", "0", "-m", m, ok.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let o = common::cli(&["score", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    // empty input → 3
    let e = d.path().join("empty.jsonl");
    std::fs::write(&e, "\n").unwrap();
    let o = common::cli(&["score", "-m", m, e.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
}
