//! Scores: pure functions of the per-token statistics (and the text), never of the model.
//! Every score is oriented so that **higher = more likely a member**; definitions follow
//! docs/scores.md (the canonical text) and each function's doc comment gives its formula.

pub mod extraction;
pub mod finetune;
pub mod freq;
pub mod prefix;
pub mod registry;

pub use registry::{GroupSettings, PassageContext, Score, Selection, View};

use crate::stats::TokenStat;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::Write;

/// Raw statistics of one passage (not oriented; `None` when nothing was scored), as the
/// passage record writes them (`null` for a non-finite value).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// `−(1/N) Σ logp_i`, nats per token.
    #[serde(serialize_with = "finite")]
    pub loss: Option<f64>,
    /// `exp(loss)`.
    #[serde(serialize_with = "finite")]
    pub ppl: Option<f64>,
    /// `N · loss / (ln 2 · bytes)`: comparable across tokenizers.
    #[serde(serialize_with = "finite")]
    pub bits_per_byte: Option<f64>,
    /// Length of the zlib-compressed (level 6) UTF-8 text.
    pub zlib_bytes: usize,
}

fn finite<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    x.filter(|v| v.is_finite()).serialize(s)
}

/// Named values in a fixed order (`null` = not computable), serialised as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores(pub Vec<(String, Option<f64>)>);

impl Scores {
    /// The value of a score by name (`None` if absent or not computable).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
    }
}

impl FromIterator<(String, Option<f64>)> for Scores {
    fn from_iter<I: IntoIterator<Item = (String, Option<f64>)>>(it: I) -> Self {
        Scores(it.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Scores {
    type Item = &'a (String, Option<f64>);
    type IntoIter = std::slice::Iter<'a, (String, Option<f64>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::ops::Deref for Scores {
    type Target = Vec<(String, Option<f64>)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Serialize for Scores {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, &v.filter(|x| x.is_finite()))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Scores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scores;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of numbers or nulls")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scores, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Option<f64>>()? {
                    out.push((k, v));
                }
                Ok(Scores(out))
            }
        }
        d.deserialize_map(V)
    }
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

/// Gap-K%'s smoothing window: the paper's default (Kwak & Kim, ACL 2026).
pub const GAPK_WINDOW: usize = 3;

/// Gap-K% (Kwak & Kim, ACL 2026): per position the gap to the top prediction in units of
/// the distribution's spread, `g_i = (logp_i − top1_i) / sigma_i` (≤ 0; `sigma_i²` floored
/// at 1e-8, as the authors' code does), smoothed by the mean of every run of
/// [`GAPK_WINDOW`] consecutive gaps (the gaps themselves when there are fewer), then the
/// mean of the `max(1, floor(k·M))` smallest of the `M` smoothed values. A member's tokens
/// are the model's top choice or close to it: higher = member.
pub fn gapk(stats: &[TokenStat], k: f64) -> Option<f64> {
    let g: Vec<f64> = stats
        .iter()
        .map(|s| (s.logp - s.top1) / (s.sigma * s.sigma).max(1e-8).sqrt())
        .collect();
    if g.len() < GAPK_WINDOW {
        return mean_of_smallest(g.into_iter(), k);
    }
    let w = GAPK_WINDOW as f64;
    mean_of_smallest(g.windows(GAPK_WINDOW).map(|r| r.iter().sum::<f64>() / w), k)
}

/// SURP's entropy bound, nats: a position below it is one where the model is confident
/// (the authors' default).
pub const SURP_MAX_ENTROPY: f64 = 2.0;

/// SURP's value for a passage with no surprising token: the authors' code turns the empty
/// mean into −100, the least member-like value.
pub const SURP_NONE: f64 = -100.0;

