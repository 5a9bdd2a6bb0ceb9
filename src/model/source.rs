//! What `--model` names: a GGUF file, a checkpoint folder, or a Hugging Face hub id
//! `org/name[@revision]`. Hub models live in the standard Hugging Face cache (the layout
//! Python's `huggingface_hub` uses, so both share downloads):
//! `<cache>/models--org--name/{refs/<revision>, snapshots/<commit>/<files>, blobs/}`.
//!
//! Cache directory: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
//! `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. `HF_TOKEN` (or the
//! token file beside the cache) authenticates downloads; `HF_ENDPOINT` changes the server.
//! With `--offline` or `HF_HUB_OFFLINE=1` nothing is downloaded and whatever is missing from
//! the cache is named.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A parsed `--model` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A local file or folder.
    Local(PathBuf),
    /// A hub repository and revision (branch, tag or commit; default `main`).
    Hub { repo: String, revision: String },
}

impl ModelSpec {
    /// An existing path is local; otherwise `org/name` or `org/name@rev` (with no further
    /// slashes in the id, and no leading `.` or `/`) is a hub id; anything else is a path.
    pub fn parse(spec: &str) -> ModelSpec {
        let path = Path::new(spec);
        if path.exists() {
            return ModelSpec::Local(path.to_path_buf());
        }
        let (id, revision) = match spec.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => (id, rev),
            Some(_) => return ModelSpec::Local(path.to_path_buf()),
            None => (spec, "main"),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match id.split_once('/') {
            Some((org, name))
                if valid_part(org) && valid_part(name) && !spec.ends_with(".gguf") =>
            {
                ModelSpec::Hub {
                    repo: id.to_string(),
                    revision: revision.to_string(),
                }
            }
            _ => ModelSpec::Local(path.to_path_buf()),
        }
    }
}

/// The Hugging Face hub cache directory, from the environment (see the module docs).
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("huggingface/hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// Whether `HF_HUB_OFFLINE` asks for cache-only operation.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
        .unwrap_or(false)
}

/// A hub model found in the cache: its snapshot folder and the commit it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSnapshot {
    pub dir: PathBuf,
    pub commit: String,
}

fn hub_error(repo: &str, revision: &str, message: String) -> Error {
    Error::ModelIo {
        path: PathBuf::from(format!("{repo}@{revision}")),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, message),
    }
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// What a caller needs from a hub snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A whole checkpoint: config, tokenizer and weights.
    Model,
    /// The tokenizer alone (`--tokenizer HUB_ID`, a served model's hub id): a few MB, never
    /// the weights.
    Tokenizer,
}

/// Files a snapshot lacks for `need`: the tokenizer, and for a model the config and either
/// one `model.safetensors` or the index with every shard it lists.
fn missing_files(dir: &Path, need: Need) -> Vec<String> {
    let mut missing = Vec::new();
    if need == Need::Tokenizer {
        if !dir.join("tokenizer.json").is_file() {
            missing.push("tokenizer.json".to_string());
        }
        return missing;
    }
    for f in ["config.json", "tokenizer.json"] {
        if !dir.join(f).is_file() {
            missing.push(f.to_string());
        }
    }
    match crate::model::hf::weight_files(dir) {
        Ok(_) => {}
        Err(_) if dir.join("model.safetensors.index.json").is_file() => {
            missing.push("shards listed in model.safetensors.index.json".into())
        }
        Err(_) => missing.push("model.safetensors (or model.safetensors.index.json)".into()),
    }
    missing
}

/// Finds what `need` asks of a hub model in the cache without any network access.
pub fn resolve_cached(cache: &Path, repo: &str, revision: &str, need: Need) -> Result<HubSnapshot> {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let hint = "download it without --offline / HF_HUB_OFFLINE, or with `huggingface-cli download`";
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        let r = root.join("refs").join(revision);
        match std::fs::read_to_string(&r) {
            Ok(c) => c.trim().to_string(),
            Err(_) => {
                return Err(hub_error(
                    repo,
                    revision,
                    format!(
                        "not in the Hugging Face cache {} (no {}); {hint}",
                        cache.display(),
                        r.display()
                    ),
                ))
            }
        }
    };
    let dir = root.join("snapshots").join(&commit);
    let missing = missing_files(&dir, need);
    if !missing.is_empty() {
        return Err(hub_error(
            repo,
            revision,
            format!(
                "snapshot {} in the cache lacks {}; {hint}",
                dir.display(),
                missing.join(", ")
            ),
        ));
    }
    Ok(HubSnapshot { dir, commit })
}

/// Resolves a hub id to a snapshot folder holding what `need` asks, downloading what is
/// missing unless `offline`.
pub fn resolve_hub(repo: &str, revision: &str, offline: bool, need: Need) -> Result<HubSnapshot> {
    let cache = hub_cache_dir().ok_or_else(|| {
        hub_error(
            repo,
            revision,
            "no Hugging Face cache directory: set HF_HUB_CACHE or HF_HOME".into(),
        )
    })?;
    if offline || offline_from_env() {
        return resolve_cached(&cache, repo, revision, need);
    }
    download::fetch(&cache, repo, revision, need)?;
    resolve_cached(&cache, repo, revision, need)
}

