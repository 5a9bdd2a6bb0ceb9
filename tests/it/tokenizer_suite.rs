//! GGUF tokenizers against llama.cpp: every causal-LM vocabulary of llama.cpp's own tokenizer
//! suite (scripts/fetch/fetch-vocabs.sh) on the suite's strings (`.inp`/`.out`, ids checked by
//! llama.cpp's test-tokenizer-0 with add_special = false, parse_special = false) and on the
//! golden corpus (tests/data/vocab-ids, made by llama.cpp through llama-cpp-python:
//! scripts/fixtures/golden-vocab-ids.py). Ids must be identical, string for string.
use crate::common;

use miascan::model::Tokenizer;
use std::path::Path;

const SEP: &str = "\n__ggml_vocab_test__\n";

/// The suite's test strings, split as test-tokenizer-0 splits them.
fn suite_strings(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        match raw[pos..].find(SEP) {
            Some(n) => {
                out.push(&raw[pos..pos + n]);
                pos += n + SEP.len();
            }
            None => {
                out.push(&raw[pos..]);
                break;
            }
        }
    }
    out
}

fn ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.pieces("t", text).unwrap().iter().map(|p| p.0).collect()
}

/// Spans are in order, inside the text, and never overlap: each starts at or after the end
/// of the one before, except that the byte pieces of one character share its span exactly.
fn check_spans(name: &str, tok: &Tokenizer, text: &str) {
    let pieces = tok.pieces("t", text).unwrap();
    let mut prev = (0, 0);
    for &(id, a, b) in &pieces {
        assert!(
            a <= b && b <= text.len(),
            "{name}: token {id} span {a}..{b} in a text of {} bytes",
            text.len()
        );
        assert!(
            a >= prev.1 || (a, b) == prev,
            "{name}: token {id} span {a}..{b} overlaps the one before, {}..{}",
            prev.0,
            prev.1
        );
        prev = (a, b);
    }
}