/// SURP (Zhang & Wu 2024, "surprising tokens"): the surprising tokens are the
/// `floor(k·N)` lowest-`logp` positions where the model was confident (entropy below
/// [`SURP_MAX_ENTROPY`]); the score is their mean `logp` ([`SURP_NONE`] when there are
/// none). A member surprises its model less: higher = member.
pub fn surp(stats: &[TokenStat], k: f64) -> Option<f64> {
    if stats.is_empty() {
        return None;
    }
    let n = (k * stats.len() as f64).floor() as usize;
    let mut order: Vec<usize> = (0..stats.len()).collect();
    order.sort_by(|&a, &b| stats[a].logp.total_cmp(&stats[b].logp));
    let picked: Vec<f64> = order[..n]
        .iter()
        .map(|&i| &stats[i])
        .filter(|s| s.entropy() < SURP_MAX_ENTROPY)
        .map(|s| s.logp)
        .collect();
    Some(if picked.is_empty() {
        SURP_NONE
    } else {
        picked.iter().sum::<f64>() / picked.len() as f64
    })
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

/// ReCaLL (Xie et al. 2024): `LL(x | P) / LL(x)` with `LL` the mean log-likelihood per
/// token, `P` a non-member prefix — equal to `loss(x | P) / loss(x)`. `LL(x | P)` is over
/// every text token (the first is predicted from the prefix), `LL(x)` over the scored
/// positions, as the authors' code has it. A member loses more to a non-member prefix:
/// higher = member. `None` if either loss is missing or `loss(x) = 0`.
pub fn recall(loss_after: Option<f64>, loss: Option<f64>) -> Option<f64> {
    match (loss_after, loss) {
        (Some(a), Some(l)) if l != 0.0 => Some(a / l),
        _ => None,
    }
}

/// Con-ReCall (Wang et al. 2024): `(LL(x | P_non) − γ·LL(x | P_mem)) / LL(x)`, `LL` the
/// mean log-likelihood per token (= `(loss_non − γ·loss_mem) / loss` in losses), the prefixes
/// a non-member and a member text. Higher = member, as in the authors' code (which sweeps γ;
/// here each γ is its own score, and `eval`'s `selected_cv` may pick one by
/// cross-validation). `None` if a loss is missing or `loss(x) = 0`.
pub fn conrecall(
    loss_non: Option<f64>,
    loss_mem: Option<f64>,
    loss: Option<f64>,
    gamma: f64,
) -> Option<f64> {
    match (loss_non, loss_mem, loss) {
        (Some(n), Some(m), Some(l)) if l != 0.0 => Some((n - gamma * m) / l),
        _ => None,
    }
}

/// Name of the Gap-K% score for `k`, e.g. `gapk_0.2`.
pub fn gapk_name(k: f64) -> String {
    format!("gapk_{k}")
}

/// Name of the SURP score for `k`, e.g. `surp_0.2`.
pub fn surp_name(k: f64) -> String {
    format!("surp_{k}")
}

/// Name of the Min-K%++ score for `k`, e.g. `minkpp_0.2`.
pub fn minkpp_name(k: f64) -> String {
    format!("minkpp_{k}")
}

/// Every statistic and score of one passage.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageScores {
    pub stats: Stats,
    /// `(name, value)` in the selection's order (by default: neg_loss, mink_k…,
    /// minkpp_k…, zlib, lowercase, then the reference scores).
    pub scores: Scores,
}

impl PassageScores {
    /// The value of a score by name (`None` if absent or not computable).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.scores.get(name)
    }
}

