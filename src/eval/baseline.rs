//! The blind baseline (Das et al. 2024, "Blind Baselines Beat Membership Inference Attacks
//! for Foundation Models"): a text classifier that never looks at the model. If it separates
//! members from non-members, the two sets differ in distribution (time, topic, format) and
//! any attack's AUROC on them overstates what the model leaks.
//!
//! Features: lowercased word unigrams and bigrams and character 4-grams, hashed into
//! 2^18 buckets, binary, L2-normalised. Classifier: logistic regression, 5-fold stratified
//! cross-validation; the AUROC is over the out-of-fold decision values.

use super::logistic::{folds, Features, Logistic, Settings};
use super::roc::auroc;

const DIM_BITS: u32 = 18;
const FOLDS: usize = 5;

/// AUROC at or above which the warning fires.
pub const WARN_AUROC: f64 = 0.6;
/// Passages drawn for the blind baseline from each side (the scanned collection, the
/// calibration's non-members).
pub const BLIND_SAMPLE: usize = 2000;
/// Label permutations behind [`chance_bound`].
pub const PERMUTATIONS: u64 = 100;

/// The blind baseline between two sets, and the AUROC at or above which it says the sets
/// differ as texts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Blind {
    pub auroc: f64,
    /// [`WARN_AUROC`], or on small sets the AUROC that chance alone reaches 5% of the time
    /// ([`chance_bound`]), whichever is higher.
    pub bound: f64,
}

impl Blind {
    /// Whether the sets differ as texts.
    pub fn separates(&self) -> bool {
        self.auroc >= self.bound
    }
}

/// [`blind_auroc`] and the bound it is judged against.
pub fn blind(texts: &[&str], members: &[bool], seed: u64) -> Option<Blind> {
    let auroc = blind_auroc(texts, members, seed)?;
    let bound = if auroc >= WARN_AUROC {
        chance_bound(texts, members, seed)
    } else {
        WARN_AUROC
    };
    Some(Blind { auroc, bound })
}

/// The AUROC the blind classifier reaches by chance on these texts: the 95th percentile of
/// its AUROC over [`PERMUTATIONS`] seeded random relabellings (same set sizes), or
/// [`WARN_AUROC`] when that is higher. On a few dozen passages a side the AUROC of unrelated
/// labels spreads by about ±0.075, so a fixed 0.6 would call equal sets "different" often;
/// past ~150 a side chance stays well below 0.6 and no permutation is run (the normal
/// approximation of the AUROC's spread under no difference says so).
pub fn chance_bound(texts: &[&str], members: &[bool], seed: u64) -> f64 {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let n1 = members.iter().filter(|&&m| m).count() as f64;
    let n2 = members.len() as f64 - n1;
    let sd = ((n1 + n2 + 1.0) / (12.0 * n1 * n2)).sqrt();
    if sd.is_nan() || 0.5 + 3.0 * sd < WARN_AUROC {
        return WARN_AUROC;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_b11d);
    let mut labels = members.to_vec();
    let mut chance: Vec<f64> = (0..PERMUTATIONS)
        .filter_map(|k| {
            labels.shuffle(&mut rng);
            blind_auroc(texts, &labels, seed.wrapping_add(k))
        })
        .collect();
    if chance.is_empty() {
        return WARN_AUROC;
    }
    chance.sort_by(f64::total_cmp);
    let at = ((chance.len() as f64 * 0.95).ceil() as usize).clamp(1, chance.len()) - 1;
    chance[at].max(WARN_AUROC)
}

/// FNV-1a, a stable hash (the features must not depend on the process).
fn fnv(parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h >> (64 - DIM_BITS)) as u32
}

/// Hashed bag-of-n-grams of a text.
pub fn features(text: &str) -> Features {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut idx: Vec<u32> = Vec::new();
    for w in &words {
        idx.push(fnv(&[b"w", w.as_bytes()]));
    }
    for p in words.windows(2) {
        idx.push(fnv(&[b"b", p[0].as_bytes(), p[1].as_bytes()]));
    }
    let chars: Vec<char> = lower.chars().collect();
    let mut buf = String::new();
    for g in chars.windows(4) {
        buf.clear();
        buf.extend(g);
        idx.push(fnv(&[b"c", buf.as_bytes()]));
    }
    idx.sort_unstable();
    idx.dedup();
    let v = if idx.is_empty() {
        0.0
    } else {
        1.0 / (idx.len() as f64).sqrt()
    };
    idx.into_iter().map(|i| (i, v)).collect()
}

