//! Score records read back: the JSONL that `miascan score` (or `eval --scores-out`) wrote,
//! so that a collection scored once can be evaluated again without the models.
//!
//! Every record must come from the same target (and reference) model as the first one, by
//! file hash: pooling scores of different models into one ROC curve would be a silent
//! error. Scores written as `null` (passage too short) stay missing.

use super::{decode_utf8, jsonl::parse_label};
use crate::error::{Error, Result};
use crate::record::PassageRecord;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One record read back.
#[derive(Debug, Clone)]
pub struct ScoredRecord {
    pub result: PassageRecord,
    /// `model.sha256` and `reference.sha256` (if any) of the record.
    pub models: (String, Option<String>),
    pub label: Option<bool>,
}

/// Reads score records from JSONL files; `label_field` (e.g. `member`, as `--scores-out`
/// writes) is required on every line when given.
pub fn read_scored(paths: &[PathBuf], label_field: Option<&str>) -> Result<Vec<ScoredRecord>> {
    let mut out: Vec<ScoredRecord> = Vec::new();
    for path in paths {
        let text = decode_utf8(path, None, read_bytes(path)?)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec = parse_record(path, i + 1, line, label_field)?;
            if let Some(first) = out.first() {
                if first.models != rec.models {
                    return Err(invalid(
                        path,
                        i + 1,
                        format!(
                            "scored by model {:?} (reference {:?}), but the first record by {:?} \
                             (reference {:?}); evaluate one model's scores at a time",
                            rec.models.0, rec.models.1, first.models.0, first.models.1
                        ),
                    ));
                }
            }
            out.push(rec);
        }
    }
    if out.is_empty() {
        return Err(Error::EmptyInput(format!(
            "no score records in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::InputIo {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, line: usize, message: String) -> Error {
    Error::InvalidInput {
        path: path.to_path_buf(),
        line: Some(line),
        message,
    }
}

fn parse_record(
    path: &Path,
    lineno: usize,
    line: &str,
    label_field: Option<&str>,
) -> Result<ScoredRecord> {
    let err = |m: String| invalid(path, lineno, m);
    let v: Value = serde_json::from_str(line.trim_start_matches('\u{feff}'))
        .map_err(|e| err(format!("malformed JSON: {e}")))?;
    let Value::Object(obj) = &v else {
        return Err(err("expected a JSON object".into()));
    };
    for (key, what) in [
        ("id", "\"id\""),
        ("scores", "\"scores\" object"),
        ("model", "\"model.sha256\""),
    ] {
        if !obj.contains_key(key) {
            return Err(err(format!(
                "no {what}: not a miascan score record (write one with `miascan score`)"
            )));
        }
    }
    let label = match label_field {
        None => None,
        Some(f) => Some(parse_label(obj, f).map_err(err)?),
    };
    let rec: PassageRecord =
        serde_json::from_value(v).map_err(|e| err(format!("not a miascan score record: {e}")))?;
    Ok(ScoredRecord {
        models: (
            rec.model.sha256.clone(),
            rec.reference.as_ref().map(|r| r.sha256.clone()),
        ),
        result: rec,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    const A: &str = r#"{"id":"a","n_tokens":5,"n_scored":4,"scores":{"neg_loss":-2.0,"ref":0.5},"model":{"name":"t","sha256":"aa"},"reference":{"name":"r","sha256":"bb"},"member":true}"#;
    const B: &str = r#"{"id":"b","n_tokens":1,"n_scored":0,"scores":{"neg_loss":null,"ref":null},"reason":"too short","model":{"name":"t","sha256":"aa"},"reference":{"name":"r","sha256":"bb"},"member":false}"#;

    #[test]
    fn reads_scores_labels_and_missing_values() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "s.jsonl", &format!("{A}\n\n{B}\n"));
        let r = read_scored(&[p], Some("member")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].result.scores.get("ref"), Some(0.5));
        assert_eq!(r[0].label, Some(true));
        assert_eq!(r[1].result.scores.get("neg_loss"), None);
        assert_eq!(r[1].result.n_scored, 0);
        let names: Vec<_> = r[0].result.scores.iter().map(|s| &s.0).collect();
        assert_eq!(names, ["neg_loss", "ref"], "file order is kept");
    }

    #[test]
    fn records_of_another_model_are_refused_with_their_line() {
        let d = tempfile::tempdir().unwrap();
        let other = B.replace("\"sha256\":\"aa\"", "\"sha256\":\"cc\"");
        let p = file(&d, "s.jsonl", &format!("{A}\n{other}\n"));
        let e = read_scored(&[p], None).unwrap_err().to_string();
        assert!(e.contains("s.jsonl:2") && e.contains("\"cc\""), "{e}");
    }

    #[test]
    fn passages_are_not_score_records() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "p.jsonl", "{\"id\":\"x\",\"text\":\"hello\"}\n");
        let e = read_scored(&[p], None).unwrap_err().to_string();
        assert!(
            e.contains("p.jsonl:1") && e.contains("not a miascan score record"),
            "{e}"
        );
        let p = file(&d, "l.jsonl", &format!("{A}\n"));
        let e = read_scored(&[p], Some("label")).unwrap_err().to_string();
        assert!(e.contains("no \"label\" label field"), "{e}");
        let p = file(&d, "e.jsonl", "\n");
        assert!(read_scored(&[p], None).is_err());
    }
}
