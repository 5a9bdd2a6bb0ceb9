//! The passage record: one JSON line per passage, written by `score`, `eval --scores-out`
//! and `scan` (`passages.jsonl`) and read back by `eval --scored` and `merge`. One typed,
//! serde-derived struct for every writer and reader, so the schema cannot drift between
//! them. Non-finite numbers are written as `null` (JSON has no NaN) and read back as missing.

use crate::model::ModelIdentity;
use crate::score::extraction::ExtractionEvidence;
use crate::score::{Scores, Stats};
use crate::scorer::PassageResult;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

fn finite_vec<S: Serializer>(x: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        None => s.serialize_none(),
        Some(v) => s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x))),
    }
}

fn nan_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    let v: Option<Vec<Option<f64>>> = Option::deserialize(d)?;
    Ok(v.map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
}

/// One passage's record. Fields are only ever added, never renamed (see the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageRecord {
    pub id: String,
    /// `scan`: the document the passage was cut from, its index there, and its byte span
    /// `[start, end)` in the document's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[u64; 2]>,
    pub n_tokens: usize,
    pub n_scored: usize,
    #[serde(default)]
    pub stats: Stats,
    pub scores: Scores,
    /// Why there are no numbers (`n_scored = 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With a calibration: every score's p-value, the decision and how it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_values: Option<Scores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_n: Option<usize>,
    pub model: ModelIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ModelIdentity>,
    /// With `--token-logprobs` (or a heat map): ids as scored (BOS included), their text,
    /// and one value per scored token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "finite_vec",
        deserialize_with = "nan_vec"
    )]
    pub token_logprobs: Option<Vec<f64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "finite_vec",
        deserialize_with = "nan_vec"
    )]
    pub token_mu: Option<Vec<f64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "finite_vec",
        deserialize_with = "nan_vec"
    )]
    pub token_sigma: Option<Vec<f64>>,
    /// Rank of each scored token among the model's predictions (1 = top): heat maps only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ranks: Option<Vec<u32>>,
    /// With the extraction score: the most extractable window, its text and probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<ExtractionEvidence>,
    /// Any other field (a label such as `member`), kept as it is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PassageRecord {
    /// The record of a scoring result.
    pub fn new(
        r: &PassageResult,
        model: &ModelIdentity,
        reference: Option<&ModelIdentity>,
    ) -> Self {
        let d = r.details.as_ref();
        let col = |f: fn(&crate::stats::TokenStat) -> f64| {
            d.map(|d| d.stats.iter().map(f).collect::<Vec<f64>>())
        };
        PassageRecord {
            id: r.id.clone(),
            document: None,
            passage: None,
            span: None,
            n_tokens: r.n_tokens,
            n_scored: r.n_scored,
            stats: r.scores.stats.clone(),
            scores: r.scores.scores.clone(),
            reason: r.reason.clone(),
            p_values: None,
            flagged: None,
            decided_by: None,
            fpr: None,
            calibration_n: None,
            model: model.clone(),
            reference: reference.cloned(),
            token_ids: d.map(|d| d.ids.clone()),
            tokens: d.map(|d| d.tokens.clone()),
            token_logprobs: col(|s| s.logp),
            token_mu: col(|s| s.mu),
            token_sigma: col(|s| s.sigma),
            token_ranks: d
                .filter(|d| d.ranks)
                .map(|d| d.stats.iter().map(|s| s.rank).collect()),
            extraction: r.extraction.clone(),
            extra: Map::new(),
        }
    }

    /// One JSON line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{PassageScores, Stats};
    use crate::scorer::TokenDetails;
    use crate::stats::TokenStat;

    fn identity(sha: &str) -> ModelIdentity {
        ModelIdentity {
            name: "m.gguf".into(),
            sha256: sha.into(),
            compute: "f32".into(),
            device: "cpu".into(),
            revision: None,
        }
    }

    #[test]
    fn round_trips_every_field_and_writes_nan_as_null() {
        let r = PassageResult {
            id: "p\"<1>".into(),
            source: "f".into(),
            n_tokens: 3,
            n_scored: 2,
            scores: PassageScores {
                stats: Stats {
                    loss: Some(1.5),
                    ppl: Some(1.5f64.exp()),
                    bits_per_byte: Some(0.25),
                    zlib_bytes: 11,
                },
                scores: Scores(vec![
                    ("neg_loss".into(), Some(-1.5)),
                    ("zlib".into(), Some(f64::NAN)),
                    ("a_last".into(), None),
                ]),
            },
            reason: None,
            details: Some(TokenDetails {
                ids: vec![1, 2, 3],
                tokens: vec!["a".into(), "b".into(), "c".into()],
                stats: vec![
                    TokenStat {
                        logp: -1.0,
                        mu: -2.0,
                        sigma: 0.5,
                        top1: -0.5,
                        rank: 1,
                    },
                    TokenStat {
                        logp: -2.0,
                        mu: -2.5,
                        sigma: 1.0,
                        top1: -0.5,
                        rank: 7,
                    },
                ],
                ranks: true,
            }),
            extraction: Some(ExtractionEvidence {
                span: [0, 5],
                prefix: "ab".into(),
                suffix: "c<d>".into(),
                log_prob: -1.0,
                probability: (-1f64).exp(),
                windows: 2,
            }),
        };
        let mut rec = PassageRecord::new(&r, &identity("ab"), Some(&identity("cd")));
        rec.document = Some("doc.txt".into());
        rec.passage = Some(4);
        rec.span = Some([10, 20]);
        rec.p_values = Some(Scores(vec![("neg_loss".into(), Some(0.5))]));
        rec.flagged = Some(false);
        rec.decided_by = Some("neg_loss".into());
        rec.fpr = Some(0.01);
        rec.calibration_n = Some(100);
        rec.extra.insert("member".into(), Value::Bool(true));
        let line = rec.to_line();
        assert!(line.contains("\"zlib\":null"), "{line}");
        let back: PassageRecord = serde_json::from_str(&line).unwrap();
        // NaN is written as null and read back as missing; everything else is identical
        let mut expect = rec.clone();
        expect.scores.0[1].1 = None;
        assert_eq!(back, expect);
        let names: Vec<&str> = back.scores.0.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["neg_loss", "zlib", "a_last"], "order is kept");
        assert_eq!(back.extra.get("member"), Some(&Value::Bool(true)));
    }

    #[test]
    fn minimal_records_of_earlier_versions_read() {
        let line = r#"{"id":"a","n_tokens":1,"n_scored":0,"scores":{"neg_loss":null},"model":{"name":"t","sha256":"aa","compute":"f32","device":"cpu"}}"#;
        let r: PassageRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.scores.get("neg_loss"), None);
        assert_eq!(r.stats, Stats::default());
    }
}