/// Cross-validated AUROC of the blind classifier; `None` if a class is missing or too small
/// for the folds.
pub fn blind_auroc(texts: &[&str], members: &[bool], seed: u64) -> Option<f64> {
    let n_pos = members.iter().filter(|&&m| m).count();
    if n_pos < FOLDS || members.len() - n_pos < FOLDS {
        return None;
    }
    let x: Vec<Features> = texts.iter().map(|t| features(t)).collect();
    let fold = folds(members, FOLDS, seed);
    let mut decision = vec![0f64; texts.len()];
    for k in 0..FOLDS {
        let train: Vec<usize> = (0..x.len()).filter(|&i| fold[i] != k).collect();
        let tx: Vec<Features> = train.iter().map(|&i| x[i].clone()).collect();
        let ty: Vec<bool> = train.iter().map(|&i| members[i]).collect();
        let settings = Settings {
            epochs: 20,
            learning_rate: 0.5,
            l2: 1e-5,
            seed: seed.wrapping_add(k as u64),
        };
        let m = Logistic::fit(&tx, &ty, 1 << DIM_BITS, settings);
        for i in (0..x.len()).filter(|&i| fold[i] == k) {
            decision[i] = m.decision(&x[i]);
        }
    }
    let pos: Vec<f64> = (0..x.len())
        .filter(|&i| members[i])
        .map(|i| decision[i])
        .collect();
    let neg: Vec<f64> = (0..x.len())
        .filter(|&i| !members[i])
        .map(|i| decision[i])
        .collect();
    auroc(&pos, &neg)
}

/// The warning to print for a blind-baseline AUROC, if any.
pub fn warning(blind: f64) -> Option<String> {
    (blind >= WARN_AUROC).then(|| {
        format!(
            "WARNING: a blind baseline that never looks at the model separates members from \
             non-members with AUROC {blind:.3} (>= {WARN_AUROC}): the two sets differ in \
             distribution, and the attack figures overstate what the model leaks. Use \
             non-members drawn from the same distribution as the members."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_different_vocabularies_and_not_random_labels() {
        let a: Vec<String> = (0..40)
            .map(|i| format!("the hurricane season of {} brought storms", 1990 + i % 7))
            .collect();
        let b: Vec<String> = (0..40)
            .map(|i| format!("the 2023 election results in district {}", i % 9))
            .collect();
        let texts: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
        let labels: Vec<bool> = (0..80).map(|i| i < 40).collect();
        assert!(blind_auroc(&texts, &labels, 0).unwrap() > 0.95);
        // the same texts under labels unrelated to content (seeded random halves): the
        // AUROC centres on 0.5, and reaches the warning no more often than chance allows (an
        // AUROC of 40 against 40 has sd 0.065: P(>= 0.6) is about 6%)
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let runs = 60;
        let aurocs: Vec<f64> = (0..runs)
            .map(|seed| {
                let mut shuffled = labels.clone();
                shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
                blind_auroc(&texts, &shuffled, seed).unwrap()
            })
            .collect();
        let mean = aurocs.iter().sum::<f64>() / runs as f64;
        assert!(
            (mean - 0.5).abs() < 0.05,
            "mean AUROC {mean} on random labels"
        );
        let warned = aurocs.iter().filter(|&&a| a >= WARN_AUROC).count() as u64;
        let bound = crate::eval::bounds::binomial_upper(runs, 0.1, 0.001);
        assert!(
            warned <= bound,
            "{warned} of {runs} random labellings warned (bound {bound})"
        );
        assert!(warning(0.99).is_some() && warning(0.55).is_none());
    }

    #[test]
    fn features_are_normalised_and_stable() {
        let f = features("Hello world, hello!");
        let norm: f64 = f.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-12);
        // the buckets pinned from an independent computation (FNV-1a as above, in Python:
        // words, bigrams and character 4-grams of the lowercased text, sorted, deduplicated),
        // so a change of hash, bucket count or n-grams fails here and not only across runs
        let buckets: Vec<u32> = f.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            buckets,
            [
                30270, 37873, 37889, 40027, 46816, 58189, 69135, 84118, 143665, 146818, 149153,
                161056, 184010, 212807, 216834, 241119, 243027, 262000
            ]
        );
    }
}
