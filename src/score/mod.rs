//! Scores: pure functions of the per-token statistics (and the text), never of the model.
//! Every score is oriented so that **higher = more likely a member**; definitions follow
//! ../shared/SCORES.md and each function's doc comment gives its formula.

use crate::stats::TokenStat;
use serde::Serialize;
use std::io::Write;

/// Raw statistics of one passage (not oriented; `None` when nothing was scored).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// `−(1/N) Σ logp_i`, nats per token.
    pub loss: Option<f64>,
    /// `exp(loss)`.
    pub ppl: Option<f64>,
    /// `N · loss / (ln 2 · bytes)`: comparable across tokenizers.
    pub bits_per_byte: Option<f64>,
    /// Length of the zlib-compressed (level 6) UTF-8 text.
    pub zlib_bytes: usize,
}

/// `−(1/N) Σ logp_i`; `None` for `N = 0`.
pub fn loss(logp: &[f64]) -> Option<f64> {
    if logp.is_empty() {
        None
    } else {
        Some(-logp.iter().sum::<f64>() / logp.len() as f64)
    }
}

/// `N · loss / (ln 2 · bytes)` = total nats in bits, per byte of UTF-8 text.
pub fn bits_per_byte(logp: &[f64], bytes: usize) -> Option<f64> {
    if logp.is_empty() || bytes == 0 {
        return None;
    }
    Some(-logp.iter().sum::<f64>() / (std::f64::consts::LN_2 * bytes as f64))
}

/// Number of values Min-K% averages: `max(1, floor(k·N))` (never an empty mean).
pub fn mink_count(k: f64, n: usize) -> usize {
    ((k * n as f64).floor() as usize).clamp(1, n.max(1))
}

/// Mean of the `max(1, floor(k·N))` smallest values; `None` when empty.
fn mean_of_smallest(values: impl Iterator<Item = f64>, k: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    let m = mink_count(k, v.len());
    v.sort_by(f64::total_cmp);
    Some(v[..m].iter().sum::<f64>() / m as f64)
}

/// Min-K% (Shi et al. 2023): mean of the `max(1, floor(k·N))` smallest `logp_i`.
pub fn mink(logp: &[f64], k: f64) -> Option<f64> {
    mean_of_smallest(logp.iter().copied(), k)
}

/// Min-K%++ (Zhang et al. 2024): Min-K% over `z_i = (logp_i − mu_i) / sigma_i`, with
/// `z_i = 0` where `sigma_i = 0`.
pub fn minkpp(stats: &[TokenStat], k: f64) -> Option<f64> {
    mean_of_smallest(stats.iter().map(z_score), k)
}

/// `(logp − mu) / sigma`, 0 where the distribution is degenerate.
pub fn z_score(s: &TokenStat) -> f64 {
    if s.sigma > 0.0 {
        (s.logp - s.mu) / s.sigma
    } else {
        0.0
    }
}

/// `len(zlib.compress(text))` at zlib's default level 6, as Python computes it.
pub fn zlib_bytes(text: &str) -> usize {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(text.as_bytes())
        .expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail").len()
}

/// zlib ratio (Carlini et al. 2021): `−loss / zlib_bytes`.
pub fn zlib(loss: f64, zlib_bytes: usize) -> f64 {
    -loss / zlib_bytes as f64
}

/// Lowercase ratio: `loss(lowercased text) / loss(text)` on the same model. A member's own
/// casing is memorised, so lowercasing hurts it more: higher = member. `None` if either loss
/// is missing or `loss(text) = 0`.
pub fn lowercase(loss_lower: Option<f64>, loss: Option<f64>) -> Option<f64> {
    match (loss_lower, loss) {
        (Some(l), Some(o)) if o != 0.0 => Some(l / o),
        _ => None,
    }
}

/// Name of the Min-K% score for `k`, e.g. `mink_0.2`.
pub fn mink_name(k: f64) -> String {
    format!("mink_{k}")
}

/// Name of the Min-K%++ score for `k`, e.g. `minkpp_0.2`.
pub fn minkpp_name(k: f64) -> String {
    format!("minkpp_{k}")
}

/// Every statistic and score of one passage.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageScores {
    pub stats: Stats,
    /// `(name, value)` in a fixed order: neg_loss, mink_k…, minkpp_k…, zlib, lowercase.
    pub scores: Vec<(String, Option<f64>)>,
}

