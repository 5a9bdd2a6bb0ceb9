//! Dataset inference (Maini et al. 2024, "LLM Dataset Inference"): is a *set* of suspect
//! passages scored higher than a validation set known not to be in the training data?
//!
//! Each set is shuffled (seeded) and split in halves. On the first halves a logistic
//! regression learns a combination of the per-passage scores (standardised on those halves)
//! that separates suspect from validation; on the second halves the combination's values
//! are compared with a one-sided Welch t-test (H1: suspect mean > validation mean). Learning
//! and testing on disjoint halves keeps the p-value honest.
//!
//! One random split makes the answer depend on luck, so the test is repeated on
//! [`SPLITS`] seeded splits and their p-values are aggregated as `min(1, 2 · median)`
//! (Meinshausen, Meier & Bühlmann 2009, quantile aggregation with γ = 1/2), which stays a
//! valid p-value whatever the dependence between the splits — and is conservative.

use super::logistic::{Features, Logistic, Settings};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One-sided Welch t-test that `a` has a larger mean than `b`: `(t, df, p)`. `None` with
/// fewer than two values on a side or no variance at all.
pub fn welch_greater(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mv = |x: &[f64]| {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        (
            m,
            x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0),
            n,
        )
    };
    let ((ma, va, na), (mb, vb, nb)) = (mv(a), mv(b));
    let (sa, sb) = (va / na, vb / nb);
    if sa + sb <= 0.0 {
        return None;
    }
    let t = (ma - mb) / (sa + sb).sqrt();
    let df = (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((t, df, dist.sf(t)))
}

/// Random learning/testing splits aggregated.
pub const SPLITS: usize = 11;

/// The result of a dataset test.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetTest {
    /// One-sided p-value that the suspect set scores higher (aggregated over the splits).
    pub p_value: f64,
    /// The p-value of each split.
    pub split_p_values: Vec<f64>,
    /// t statistic, degrees of freedom and weights are those of the median split.
    pub t: f64,
    pub df: f64,
    /// Passages per set used to learn the combination.
    pub n_train: (usize, usize),
    /// Passages per set tested.
    pub n_test: (usize, usize),
    /// The learned weight of each (standardised) score.
    pub weights: Vec<(String, f64)>,
    /// Aggregated p-value when only the first `n` test passages of each set are used.
    pub p_by_n: Vec<(usize, f64)>,
}

/// `min(1, 2 · median)` of p-values.
fn aggregate(mut p: Vec<f64>) -> f64 {
    p.sort_by(f64::total_cmp);
    let m = p.len();
    let median = if m % 2 == 1 {
        p[m / 2]
    } else {
        (p[m / 2 - 1] + p[m / 2]) / 2.0
    };
    (2.0 * median).min(1.0)
}

/// Runs the test on per-passage score vectors (same score order in both sets; rows with a
/// missing score must be removed beforehand), over [`SPLITS`] splits seeded from `seed`.
pub fn dataset_test(
    names: &[String],
    suspect: &[Vec<f64>],
    validation: &[Vec<f64>],
    seed: u64,
) -> Option<DatasetTest> {
    let runs: Vec<DatasetTest> = (0..SPLITS as u64)
        .map(|i| {
            one_split(
                names,
                suspect,
                validation,
                seed.wrapping_mul(1000).wrapping_add(i),
            )
        })
        .collect::<Option<_>>()?;
    let split_p_values: Vec<f64> = runs.iter().map(|r| r.p_value).collect();
    let p_value = aggregate(split_p_values.clone());
    let p_by_n = runs[0]
        .p_by_n
        .iter()
        .enumerate()
        .map(|(j, &(n, _))| (n, aggregate(runs.iter().map(|r| r.p_by_n[j].1).collect())))
        .collect();
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| split_p_values[a].total_cmp(&split_p_values[b]));
    let median = runs[order[runs.len() / 2]].clone();
    Some(DatasetTest {
        p_value,
        split_p_values,
        p_by_n,
        ..median
    })
}

/// The negative control of a dataset test: the same test of one random half of the
/// validation set (seeded by `seed`) against the other. Neither half was trained on, so
/// its p-value is at most `a` with probability at most `a`; a smaller one says the test is
/// not to be trusted on these texts. `None` when a half would be too small for the test
/// (fewer than 8 validation passages).
pub fn control(names: &[String], validation: &[Vec<f64>], seed: u64) -> Option<f64> {
    let split = seed.wrapping_mul(7919).wrapping_add(1_000_003);
    let (a, b) = super::control::halves(validation.len(), split);
    let pick = |ix: &[usize]| {
        ix.iter()
            .map(|&k| validation[k].clone())
            .collect::<Vec<_>>()
    };
    dataset_test(names, &pick(&a), &pick(&b), split).map(|r| r.p_value)
}

/// Per-passage score vectors of two sets.
#[derive(Debug, Clone)]
pub struct ScoreMatrix {
    pub names: Vec<String>,
    pub a: Vec<Vec<f64>>,
    pub b: Vec<Vec<f64>>,
    /// Passages left out because a score was missing (too short).
    pub left_out: usize,
}

