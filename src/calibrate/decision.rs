//! A calibrated decision: which score decides, at which false-positive rate, and the
//! p-values and flag it adds to each passage record. Shared by `score` and `scan`.

use super::{Calibration, Settings};
use crate::error::{Error, Result};
use crate::record::PassageRecord;
use crate::score::Scores;

/// p-values and the decision from a calibration.
#[derive(Debug, Clone)]
pub struct Decision {
    pub calibration: Calibration,
    /// The deciding score.
    pub by: String,
    /// Flag when the deciding score's p-value is at most this.
    pub fpr: f64,
}

impl Decision {
    /// Checks the calibration against the run's settings and picks the deciding score:
    /// `decide_by`, else the calibration's default (`ref` with a reference, else
    /// `ref_bpb` when the vocabularies differ, else Min-K%++ at the run's first `k`).
    /// `warn` receives a message when nothing can be flagged at this `fpr`.
    pub fn new(
        calibration: Calibration,
        current: &Settings,
        decide_by: Option<&str>,
        fpr: f64,
        warn: impl FnOnce(String),
    ) -> Result<Self> {
        if !(fpr > 0.0 && fpr < 1.0) {
            return Err(Error::Usage(format!("--fpr {fpr}: must be in (0, 1)")));
        }
        calibration.check(current)?;
        let by = match decide_by {
            Some(b) => b.to_string(),
            None => calibration.default_score(),
        };
        if !calibration.scores.contains_key(&by) {
            let known: Vec<&str> = calibration.scores.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "--decide-by {by}: the calibration has no such score (it has {})",
                known.join(", ")
            )));
        }
        let min_p = 1.0 / (1 + calibration.n) as f64;
        if fpr < min_p {
            warn(format!(
                "with {} calibration non-members no p-value is below {min_p:.4}: nothing can be flagged at --fpr {fpr}",
                calibration.n
            ));
        }
        Ok(Decision {
            calibration,
            by,
            fpr,
        })
    }

    /// The p-value of the deciding score (`None` when the passage has no value).
    pub fn p_value(&self, scores: &[(String, Option<f64>)]) -> Option<f64> {
        scores
            .iter()
            .find(|(n, _)| *n == self.by)
            .and_then(|(_, v)| *v)
            .and_then(|x| self.calibration.p_value(&self.by, x))
    }

    /// Adds `p_values`, `flagged`, `decided_by`, `fpr` and `calibration_n` to a record.
    pub fn annotate(&self, rec: &mut PassageRecord) {
        let p = rec
            .scores
            .0
            .iter()
            .map(|(name, v)| {
                (
                    name.clone(),
                    v.and_then(|x| self.calibration.p_value(name, x)),
                )
            })
            .collect();
        rec.flagged = self.p_value(&rec.scores.0).map(|p| p <= self.fpr);
        rec.p_values = Some(Scores(p));
        rec.decided_by = Some(self.by.clone());
        rec.fpr = Some(self.fpr);
        rec.calibration_n = Some(self.calibration.n);
    }
}