fn load(dir: &Path, name: &str) -> Tokenizer {
    let p = dir.join(format!("ggml-vocab-{name}.gguf"));
    Tokenizer::open(p.to_str().unwrap(), true).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_causal_vocabulary_of_the_suite_gives_llama_cpps_ids() {
    let dir = common::vocabs();
    let mut outs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_prefix("ggml-vocab-")?
                .strip_suffix(".gguf.out")
                .map(String::from)
        })
        .filter(|n| n != "bert-bge" && n != "nomic-bert-moe")
        .collect();
    outs.sort();
    assert_eq!(outs.len(), 14, "vocabularies with .out files: {outs:?}");
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for name in &outs {
        let tok = load(&dir, name);
        let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
        let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
        let strings = suite_strings(&inp);
        let expected: Vec<Vec<u32>> = out
            .lines()
            .take(strings.len())
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect();
        assert_eq!(
            expected.len(),
            strings.len(),
            "{name}: .inp and .out disagree"
        );
        let mut ok = 0;
        for (s, want) in strings.iter().zip(&expected) {
            check_spans(name, &tok, s);
            let got = ids(&tok, s);
            if &got == want {
                ok += 1;
            } else {
                failures.push(format!("{name}: {s:?}: got {got:?}, llama.cpp {want:?}"));
            }
        }
        report.push(format!("{name} {ok}/{}", strings.len()));
    }
    eprintln!("suite strings: {}", report.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_causal_vocabulary_gives_llama_cpps_ids_on_the_golden_corpus() {
    let dir = common::vocabs();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let corpus: std::collections::HashMap<String, String> =
        std::fs::read_to_string(golden.join("golden/corpus.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().into(),
                    v["text"].as_str().unwrap().into(),
                )
            })
            .collect();
    let mut names: Vec<String> = std::fs::read_dir(golden.join("vocab-ids"))
        .unwrap()
        .map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".jsonl").unwrap().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 17, "{names:?}");
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        let tok = load(&dir, name);
        let text = std::fs::read_to_string(golden.join(format!("vocab-ids/{name}.jsonl"))).unwrap();
        let (mut ok, mut n) = (0, 0);
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
            let s = &corpus[id];
            check_spans(name, &tok, s);
            n += 1;
            let got = ids(&tok, s);
            if got == want {
                ok += 1;
            } else {
                failures.push(format!(
                    "{name} {id}: got {:?}…, llama.cpp {:?}…",
                    &got[..got.len().min(20)],
                    &want[..want.len().min(20)]
                ));
            }
        }
        report.push(format!("{name} {ok}/{n}"));
    }
    eprintln!("golden corpus: {}", report.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn byte_level_tokens_spell_the_text_back() {
    let dir = common::vocabs();
    let tok = load(&dir, "llama-bpe");
    let text = "Hello, wörld!\n\t  🦙 <|begin_of_text|> 3.14159 中文";
    let pieces = tok.pieces("t", text).unwrap();
    // byte-level pieces may split a character (the llama emoji is 2 tokens): compare bytes
    let spelled: Vec<u8> = pieces
        .iter()
        .flat_map(|&(_, a, b)| text.as_bytes()[a..b].to_vec())
        .collect();
    assert_eq!(spelled, text.as_bytes());
    let ids: Vec<u32> = pieces.iter().map(|p| p.0).collect();
    let shown = tok.token_strings(&ids).concat();
    assert!(shown.starts_with("Hello, wörld!\n\t  "), "{shown}");
    // a literal special-token string is text, never the control token
    assert!(!ids.contains(&128000));
}

#[test]
fn tokenize_command_on_vocabulary_only_files() {
    let dir = common::vocabs();
    let run = |vocab: &str, bos: &str| {
        let mut child = common::miascan()
            .args(["tokenize", "--bos", bos, "-m"])
            .arg(dir.join(format!("ggml-vocab-{vocab}.gguf")))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Hello world")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // SentencePiece (Llama 2): BOS 1 by default, space prefix
    let o = run("llama-spm", "auto");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"], serde_json::json!([1, 15043, 3186]));
    assert_eq!(v["tokens"][1], " Hello");
    assert_eq!(v["spans"], serde_json::json!([null, [0, 5], [5, 11]]));
    let o = run("llama-spm", "never");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"], serde_json::json!([15043, 3186]));
    // an encoder vocabulary is refused by name, exit 4
    let o = run("bert-bge", "auto");
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bert"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// Texts holding literal control and user-defined token strings (up to 48 of each type per
/// vocabulary, plus `<s>`, `</s>`, `<|endoftext|>`, `<|im_end|>`, `<unk>`, each in five
/// contexts) give llama.cpp's own ids with `parse_special = false`
/// (tests/data/vocab-ids-special, made by scripts/fixtures/golden-special-ids.py through
/// llama-cpp-python). Catches a control-looking piece the file calls user-defined (Phi-3's
/// `</s>`) being cut out as its id instead of read as text.
#[test]
fn literal_special_strings_are_tokenised_as_llama_cpp_tokenises_them() {
    let dir = common::vocabs();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vocab-ids-special");
    let mut names: Vec<String> = std::fs::read_dir(&golden)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".jsonl").map(String::from)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 17, "{names:?}");
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    for name in &names {
        let tok = load(&dir, name);
        let text = std::fs::read_to_string(golden.join(format!("{name}.jsonl"))).unwrap();
        let (mut ok, mut n) = (0, 0);
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = v["text"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
            check_spans(name, &tok, s);
            n += 1;
            let got = ids(&tok, s);
            if got == want {
                ok += 1;
            } else {
                failures.push(format!("{name} {s:?}: got {got:?}, llama.cpp {want:?}"));
            }
        }
        assert!(n >= 25, "{name}: only {n} texts");
        report.push(format!("{name} {ok}/{n}"));
    }
    eprintln!("literal special strings: {}", report.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