/// Score vectors of two sets over the scores every passage has; passages with a missing
/// score are left out and counted.
pub fn score_matrix(
    a: &[crate::record::PassageRecord],
    b: &[crate::record::PassageRecord],
) -> ScoreMatrix {
    let names: Vec<String> = a
        .iter()
        .chain(b)
        .next()
        .map(|r| r.scores.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut left_out = 0;
    let mut rows = |set: &[crate::record::PassageRecord]| -> Vec<Vec<f64>> {
        set.iter()
            .filter_map(|r| {
                let row: Option<Vec<f64>> = names.iter().map(|n| r.scores.get(n)).collect();
                if row.is_none() {
                    left_out += 1;
                }
                row
            })
            .collect()
    };
    let (a, b) = (rows(a), rows(b));
    ScoreMatrix {
        names,
        a,
        b,
        left_out,
    }
}

/// One learning/testing split.
fn one_split(
    names: &[String],
    suspect: &[Vec<f64>],
    validation: &[Vec<f64>],
    seed: u64,
) -> Option<DatasetTest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s: Vec<&Vec<f64>> = suspect.iter().collect();
    let mut v: Vec<&Vec<f64>> = validation.iter().collect();
    s.shuffle(&mut rng);
    v.shuffle(&mut rng);
    let (s_train, s_test) = s.split_at(s.len() / 2);
    let (v_train, v_test) = v.split_at(v.len() / 2);
    if s_train.len() < 2 || v_train.len() < 2 {
        return None;
    }
    let d = names.len();
    // standardise with the training halves only
    let train: Vec<&Vec<f64>> = s_train.iter().chain(v_train).copied().collect();
    let mean: Vec<f64> = (0..d)
        .map(|j| train.iter().map(|r| r[j]).sum::<f64>() / train.len() as f64)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let var =
                train.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / train.len() as f64;
            if var > 0.0 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let feat = |r: &Vec<f64>| -> Features {
        (0..d)
            .map(|j| (j as u32, (r[j] - mean[j]) / sd[j]))
            .collect()
    };
    let x: Vec<Features> = train.iter().map(|r| feat(r)).collect();
    let y: Vec<bool> = (0..train.len()).map(|i| i < s_train.len()).collect();
    let settings = Settings {
        epochs: 50,
        learning_rate: 0.05,
        l2: 1e-3,
        seed,
    };
    let model = Logistic::fit(&x, &y, d, settings);
    let a: Vec<f64> = s_test.iter().map(|r| model.decision(&feat(r))).collect();
    let b: Vec<f64> = v_test.iter().map(|r| model.decision(&feat(r))).collect();
    let (t, df, p_value) = welch_greater(&a, &b)?;
    let max_n = a.len().min(b.len());
    let mut p_by_n = Vec::new();
    let mut n = 10;
    while n < max_n {
        if let Some((_, _, p)) = welch_greater(&a[..n], &b[..n]) {
            p_by_n.push((n, p));
        }
        n = if n < 50 { n + 10 } else { n * 2 };
    }
    p_by_n.push((
        max_n,
        welch_greater(&a[..max_n], &b[..max_n]).map_or(1.0, |r| r.2),
    ));
    Some(DatasetTest {
        p_value,
        split_p_values: vec![p_value],
        t,
        df,
        n_train: (s_train.len(), v_train.len()),
        n_test: (a.len(), b.len()),
        weights: names
            .iter()
            .cloned()
            .zip(model.weights.iter().copied())
            .collect(),
        p_by_n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_is_twice_the_median() {
        assert_eq!(aggregate(vec![0.01, 0.2, 0.03]), 0.06);
        assert_eq!(aggregate(vec![0.9, 0.7]), 1.0);
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // a: mean 3, var 2.5 (n 5); b: mean 1, var 2.5 (n 5): t = 2 / sqrt(1) = 2, df = 8
        let (t, df, p) =
            welch_greater(&[1.0, 2.0, 3.0, 4.0, 5.0], &[-1.0, 0.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((t - 2.0).abs() < 1e-12 && (df - 8.0).abs() < 1e-12);
        // P(T_8 > 2) = 0.0402581 (Simpson integration of the t density)
        assert!((p - 0.040_258_1).abs() < 1e-6, "{p}");
        assert!(welch_greater(&[1.0], &[1.0, 2.0]).is_none());
    }

    /// `n` rows of 3 uniform values in [-0.5, 0.5) + `shift`, from a ChaCha stream of its
    /// own per seed (an LCG seeded 0, 1, 2… gives streams that are shifts of one another).
    fn noise(n: usize, shift: f64, seed: u64) -> Vec<Vec<f64>> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..3).map(|_| rng.random::<f64>() - 0.5 + shift).collect())
            .collect()
    }

    #[test]
    fn detects_a_shift_and_is_calibrated_without_one() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = dataset_test(&names, &noise(200, 0.2, 1), &noise(200, 0.0, 2), 0).unwrap();
        assert!(r.p_value < 0.01, "{}", r.p_value);
        // independent null data sets: the count of p <= 0.05 is Binomial(400, 0.05) for a
        // valid test; the bound fails a valid test once in 1000 runs
        let fp = (0..400)
            .filter(|&seed| {
                let r = dataset_test(
                    &names,
                    &noise(100, 0.0, 10 + seed),
                    &noise(100, 0.0, 500 + seed),
                    seed,
                )
                .unwrap();
                r.p_value <= 0.05
            })
            .count() as u64;
        let bound = crate::eval::bounds::binomial_upper(400, 0.05, 0.001);
        assert!(fp <= bound, "{fp} false positives in 400 (bound {bound})");
    }
}
