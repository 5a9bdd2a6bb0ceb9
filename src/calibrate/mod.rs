//! Calibration on known non-members: each score's non-member distribution, stored with the
//! settings that produced it, turns a raw score into an empirical p-value and a decision at
//! a chosen false-positive rate.
//!
//! p-value of a score `x`: `(1 + #{non-members scoring >= x}) / (1 + n)`. Flagging when
//! `p <= fpr` keeps the false-positive rate at most `fpr` for passages exchangeable with the
//! calibration non-members (the conformal guarantee); it says nothing about passages from
//! another distribution.

mod decision;

pub use decision::Decision;

use crate::error::{Error, Result};
use crate::model::ModelIdentity;
use crate::record::PassageRecord;
use crate::score::extraction::Extraction;
use crate::scorer::ScoreOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Format version of calibration files.
pub const VERSION: u32 = 1;

/// The settings a calibration is only valid for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: ModelIdentity,
    pub reference: Option<ModelIdentity>,
    pub ks: Vec<f64>,
    pub lowercase: bool,
    pub max_context: Option<usize>,
    /// Documents were cut into passages of this many tokens (`scan`, `calibrate
    /// --passage-tokens`); `None`: every input passage was scored whole.
    #[serde(default)]
    pub passage_tokens: Option<usize>,
    /// The extraction windows (`--extraction`), which the extraction score depends on.
    #[serde(default)]
    pub extraction: Option<Extraction>,
    /// sha256 of the ReCaLL prefix text (`--recall-prefix`), which the `recall` score
    /// depends on.
    #[serde(default)]
    pub recall_prefix: Option<String>,
    /// sha256 of Con-ReCall's member prefix (`--member-prefix`).
    #[serde(default)]
    pub member_prefix: Option<String>,
    /// sha256 of DC-PDD's token frequency table (`--freq-table`), which `dcpdd` depends on.
    #[serde(default)]
    pub freq_table: Option<String>,
}

impl Settings {
    pub fn new(
        model: &ModelIdentity,
        reference: Option<&ModelIdentity>,
        opts: &ScoreOptions,
    ) -> Self {
        Settings {
            model: model.clone(),
            reference: reference.cloned(),
            ks: opts.ks.clone(),
            lowercase: opts.lowercase,
            max_context: opts.max_context,
            passage_tokens: None,
            extraction: opts.extraction,
            recall_prefix: opts.recall_prefix.clone(),
            member_prefix: opts.member_prefix.clone(),
            freq_table: opts.freq_table.clone(),
        }
    }
}

/// A hash for messages: `sha256` and its first 16 hex digits, or `none`.
fn show_hash(h: &Option<String>) -> String {
    h.as_ref().map_or("none".to_string(), |h| {
        format!("sha256 {}", &h[..16.min(h.len())])
    })
}

/// A stored calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub version: u32,
    pub settings: Settings,
    /// Non-member passages used.
    pub n: usize,
    /// Each score's non-member values, sorted ascending.
    pub scores: BTreeMap<String, Vec<f64>>,
    /// The score that decides when a run names none (`calibrate --decide-by`, else chosen
    /// by [`Calibration::choose_default`] from the scores it holds). Absent in files of
    /// earlier versions, which get the same rule at load.
    #[serde(default)]
    pub decide_by: Option<String>,
    /// A seeded sample of the non-member passages' texts (at most
    /// [`crate::eval::baseline::BLIND_SAMPLE`]), so that a scan with this calibration can run
    /// the blind baseline without the files; covered by the file's hash like the rest.
    /// Absent in files of earlier versions (the baseline is then not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<String>,
}