impl PassageScores {
    /// The value of a score by name (`None` if absent or not computable).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.scores
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)
    }

    /// Adds the reference-model scores (Carlini et al. 2021), given the reference's
    /// statistics on the same text:
    /// - `ref_bpb = bits_per_byte(reference) − bits_per_byte(target)`, valid across
    ///   tokenizers (always added);
    /// - when both models tokenised the text identically (`aligned`), with per-token
    ///   log-likelihood ratios `d_i = logp_target_i − logp_reference_i`:
    ///   `ref = loss(reference) − loss(target)` (the mean of `d_i`), `ref_mink_k` (Min-K% over
    ///   `d_i`) and `ref_llr = Σ d_i / sqrt(N)`, the summed likelihood ratio scaled like a
    ///   z-statistic, so that longer passages weigh their larger evidence.
    ///
    /// A member is easier for the target than for the reference: higher = member.
    pub fn add_reference(
        &mut self,
        text: &str,
        target: &[TokenStat],
        reference: &[TokenStat],
        aligned: bool,
        ks: &[f64],
    ) {
        let lt: Vec<f64> = target.iter().map(|s| s.logp).collect();
        let lr: Vec<f64> = reference.iter().map(|s| s.logp).collect();
        if aligned {
            let r = match (loss(&lr), loss(&lt)) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
            self.scores.push(("ref".into(), r));
            let diff: Vec<f64> = lt.iter().zip(&lr).map(|(t, r)| t - r).collect();
            for &k in ks {
                self.scores.push((format!("ref_mink_{k}"), mink(&diff, k)));
            }
            let llr =
                (!diff.is_empty()).then(|| diff.iter().sum::<f64>() / (diff.len() as f64).sqrt());
            self.scores.push(("ref_llr".into(), llr));
        }
        let bpb = match (
            bits_per_byte(&lr, text.len()),
            bits_per_byte(&lt, text.len()),
        ) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        self.scores.push(("ref_bpb".into(), bpb));
    }
}

