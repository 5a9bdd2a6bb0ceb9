//! The passage record: what the scorer produces for one passage, and the JSON line that
//! `score`, `eval --scores-out` and `scan` (`passages.jsonl`) write and `eval --scored` and
//! `merge` read back. One typed, serde-derived struct from the scorer to every writer and
//! reader, so the schema cannot drift between them and nothing is converted by hand.
//! Non-finite numbers are written as `null` (JSON has no NaN) and read back as missing.

use crate::model::ModelIdentity;
use crate::score::extraction::ExtractionEvidence;
use crate::score::{Scores, Stats};
use crate::stats::TokenStat;
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
    /// `scan`, for a text file: the first and last line of the passage in the file (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<[u64; 2]>,
    /// `scan`, for a PDF: the first and last page the passage covers (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<[u64; 2]>,
    pub n_tokens: usize,
    pub n_scored: usize,
    #[serde(default)]
    pub stats: Stats,
    pub scores: Scores,
    /// Why there are no numbers (`n_scored = 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `scan`: the passage could not be scored (a model server that kept failing): the
    /// error. Listed in the summary; `--resume` scores it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
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
    /// With the ranks: the log-probability of the model's top prediction at each scored
    /// position (`max_v log p(v)`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "finite_vec",
        deserialize_with = "nan_vec"
    )]
    pub token_top1: Option<Vec<f64>>,
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
    /// The record of passage `id` scored by `model`, before any number is filled in.
    pub fn new(id: String, model: ModelIdentity) -> Self {
        PassageRecord {
            id,
            document: None,
            passage: None,
            span: None,
            lines: None,
            pages: None,
            n_tokens: 0,
            n_scored: 0,
            stats: Stats::default(),
            scores: Scores::default(),
            reason: None,
            failed: None,
            p_values: None,
            flagged: None,
            decided_by: None,
            fpr: None,
            calibration_n: None,
            model,
            reference: None,
            token_ids: None,
            tokens: None,
            token_logprobs: None,
            token_mu: None,
            token_sigma: None,
            token_top1: None,
            token_ranks: None,
            extraction: None,
            extra: Map::new(),
        }
    }

    /// Keeps the per-token arrays: `ids` as scored (BOS included), their text, and one
    /// statistic per scored position (`ids[1..]`); the top-1 log-probabilities and ranks
    /// only with `ranks` (heat maps and `--token-logprobs`: a second pass over the head).
    pub fn set_tokens(
        &mut self,
        ids: Vec<u32>,
        tokens: Vec<String>,
        stats: &[TokenStat],
        ranks: bool,
    ) {
        let col = |f: fn(&TokenStat) -> f64| Some(stats.iter().map(f).collect::<Vec<f64>>());
        self.token_ids = Some(ids);
        self.tokens = Some(tokens);
        self.token_logprobs = col(|s| s.logp);
        self.token_mu = col(|s| s.mu);
        self.token_sigma = col(|s| s.sigma);
        if ranks {
            self.token_top1 = col(|s| s.top1);
            self.token_ranks = Some(stats.iter().map(|s| s.rank).collect());
        }
    }

    /// The per-token statistics kept by [`Self::set_tokens`] (`None` without them); a
    /// top-1 or rank not kept reads as NaN or 0.
    pub fn token_stats(&self) -> Option<Vec<TokenStat>> {
        let logp = self.token_logprobs.as_ref()?;
        let at = |c: &Option<Vec<f64>>, i: usize| {
            c.as_ref()
                .and_then(|c| c.get(i).copied())
                .unwrap_or(f64::NAN)
        };
        Some(
            (0..logp.len())
                .map(|i| TokenStat {
                    logp: logp[i],
                    mu: at(&self.token_mu, i),
                    sigma: at(&self.token_sigma, i),
                    top1: at(&self.token_top1, i),
                    rank: self
                        .token_ranks
                        .as_ref()
                        .and_then(|r| r.get(i).copied())
                        .unwrap_or(0),
                })
                .collect(),
        )
    }

    /// One JSON line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::identity;

    #[test]
    fn round_trips_every_field_and_writes_nan_as_null() {
        let mut rec = PassageRecord::new("p\"<1>".into(), identity("ab"));
        rec.reference = Some(identity("cd"));
        rec.n_tokens = 3;
        rec.n_scored = 2;
        rec.stats = Stats {
            loss: Some(1.5),
            ppl: Some(1.5f64.exp()),
            bits_per_byte: Some(0.25),
            zlib_bytes: 11,
        };
        rec.scores = Scores(vec![
            ("neg_loss".into(), Some(-1.5)),
            ("zlib".into(), Some(f64::NAN)),
            ("a_last".into(), None),
        ]);
        let stats = [
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
        ];
        rec.set_tokens(
            vec![1, 2, 3],
            vec!["a".into(), "b".into(), "c".into()],
            &stats,
            true,
        );
        assert_eq!(
            rec.token_stats().unwrap(),
            stats,
            "columns give the statistics back"
        );
        rec.extraction = Some(ExtractionEvidence {
            span: [0, 5],
            prefix: "ab".into(),
            suffix: "c<d>".into(),
            log_prob: -1.0,
            probability: (-1f64).exp(),
            windows: 2,
        });
        rec.document = Some("doc.txt".into());
        rec.passage = Some(4);
        rec.span = Some([10, 20]);
        rec.lines = Some([3, 4]);
        rec.pages = Some([2, 3]);
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
    fn top1_and_ranks_are_kept_only_when_asked_for() {
        let stat = TokenStat {
            logp: -1.0,
            mu: -2.0,
            sigma: 0.5,
            top1: -0.25,
            rank: 3,
        };
        let mut rec = PassageRecord::new("a".into(), identity("ab"));
        rec.set_tokens(vec![1, 2], vec!["a".into(), "b".into()], &[stat], false);
        let line = rec.to_line();
        assert!(line.contains("\"token_logprobs\":[-1.0]"), "{line}");
        assert!(
            !line.contains("token_top1") && !line.contains("token_ranks"),
            "{line}"
        );
        rec.set_tokens(vec![1, 2], vec!["a".into(), "b".into()], &[stat], true);
        let line = rec.to_line();
        assert!(
            line.contains("\"token_top1\":[-0.25]") && line.contains("\"token_ranks\":[3]"),
            "{line}"
        );
    }

    #[test]
    fn minimal_records_of_earlier_versions_read() {
        let line = r#"{"id":"a","n_tokens":1,"n_scored":0,"scores":{"neg_loss":null},"model":{"name":"t","sha256":"aa","compute":"f32","device":"cpu"}}"#;
        let r: PassageRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.scores.get("neg_loss"), None);
        assert_eq!(r.stats, Stats::default());
    }
}