#[cfg(feature = "hub")]
mod download {
    use super::{hub_error, Need};
    use crate::error::Result;
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};
    use std::path::Path;

    /// Downloads the tokenizer, and for a model the config and weights (all shards), into the
    /// cache, with progress bars.
    pub(super) fn fetch(cache: &Path, repo: &str, revision: &str, need: Need) -> Result<()> {
        let err = |e: hf_hub::api::sync::ApiError| {
            hub_error(repo, revision, format!("download failed: {e}"))
        };
        let c = Cache::new(cache.to_path_buf());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| c.token());
        let mut builder = ApiBuilder::from_cache(c)
            .with_token(token)
            .with_progress(true);
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder.build().map_err(err)?;
        let r = api.repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            revision.to_string(),
        ));
        r.get("tokenizer.json").map_err(err)?;
        if need == Need::Tokenizer {
            return Ok(());
        }
        r.get("config.json").map_err(err)?;
        match r.get("model.safetensors.index.json") {
            Ok(index) => {
                let text = std::fs::read_to_string(&index).map_err(|e| {
                    hub_error(
                        repo,
                        revision,
                        format!("cannot read {}: {e}", index.display()),
                    )
                })?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| hub_error(repo, revision, format!("malformed index: {e}")))?;
                let mut shards: Vec<&str> = v["weight_map"]
                    .as_object()
                    .map(|m| m.values().filter_map(|f| f.as_str()).collect())
                    .unwrap_or_default();
                shards.sort();
                shards.dedup();
                for s in shards {
                    r.get(s).map_err(err)?;
                }
            }
            Err(_) => {
                r.get("model.safetensors").map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(not(feature = "hub"))]
mod download {
    use super::{hub_error, Need};
    use crate::error::Result;
    use std::path::Path;

    pub(super) fn fetch(_cache: &Path, repo: &str, revision: &str, _need: Need) -> Result<()> {
        Err(hub_error(
            repo,
            revision,
            "this miascan was built without the `hub` feature: use --offline with a filled cache, or a local folder".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_ids_and_paths() {
        assert_eq!(
            ModelSpec::parse("EleutherAI/pythia-70m"),
            ModelSpec::Hub {
                repo: "EleutherAI/pythia-70m".into(),
                revision: "main".into()
            }
        );
        assert_eq!(
            ModelSpec::parse("org/name@v1.0"),
            ModelSpec::Hub {
                repo: "org/name".into(),
                revision: "v1.0".into()
            }
        );
        for local in [
            "./org/name",
            "/abs/path",
            "a/b/c",
            "model.gguf",
            "dir/model.gguf",
            "org/name@",
        ] {
            assert!(
                matches!(ModelSpec::parse(local), ModelSpec::Local(_)),
                "{local}"
            );
        }
    }

    fn fake_snapshot(cache: &Path, repo: &str, commit: &str, files: &[&str]) -> PathBuf {
        let root = cache.join(format!("models--{}", repo.replace('/', "--")));
        let snap = root.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), format!("{commit}\n")).unwrap();
        for f in files {
            std::fs::write(snap.join(f), b"{}").unwrap();
        }
        snap
    }

    #[test]
    fn resolves_refs_and_commits_in_a_fake_cache() {
        let d = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = fake_snapshot(
            d.path(),
            "org/tiny",
            commit,
            &["config.json", "tokenizer.json", "model.safetensors"],
        );
        let s = resolve_cached(d.path(), "org/tiny", "main", Need::Model).unwrap();
        assert_eq!(
            s,
            HubSnapshot {
                dir: snap.clone(),
                commit: commit.into()
            }
        );
        let s = resolve_cached(d.path(), "org/tiny", commit, Need::Model).unwrap();
        assert_eq!(s.dir, snap);
    }

    #[test]
    fn says_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        fake_snapshot(d.path(), "org/tiny", commit, &["config.json"]);
        let e = resolve_cached(d.path(), "org/tiny", "main", Need::Model)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tokenizer.json") && e.contains("model.safetensors"),
            "{e}"
        );
        let e = resolve_cached(d.path(), "org/other", "main", Need::Model)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("org/other@main") && e.contains("not in the Hugging Face cache"),
            "{e}"
        );
        let e = resolve_cached(d.path(), "org/tiny", "v2", Need::Model)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refs/v2"), "{e}");
        // a tokenizer alone needs tokenizer.json alone
        let e = resolve_cached(d.path(), "org/tiny", "main", Need::Tokenizer)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tokenizer.json") && !e.contains("model.safetensors"),
            "{e}"
        );
        assert_eq!(
            resolve_cached(d.path(), "org/tiny", "main", Need::Model)
                .unwrap_err()
                .exit_code(),
            4
        );
    }
}