/// The raw statistics of a passage and the selected scores, from its context.
pub fn score_passage(c: &PassageContext, selection: &Selection) -> PassageScores {
    let logp: Vec<f64> = c.target.iter().map(|s| s.logp).collect();
    let l = loss(&logp);
    PassageScores {
        stats: Stats {
            loss: l,
            ppl: l.map(f64::exp),
            bits_per_byte: bits_per_byte(&logp, c.text.len()),
            zlib_bytes: zlib_bytes(c.text),
        },
        scores: Scores(selection.compute(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(logp: f64, mu: f64, sigma: f64) -> TokenStat {
        TokenStat {
            logp,
            mu,
            sigma,
            top1: 0.0,
            rank: 1,
        }
    }

    fn ctx<'a>(text: &'a str, target: &'a [TokenStat]) -> PassageContext<'a> {
        PassageContext {
            text,
            target,
            lowercase: None,
            reference: None,
            aligned: false,
            extraction: None,
            prefixed: None,
            member_prefixed: None,
            ids: &[],
            freq: None,
        }
    }

    fn selection(ks: &[f64], lowercase: bool, reference: bool) -> Selection {
        Selection::default_for(&GroupSettings {
            ks,
            lowercase,
            reference,
            same_vocab: reference,
            extraction: None,
            full_distribution: true,
            prefix: false,
            gammas: &[],
            freq: false,
        })
    }

    #[test]
    fn loss_and_ppl_by_hand() {
        assert_eq!(loss(&[-1.0, -3.0]), Some(2.0));
        assert_eq!(loss(&[]), None);
        let t = [ts(-1.0, 0.0, 1.0), ts(-3.0, 0.0, 1.0)];
        let s = score_passage(&ctx("ab", &t), &selection(&[0.2], false, false));
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
        let s = score_passage(
            &PassageContext {
                lowercase: Some(&[]),
                ..ctx("a", &[])
            },
            &selection(&[0.1, 0.2], true, false),
        );
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
                "gapk_0.1",
                "gapk_0.2",
                "surp_0.1",
                "surp_0.2",
                "zlib",
                "lowercase"
            ]
        );
    }

    #[test]
    fn recall_and_conrecall_by_hand() {
        // losses: after the non-member prefix 3, after the member prefix 1, alone 2
        assert_eq!(recall(Some(3.0), Some(2.0)), Some(1.5));
        // (LL_non − γ·LL_mem) / LL = (−3 + 0.5·1) / −2 = 1.25
        assert_eq!(conrecall(Some(3.0), Some(1.0), Some(2.0), 0.5), Some(1.25));
        // γ = 0 is ReCaLL
        assert_eq!(conrecall(Some(3.0), Some(1.0), Some(2.0), 0.0), Some(1.5));
        assert_eq!(recall(Some(3.0), Some(0.0)), None);
        assert_eq!(conrecall(None, Some(1.0), Some(2.0), 0.5), None);
    }

    fn gap(logp: f64, top1: f64, sigma: f64) -> TokenStat {
        TokenStat {
            top1,
            ..ts(logp, -1.0, sigma)
        }
    }

    #[test]
    fn gapk_smooths_over_three_and_takes_the_lowest() {
        // gaps (logp − top1)/sigma: [0, -2, -1, -4, 0]
        let s = [
            gap(-1.0, -1.0, 1.0),
            gap(-3.0, -1.0, 1.0),
            gap(-2.0, -1.5, 0.5),
            gap(-5.0, -1.0, 1.0),
            gap(-0.5, -0.5, 2.0),
        ];
        // windows of 3: [-1, -7/3, -5/3]; k = 0.34 → floor(1.02) = 1 → -7/3
        assert!((gapk(&s, 0.34).unwrap() + 7.0 / 3.0).abs() < 1e-12);
        // k = 1 → mean of the three window means
        assert!((gapk(&s, 1.0).unwrap() + 5.0 / 3.0).abs() < 1e-12);
        // fewer positions than the window: the gaps themselves
        assert_eq!(gapk(&s[..2], 0.5), Some(-2.0));
        // a degenerate distribution: sigma² floored at 1e-8 (sigma 1e-4), as the authors do
        assert!((gapk(&[gap(-1.0, 0.0, 0.0)], 1.0).unwrap() + 1e4).abs() < 1e-6);
        assert_eq!(gapk(&[], 0.2), None);
    }

    #[test]
    fn surp_averages_the_confident_lowest_and_says_minus_100_for_none() {
        let e = |logp: f64, entropy: f64| ts(logp, -entropy, 1.0);
        // lowest floor(0.6·5) = 3 logp: -9 (entropy 3: not confident), -7, -5
        let s = [
            e(-9.0, 3.0),
            e(-1.0, 0.1),
            e(-7.0, 0.5),
            e(-5.0, 1.9),
            e(-2.0, 0.1),
        ];
        assert_eq!(surp(&s, 0.6), Some(-6.0));
        // floor(0.2·5) = 1: only -9, which is not confident → none
        assert_eq!(surp(&s, 0.2), Some(SURP_NONE));
        // floor(k·N) = 0 → none (the authors' int(k/100·N), no minimum of one)
        assert_eq!(surp(&s, 0.1), Some(SURP_NONE));
        assert_eq!(surp(&[], 0.2), None);
    }

    #[test]
    fn reference_scores_by_hand() {
        let t = [ts(-1.0, 0.0, 1.0), ts(-2.0, 0.0, 1.0)];
        let r = [ts(-3.0, 0.0, 1.0), ts(-2.5, 0.0, 1.0)];
        let with_ref = |aligned, r: &[TokenStat]| {
            let c = PassageContext {
                reference: Some(r),
                aligned,
                ..ctx("ab", &t)
            };
            score_passage(&c, &selection(&[0.5], false, true))
        };
        let s = with_ref(true, &r);
        let get = |n: &str| s.scores.iter().find(|(k, _)| k == n).unwrap().1.unwrap();
        // losses 1.5 (target) and 2.75 (reference)
        assert!((get("ref") - 1.25).abs() < 1e-12);
        // diffs [2.0, 0.5]; k = 0.5 → the smallest
        assert!((get("ref_mink_0.5") - 0.5).abs() < 1e-12);
        // (2.0 + 0.5) / sqrt(2)
        assert!((get("ref_llr") - 2.5 / 2f64.sqrt()).abs() < 1e-12);
        // 2.5 nats more over 2 bytes
        assert!((get("ref_bpb") - 2.5 / std::f64::consts::LN_2 / 2.0).abs() < 1e-12);
        // unaligned tokenisations: only ref_bpb has a value
        let u = with_ref(false, &r[..1]);
        assert_eq!(u.get("ref"), None);
        assert_eq!(u.get("ref_llr"), None);
        assert!(u.get("ref_bpb").is_some());
    }

    #[test]
    fn higher_is_more_member_like() {
        // a well-predicted passage must outscore a badly predicted one on every score
        let good = [ts(-0.1, -0.5, 1.0); 10];
        let bad = [ts(-5.0, -0.5, 1.0); 10];
        let sel = selection(&[0.2], false, false);
        let g = score_passage(&ctx("same text", &good), &sel);
        let b = score_passage(&ctx("same text", &bad), &sel);
        for ((n, gv), (_, bv)) in g.scores.iter().zip(&b.scores) {
            assert!(gv.unwrap() > bv.unwrap(), "{n}");
        }
    }
}