impl Calibration {
    /// Builds a calibration from the results of scoring known non-members; the deciding
    /// score is chosen by [`Calibration::choose_default`].
    pub fn from_results(settings: Settings, results: &[PassageRecord]) -> Calibration {
        let mut scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for r in results {
            for (name, v) in &r.scores {
                if !order.contains(name) {
                    order.push(name.clone());
                }
                if let Some(v) = v {
                    scores.entry(name.clone()).or_default().push(*v);
                }
            }
        }
        scores.values_mut().for_each(|v| v.sort_by(f64::total_cmp));
        let mut c = Calibration {
            version: VERSION,
            settings,
            n: results.len(),
            scores,
            decide_by: None,
            sample: Vec::new(),
        };
        c.decide_by = c.choose_default(&order);
        c
    }

    /// The file's bytes, as [`Self::save`] writes them.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("calibration serialises")
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(Error::output(path))
    }

    pub fn load(path: &Path) -> Result<Calibration> {
        let bad = |message: String| Error::InvalidInput {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::InputIo {
            path: path.to_path_buf(),
            source,
        })?;
        let c: Calibration =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a calibration file: {e}")))?;
        if c.version != VERSION {
            return Err(bad(format!(
                "calibration version {} (expected {VERSION})",
                c.version
            )));
        }
        Ok(c)
    }

    /// Refuses to apply a calibration made with another model, reference or settings.
    pub fn check(&self, current: &Settings) -> Result<()> {
        let s = &self.settings;
        let what = if s.model != current.model {
            let (a, b) = (&s.model, &current.model);
            Some(if a.name == b.name && a.sha256 == b.sha256 {
                format!(
                    "model {} computed as {} ({}) vs as {} ({}); --compute must match",
                    a.name, a.compute, a.device, b.compute, b.device
                )
            } else {
                format!(
                    "model {} ({}) vs {} ({})",
                    a.name, a.sha256, b.name, b.sha256
                )
            })
        } else if s.reference != current.reference {
            let show = |r: &Option<ModelIdentity>| {
                r.as_ref()
                    .map_or("none".to_string(), |r| format!("{} ({})", r.name, r.sha256))
            };
            Some(format!(
                "reference {} vs {}",
                show(&s.reference),
                show(&current.reference)
            ))
        } else if s.recall_prefix != current.recall_prefix
            || s.member_prefix != current.member_prefix
        {
            Some(format!(
                "ReCaLL prefix {} vs {}, member prefix {} vs {}",
                show_hash(&s.recall_prefix),
                show_hash(&current.recall_prefix),
                show_hash(&s.member_prefix),
                show_hash(&current.member_prefix)
            ))
        } else if s.freq_table != current.freq_table {
            Some(format!(
                "token frequency table {} vs {}",
                show_hash(&s.freq_table),
                show_hash(&current.freq_table)
            ))
        } else if s.ks != current.ks
            || s.lowercase != current.lowercase
            || s.max_context != current.max_context
            || s.extraction != current.extraction
        {
            Some(format!(
                "settings k={:?} lowercase={} max_context={:?} extraction={:?} vs k={:?} lowercase={} max_context={:?} extraction={:?}",
                s.ks, s.lowercase, s.max_context, s.extraction, current.ks, current.lowercase, current.max_context, current.extraction
            ))
        } else {
            None
        };
        match what {
            Some(w) => Err(Error::Usage(format!(
                "the calibration does not match this run ({w}): recalibrate with this model and these settings"
            ))),
            None => Ok(()),
        }
    }

    /// The deciding score for a calibration holding these scores (`order`: the run's
    /// output order): `ref` with a same-vocabulary reference, `ref_bpb` with another, else
    /// Min-K%++ at the first `k` the calibration was made with — each only if the
    /// calibration holds it — else the first score it holds.
    pub fn choose_default(&self, order: &[String]) -> Option<String> {
        let minkpp = crate::score::minkpp_name(self.settings.ks.first().copied().unwrap_or(0.2));
        let preferred: Vec<String> = if self.settings.reference.is_some() {
            vec!["ref".into(), "ref_bpb".into(), minkpp]
        } else {
            vec![minkpp]
        };
        preferred
            .into_iter()
            .chain(order.iter().cloned())
            .chain(self.scores.keys().cloned())
            .find(|s| self.scores.contains_key(s))
    }

    /// The score that decides when none is named: the one stored in the file, else (files
    /// of earlier versions) [`Self::choose_default`].
    pub fn default_score(&self) -> String {
        self.decide_by
            .clone()
            .or_else(|| self.choose_default(&[]))
            .unwrap_or_else(|| "neg_loss".into())
    }

    /// Empirical p-value of `x` for `score`: see [`empirical_p`].
    pub fn p_value(&self, score: &str, x: f64) -> Option<f64> {
        Some(empirical_p(self.scores.get(score)?, x))
    }
}

