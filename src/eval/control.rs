//! The guards every collection-level verdict passes before it is stated.
//!
//! A test of "these texts score higher than known non-members" can reject for reasons that
//! have nothing to do with training: a calibration too small or too uneven for the test's
//! assumptions, or two sets that differ in time, topic or format. Two checks catch these:
//!
//! - **the negative control**: the known non-members are split into two random halves and
//!   the same test is run of one half against the other. Neither half was trained on, so a
//!   rejection there means the test itself is not to be trusted on these texts;
//! - **the blind baseline** ([`super::baseline`]): a classifier that never sees the model.
//!   If it separates the two sets being compared (AUROC ≥ [`super::baseline::WARN_AUROC`]),
//!   a difference in scores may come from the texts, not from training.
//!
//! Only when both pass is the test's outcome stated, and then as a statistical signal: a
//! p-value is evidence consistent with training, not proof of it. What proves training is
//! an exposed canary or a verbatim extraction of text the model could not otherwise know.

use super::baseline::Blind;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

/// A p-value for people: 3 decimals, scientific below 0.001.
pub fn fmt_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.3}")
    }
}

/// Seeded random halves of `0..n`: the first has `n / 2` indices, the second the rest.
pub fn halves(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let second = idx.split_off(n / 2);
    (idx, second)
}

/// What may be said of a collection-level test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The test rejects and both guards pass: a statistical signal (not proof).
    Signal,
    /// The test does not reject.
    NoSignal,
    /// The negative control rejects, or could not be run: no finding either way.
    InconclusiveControl,
    /// The blind baseline separates the sets: no finding either way.
    InconclusiveBlind,
}

/// The guards' values beside a test's p-value, and what follows from them.
#[derive(Debug, Clone, Serialize)]
pub struct Guarded {
    pub p_value: f64,
    /// The level the test and the control are read at.
    pub alpha: f64,
    /// The same test of one random half of the known non-members against the other;
    /// `None`: too few non-members to split.
    pub control_p_value: Option<f64>,
    /// The blind baseline's AUROC between the two sets; `None` where the texts are not
    /// at hand (a calibration of an earlier version holds no sample of them) or a set is too
    /// small.
    pub blind_auroc: Option<f64>,
    /// The AUROC at or above which the sets count as different ([`Blind::bound`]).
    pub blind_bound: Option<f64>,
    pub finding: Finding,
}

impl Guarded {
    /// The finding for a test's `p_value` at `alpha`, given its guards. A missing control
    /// is not a pass: without it the test's calibration is unchecked.
    pub fn judge(
        p_value: f64,
        alpha: f64,
        control_p_value: Option<f64>,
        blind: Option<Blind>,
    ) -> Guarded {
        let finding = if blind.is_some_and(|b| b.separates()) {
            Finding::InconclusiveBlind
        } else if control_p_value.is_none_or(|c| c <= alpha) {
            Finding::InconclusiveControl
        } else if p_value <= alpha {
            Finding::Signal
        } else {
            Finding::NoSignal
        };
        Guarded {
            p_value,
            alpha,
            control_p_value,
            blind_auroc: blind.map(|b| b.auroc),
            blind_bound: blind.map(|b| b.bound),
            finding,
        }
    }

