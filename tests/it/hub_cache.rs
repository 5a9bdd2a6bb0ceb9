//! Hub ids resolve from a Hugging Face cache laid out as Python's huggingface_hub does, with
//! no network: `--offline` and `HF_HUB_OFFLINE=1`. (Downloads themselves cannot be tested
//! here; the resolution after a download is this same code.)
use crate::common;

use std::path::Path;

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A cache holding the tiny llama checkpoint as `org/tiny-llama` at `main`.
fn fake_cache(dir: &Path) {
    let root = dir.join("models--org--tiny-llama");
    let snap = root.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), COMMIT).unwrap();
    let src = common::golden().join("tiny/llama");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(src.join(f), snap.join(f)).unwrap();
    }
}

fn run(cache: &Path, args: &[&str], offline_env: bool) -> std::process::Output {
    let mut c = common::miascan();
    c.args(args)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", "http://127.0.0.1:9") // never reachable: no download can succeed
        .stdin(std::process::Stdio::null());
    if offline_env {
        c.env("HF_HUB_OFFLINE", "1");
    }
    c.output().unwrap()
}

#[test]
fn hub_id_scores_from_the_cache_offline() {
    let d = tempfile::tempdir().unwrap();
    fake_cache(d.path());
    let input = d.path().join("p.txt");
    std::fs::write(&input, "Hello there, a short passage.").unwrap();
    for (flag, env) in [(true, false), (false, true)] {
        let mut args = vec!["score", "-m", "org/tiny-llama", input.to_str().unwrap()];
        if flag {
            args.push("--offline");
        }
        let o = run(d.path(), &args, env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["model"]["name"], "org/tiny-llama");
        assert_eq!(v["model"]["revision"], COMMIT);
        assert!(v["scores"]["minkpp_0.2"].is_number());
    }
}

#[test]
fn offline_names_what_is_missing() {
    let d = tempfile::tempdir().unwrap();
    fake_cache(d.path());
    let o = run(d.path(), &["inspect", "--offline", "org/absent"], false);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org/absent@main") && err.contains("not in the Hugging Face cache"),
        "{err}"
    );
    std::fs::remove_file(d.path().join(format!(
        "models--org--tiny-llama/snapshots/{COMMIT}/tokenizer.json"
    )))
    .unwrap();
    let o = run(d.path(), &["inspect", "org/tiny-llama"], true);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lacks tokenizer.json"));
}