/// Empirical p-value of `x` among the non-member values `sorted` (ascending):
/// `(1 + #{non-members >= x}) / (1 + n)`.
pub fn empirical_p(sorted: &[f64], x: f64) -> f64 {
    let below = sorted.partition_point(|&y| y < x);
    (1 + sorted.len() - below) as f64 / (1 + sorted.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::identity;

    fn calib(values: Vec<f64>) -> Calibration {
        let mut scores = BTreeMap::new();
        let mut v = values;
        v.sort_by(f64::total_cmp);
        let n = v.len();
        scores.insert("s".to_string(), v);
        Calibration {
            version: VERSION,
            settings: Settings::new(&identity("aa"), None, &ScoreOptions::default()),
            n,
            scores,
            decide_by: None,
            sample: Vec::new(),
        }
    }

    #[test]
    fn p_values_by_hand() {
        let c = calib(vec![1.0, 2.0, 3.0, 4.0]);
        // x above all: (1 + 0) / 5
        assert_eq!(c.p_value("s", 10.0), Some(0.2));
        // x = 3: non-members >= 3 are {3, 4}: (1 + 2) / 5
        assert_eq!(c.p_value("s", 3.0), Some(0.6));
        assert_eq!(c.p_value("s", 0.0), Some(1.0));
        assert_eq!(c.p_value("other", 1.0), None);
    }

    #[test]
    fn refuses_other_models_and_settings() {
        let c = calib(vec![1.0]);
        let same = Settings::new(&identity("aa"), None, &ScoreOptions::default());
        assert!(c.check(&same).is_ok());
        let other = Settings::new(&identity("bb"), None, &ScoreOptions::default());
        let e = c.check(&other).unwrap_err().to_string();
        assert!(
            e.contains("does not match") && e.contains("model m.gguf (aa)"),
            "{e}"
        );
        // another ReCaLL prefix (or none): the recall score is not comparable
        let prefixed = ScoreOptions {
            recall_prefix: Some("ab".repeat(32)),
            ..Default::default()
        };
        let e = c
            .check(&Settings::new(&identity("aa"), None, &prefixed))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ReCaLL prefix none vs sha256 abab"), "{e}");
        // another token frequency table: dcpdd is not comparable
        let freq = ScoreOptions {
            freq_table: Some("cd".repeat(32)),
            ..Default::default()
        };
        let e = c
            .check(&Settings::new(&identity("aa"), None, &freq))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("token frequency table none vs sha256 cdcd"),
            "{e}"
        );
        let opts = ScoreOptions {
            ks: vec![0.1],
            ..Default::default()
        };
        let e = c
            .check(&Settings::new(&identity("aa"), None, &opts))
            .unwrap_err()
            .to_string();
        assert!(e.contains("settings"), "{e}");
        let e = c
            .check(&Settings::new(
                &identity("aa"),
                Some(&identity("cc")),
                &ScoreOptions::default(),
            ))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reference"), "{e}");
    }

    #[test]
    fn roundtrips_through_a_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        let c = calib(vec![3.0, 1.0]);
        c.save(&p).unwrap();
        assert_eq!(Calibration::load(&p).unwrap(), c);
        std::fs::write(&p, "{}").unwrap();
        assert!(Calibration::load(&p).is_err());
    }
}