    /// The finding in words for someone who was not there: `subject` is what was tested
    /// ("the suspect set"), `against` what it was compared with.
    pub fn sentence(&self, subject: &str, against: &str) -> String {
        let p = fmt_p(self.p_value);
        let control = self.control_p_value.map_or("not run".to_string(), fmt_p);
        match self.finding {
            Finding::InconclusiveBlind => format!(
                "Inconclusive: the sets differ without the model. A classifier that never sees the model tells {subject} from {against} with AUROC {:.3} (>= {:.3}{}), so a difference in scores may come from the texts (their time, topic or format) rather than from training. No finding either way (test p-value {p}); compare with non-members from the same source and period.",
                self.blind_auroc.unwrap_or(f64::NAN),
                self.blind_bound.unwrap_or(super::baseline::WARN_AUROC),
                if self.blind_bound.is_some_and(|b| b > super::baseline::WARN_AUROC) {
                    ", what chance reaches on sets this small"
                } else {
                    ""
                }
            ),
            Finding::InconclusiveControl => match self.control_p_value {
                Some(c) => format!(
                    "Inconclusive: two random halves of the known non-members already differ (negative control p-value {}, at most {}), so the test is not to be trusted on these texts. No finding either way (test p-value {p}); use more known non-members.",
                    fmt_p(c),
                    self.alpha
                ),
                None => format!(
                    "Inconclusive: too few known non-members to split into halves for the negative control, so the test's calibration is unchecked. No finding either way (test p-value {p}); use more known non-members."
                ),
            },
            Finding::Signal => format!(
                "Statistical signal: {subject} scores significantly higher than {against} (p-value {p}, at most {}), while two random halves of the known non-members do not differ (negative control p-value {control}). This is evidence consistent with training on {subject}, not proof of it: proof is an exposed canary or a verbatim extraction.",
                self.alpha
            ),
            Finding::NoSignal => format!(
                "No significant signal: {subject} does not score significantly higher than {against} (p-value {p}, above {}; negative control p-value {control}). This does not show that {subject} was not trained on: a model can be trained on text without remembering it measurably.",
                self.alpha
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_split_every_index_once_and_depend_on_the_seed() {
        let (a, b) = halves(11, 3);
        assert_eq!((a.len(), b.len()), (5, 6));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        assert_eq!(halves(11, 3), (a.clone(), b));
        assert_ne!(halves(11, 4).0, a);
    }

    #[test]
    fn a_finding_needs_both_guards() {
        let at = |auroc| {
            Some(Blind {
                auroc,
                bound: crate::eval::baseline::WARN_AUROC,
            })
        };
        let j = |p, c, b: Option<f64>| Guarded::judge(p, 0.01, c, b.and_then(at)).finding;
        assert_eq!(j(0.001, Some(0.5), Some(0.55)), Finding::Signal);
        assert_eq!(j(0.001, Some(0.5), None), Finding::Signal);
        assert_eq!(j(0.2, Some(0.5), None), Finding::NoSignal);
        // the control rejects: no finding, whatever the test says
        assert_eq!(j(0.001, Some(0.005), None), Finding::InconclusiveControl);
        assert_eq!(j(0.2, Some(0.005), None), Finding::InconclusiveControl);
        // no control at all is not a pass
        assert_eq!(j(0.001, None, None), Finding::InconclusiveControl);
        // the sets differ without the model: never a finding
        assert_eq!(j(0.001, Some(0.5), Some(0.6)), Finding::InconclusiveBlind);
        assert_eq!(j(0.9, Some(0.5), Some(0.99)), Finding::InconclusiveBlind);
        // on small sets the bound is what chance reaches: below it, not a difference
        let small = Some(Blind {
            auroc: 0.64,
            bound: 0.67,
        });
        assert_eq!(
            Guarded::judge(0.001, 0.01, Some(0.5), small).finding,
            Finding::Signal
        );
    }

    #[test]
    fn the_words_tell_signal_from_proof() {
        let blind = |auroc| {
            Some(Blind {
                auroc,
                bound: crate::eval::baseline::WARN_AUROC,
            })
        };
        let s = Guarded::judge(0.001, 0.01, Some(0.4), blind(0.52))
            .sentence("the suspect set", "the validation set");
        assert!(
            s.starts_with("Statistical signal") && s.contains("not proof"),
            "{s}"
        );
        let s = Guarded::judge(0.001, 0.01, Some(0.4), blind(0.97)).sentence("a", "b");
        assert!(
            s.contains("differ without the model") && s.contains("0.970"),
            "{s}"
        );
        assert!(!s.contains("Statistical signal"), "{s}");
        let s = Guarded::judge(0.001, 0.01, Some(0.002), None).sentence("a", "b");
        assert!(s.contains("negative control p-value 0.002"), "{s}");
    }
}