/// Computes all scores of a passage from its token statistics. `lower` holds the
/// log-probs of the lowercased text (if the lowercase score is wanted).
pub fn score_passage(
    text: &str,
    stats: &[TokenStat],
    lower: Option<&[f64]>,
    ks: &[f64],
) -> PassageScores {
    let logp: Vec<f64> = stats.iter().map(|s| s.logp).collect();
    let l = loss(&logp);
    let zb = zlib_bytes(text);
    let mut scores = vec![("neg_loss".to_string(), l.map(|l| -l))];
    for &k in ks {
        scores.push((mink_name(k), mink(&logp, k)));
    }
    for &k in ks {
        scores.push((minkpp_name(k), minkpp(stats, k)));
    }
    scores.push(("zlib".into(), l.map(|l| zlib(l, zb))));
    if let Some(lower) = lower {
        scores.push(("lowercase".into(), lowercase(loss(lower), l)));
    }
    PassageScores {
        stats: Stats {
            loss: l,
            ppl: l.map(f64::exp),
            bits_per_byte: bits_per_byte(&logp, text.len()),
            zlib_bytes: zb,
        },
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(logp: f64, mu: f64, sigma: f64) -> TokenStat {
        TokenStat { logp, mu, sigma }
    }

    #[test]
    fn loss_and_ppl_by_hand() {
        assert_eq!(loss(&[-1.0, -3.0]), Some(2.0));
        assert_eq!(loss(&[]), None);
        let s = score_passage(
            "ab",
            &[ts(-1.0, 0.0, 1.0), ts(-3.0, 0.0, 1.0)],
            None,
            &[0.2],
        );
        assert_eq!(s.stats.loss, Some(2.0));
        assert!((s.stats.ppl.unwrap() - 2f64.exp()).abs() < 1e-12);
        // 4 nats over 2 bytes = 4/ln2/2 bits per byte
        assert!(
            (s.stats.bits_per_byte.unwrap() - 4.0 / std::f64::consts::LN_2 / 2.0).abs() < 1e-12
        );
        assert_eq!(s.scores[0], ("neg_loss".into(), Some(-2.0)));
    }

    #[test]
    fn mink_takes_the_floor_and_at_least_one() {
        let lp = [-5.0, -1.0, -2.0, -4.0, -3.0];
        // k = 0.2, N = 5 → 1 value: the smallest
        assert_eq!(mink(&lp, 0.2), Some(-5.0));
        // k = 0.5 → floor(2.5) = 2 → mean(-5, -4)
        assert_eq!(mink(&lp, 0.5), Some(-4.5));
        // k so small that floor(kN) = 0 → still one value
        assert_eq!(mink(&lp, 0.01), Some(-5.0));
        assert_eq!(mink(&lp, 1.0), Some(-3.0));
        // N = 1
        assert_eq!(mink(&[-0.7], 0.2), Some(-0.7));
        // N = 0
        assert_eq!(mink(&[], 0.2), None);
        assert_eq!(mink_count(0.2, 0), 1);
    }

    #[test]
    fn minkpp_normalises_and_handles_zero_sigma() {
        let s = [
            ts(-2.0, -1.0, 0.5),
            ts(-1.0, -1.0, 2.0),
            ts(-9.0, -9.0, 0.0),
        ];
        // z = [-2, 0, 0]; k = 0.34 → floor(1.02) = 1 → -2
        assert_eq!(minkpp(&s, 0.34), Some(-2.0));
        // k = 1 → mean(-2, 0, 0)
        assert!((minkpp(&s, 1.0).unwrap() + 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(z_score(&s[2]), 0.0);
        assert_eq!(minkpp(&[], 0.2), None);
    }

    #[test]
    fn zlib_matches_python_zlib_level_6() {
        // python3 -c "import zlib; print(len(zlib.compress(b'hello hello hello hello')))" → 16
        assert_eq!(zlib_bytes("hello hello hello hello"), 16);
        assert_eq!(zlib_bytes(""), 8);
        assert_eq!(zlib(2.0, 10), -0.2);
    }

    #[test]
    fn lowercase_ratio_orientation() {
        // member: lowercasing hurts a lot → larger ratio
        assert_eq!(lowercase(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(lowercase(Some(3.0), Some(0.0)), None);
        assert_eq!(lowercase(None, Some(1.0)), None);
    }

    #[test]
    fn n_zero_gives_no_numbers() {
        let s = score_passage("a", &[], Some(&[]), &[0.1, 0.2]);
        assert_eq!(s.stats.loss, None);
        assert_eq!(s.stats.ppl, None);
        assert_eq!(s.stats.bits_per_byte, None);
        assert!(s.scores.iter().all(|(_, v)| v.is_none()), "{:?}", s.scores);
        let names: Vec<_> = s.scores.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "neg_loss",
                "mink_0.1",
                "mink_0.2",
                "minkpp_0.1",
                "minkpp_0.2",
                "zlib",
                "lowercase"
            ]
        );
    }

    #[test]
    fn reference_scores_by_hand() {
        let t = [ts(-1.0, 0.0, 1.0), ts(-2.0, 0.0, 1.0)];
        let r = [ts(-3.0, 0.0, 1.0), ts(-2.5, 0.0, 1.0)];
        let mut s = score_passage("ab", &t, None, &[0.5]);
        s.add_reference("ab", &t, &r, true, &[0.5]);
        let get = |n: &str| s.scores.iter().find(|(k, _)| k == n).unwrap().1.unwrap();
        // losses 1.5 (target) and 2.75 (reference)
        assert!((get("ref") - 1.25).abs() < 1e-12);
        // diffs [2.0, 0.5]; k = 0.5 → the smallest
        assert!((get("ref_mink_0.5") - 0.5).abs() < 1e-12);
        // (2.0 + 0.5) / sqrt(2)
        assert!((get("ref_llr") - 2.5 / 2f64.sqrt()).abs() < 1e-12);
        // 2.5 nats more over 2 bytes
        assert!((get("ref_bpb") - 2.5 / std::f64::consts::LN_2 / 2.0).abs() < 1e-12);
        // unaligned tokenisations: only ref_bpb
        let mut u = score_passage("ab", &t, None, &[0.5]);
        u.add_reference("ab", &t, &r[..1], false, &[0.5]);
        assert!(u.scores.iter().all(|(k, _)| k != "ref"));
        assert!(u.scores.iter().any(|(k, _)| k == "ref_bpb"));
    }

    #[test]
    fn higher_is_more_member_like() {
        // a well-predicted passage must outscore a badly predicted one on every score
        let good = [ts(-0.1, -0.5, 1.0); 10];
        let bad = [ts(-5.0, -0.5, 1.0); 10];
        let g = score_passage("same text", &good, None, &[0.2]);
        let b = score_passage("same text", &bad, None, &[0.2]);
        for ((n, gv), (_, bv)) in g.scores.iter().zip(&b.scores) {
            assert!(gv.unwrap() > bv.unwrap(), "{n}");
        }
    }
}
