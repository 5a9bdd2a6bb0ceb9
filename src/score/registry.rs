//! The score registry: every score a run can compute, the views (forward passes) each one
//! needs, and how a selection is named on the command line (`--scores`).
//!
//! A score is a pure function of a [`PassageContext`]: the passage's text and the per-token
//! statistics of each view that was run. A run performs the target pass always (every record
//! carries the loss) and each other view only when a selected score needs it, so
//! `--scores neg_loss,ref` costs no lowercase pass and `--scores default` no extraction
//! windows.

use super::extraction::{Extraction, ExtractionBest};
use super::finetune;
use super::freq::FreqTable;
use super::{gapk, gapk_name, loss, mink, mink_name, minkpp, minkpp_name, surp, surp_name, zlib};
use crate::error::{Error, Result};
use crate::stats::TokenStat;

/// A forward view of a passage: which model reads which text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The target model on the text (always run).
    Target,
    /// The target model on the lowercased text.
    Lowercase,
    /// The reference model on the text.
    Reference,
    /// The target model on short windows of the text (verbatim extraction).
    Extraction,
    /// The target model on the text read after a non-member prefix (ReCaLL).
    Prefixed,
    /// The target model on the text read after a member prefix (Con-ReCall).
    MemberPrefixed,
}

/// One score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    NegLoss,
    Mink(f64),
    Minkpp(f64),
    /// Gap-K% (Kwak & Kim 2026): the lowest smoothed gaps to the top prediction.
    Gapk(f64),
    /// SURP (Zhang & Wu 2024): the log-probs of surprising tokens.
    Surp(f64),
    Zlib,
    Lowercase,
    Ref,
    RefMink(f64),
    RefLlr,
    RefBpb,
    /// EZ-MIA's error-zone score (Ilić et al. 2026).
    Ez,
    /// The error zone's summed log-likelihood ratio over `sqrt(|E|)`.
    EzLlr,
    /// WBC's window sign votes (Chen et al. 2026).
    Wbc,
    /// An InfoRMIA-style per-token information gain (Tao & Shokri 2025).
    RefInfo,
    /// Verbatim extraction probability of the best window (Cooper et al. 2025).
    Extraction(Extraction),
    /// ReCaLL (Xie et al. 2024): the log-likelihood after a non-member prefix over the
    /// log-likelihood alone.
    Recall,
    /// Con-ReCall (Wang et al. 2024) at a contrast weight γ: ReCaLL's numerator less γ
    /// times the log-likelihood after a member prefix.
    ConRecall(f64),
    /// DC-PDD (Zhang et al. 2024): token probabilities calibrated by their frequency in a
    /// reference corpus (`--freq-table`).
    Dcpdd,
}

/// What a score is computed from.
#[derive(Debug, Clone, Copy)]
pub struct PassageContext<'a> {
    pub text: &'a str,
    /// Target statistics of the scored positions.
    pub target: &'a [TokenStat],
    pub lowercase: Option<&'a [TokenStat]>,
    pub reference: Option<&'a [TokenStat]>,
    /// Whether the reference tokenised the text exactly as the target did (token-level
    /// comparisons need it).
    pub aligned: bool,
    pub extraction: Option<&'a ExtractionBest>,
    /// Target statistics of every text token read after the ReCaLL prefix.
    pub prefixed: Option<&'a [TokenStat]>,
    /// The same after Con-ReCall's member prefix.
    pub member_prefixed: Option<&'a [TokenStat]>,
    /// The token id of each scored position (`target[i]` is the statistic of `ids[i]`).
    pub ids: &'a [u32],
    /// DC-PDD's token frequency table, when the run has one (`--freq-table`).
    pub freq: Option<&'a FreqTable>,
}

impl Score {
    pub fn name(&self) -> String {
        match self {
            Score::NegLoss => "neg_loss".into(),
            Score::Mink(k) => mink_name(*k),
            Score::Minkpp(k) => minkpp_name(*k),
            Score::Gapk(k) => gapk_name(*k),
            Score::Surp(k) => surp_name(*k),
            Score::Zlib => "zlib".into(),
            Score::Lowercase => "lowercase".into(),
            Score::Ref => "ref".into(),
            Score::RefMink(k) => format!("ref_mink_{k}"),
            Score::RefLlr => "ref_llr".into(),
            Score::RefBpb => "ref_bpb".into(),
            Score::Ez => "ez".into(),
            Score::EzLlr => "ez_llr".into(),
            Score::Wbc => "wbc".into(),
            Score::RefInfo => "ref_info".into(),
            Score::Extraction(e) => e.score_name(),
            Score::Recall => "recall".into(),
            Score::ConRecall(g) => format!("conrecall_{g}"),
            Score::Dcpdd => "dcpdd".into(),
        }
    }

    /// The view this score needs besides the target's.
    pub fn view(&self) -> Option<View> {
        match self {
            Score::NegLoss
            | Score::Mink(_)
            | Score::Minkpp(_)
            | Score::Gapk(_)
            | Score::Surp(_)
            | Score::Zlib
            | Score::Dcpdd => None,
            Score::Lowercase => Some(View::Lowercase),
            Score::Extraction(_) => Some(View::Extraction),
            Score::Recall => Some(View::Prefixed),
            // and View::Prefixed: see Selection::needs
            Score::ConRecall(_) => Some(View::MemberPrefixed),
            _ => Some(View::Reference),
        }
    }

    /// Whether it needs the whole next-token distribution at each position (its mean,
    /// spread or entropy): not available through a server, which returns only the top few
    /// log-probs.
    pub fn needs_distribution(&self) -> bool {
        matches!(
            self,
            Score::Minkpp(_) | Score::Gapk(_) | Score::Surp(_) | Score::RefInfo
        )
    }

    /// Whether it compares the two models token by token (same tokenisation needed).
    pub fn token_level_reference(&self) -> bool {
        self.view() == Some(View::Reference) && *self != Score::RefBpb
    }

    /// The score's value (`None`: not computable for this passage). Formulas: the table in
    /// docs/scores.md and each function's doc comment.
    pub fn compute(&self, c: &PassageContext) -> Option<f64> {
        let logp = || c.target.iter().map(|s| s.logp).collect::<Vec<f64>>();
        // per-token log-likelihood ratios target − reference, when tokens align
        let diffs = || -> Option<Vec<f64>> {
            let r = c.reference.filter(|_| c.aligned)?;
            Some(
                c.target
                    .iter()
                    .zip(r)
                    .map(|(t, r)| t.logp - r.logp)
                    .collect(),
            )
        };
        match self {
            Score::NegLoss => loss(&logp()).map(|l| -l),
            Score::Mink(k) => mink(&logp(), *k),
            Score::Minkpp(k) => minkpp(c.target, *k),
            Score::Gapk(k) => gapk(c.target, *k),
            Score::Surp(k) => surp(c.target, *k),
            Score::Zlib => loss(&logp()).map(|l| zlib(l, super::zlib_bytes(c.text))),
            Score::Lowercase => {
                let lower: Vec<f64> = c.lowercase?.iter().map(|s| s.logp).collect();
                super::lowercase(loss(&lower), loss(&logp()))
            }
            Score::Ref => {
                let r: Vec<f64> = c
                    .reference
                    .filter(|_| c.aligned)?
                    .iter()
                    .map(|s| s.logp)
                    .collect();
                Some(loss(&r)? - loss(&logp())?)
            }
            Score::RefMink(k) => mink(&diffs()?, *k),
            Score::RefLlr => {
                let d = diffs()?;
                (!d.is_empty()).then(|| d.iter().sum::<f64>() / (d.len() as f64).sqrt())
            }
            Score::RefBpb => {
                let r: Vec<f64> = c.reference?.iter().map(|s| s.logp).collect();
                let bytes = c.text.len();
                match (
                    super::bits_per_byte(&r, bytes),
                    super::bits_per_byte(&logp(), bytes),
                ) {
                    (Some(a), Some(b)) => Some(a - b),
                    _ => None,
                }
            }
            Score::Ez => finetune::ez(c.target, c.reference.filter(|_| c.aligned)?),
            Score::EzLlr => finetune::ez_llr(c.target, c.reference.filter(|_| c.aligned)?),
            Score::Wbc => finetune::wbc(&diffs()?, finetune::WBC_WINDOWS),
            Score::RefInfo => finetune::ref_info(c.target, c.reference.filter(|_| c.aligned)?),
            Score::Extraction(_) => c.extraction.map(|e| e.log_prob),
            Score::Recall => {
                let after: Vec<f64> = c.prefixed?.iter().map(|s| s.logp).collect();
                super::recall(loss(&after), loss(&logp()))
            }
            Score::ConRecall(g) => {
                let after: Vec<f64> = c.prefixed?.iter().map(|s| s.logp).collect();
                let member: Vec<f64> = c.member_prefixed?.iter().map(|s| s.logp).collect();
                super::conrecall(loss(&after), loss(&member), loss(&logp()), *g)
            }
            Score::Dcpdd => super::freq::dcpdd(c.ids, &logp(), c.freq?),
        }
    }
}

/// The scores of a run, in output order, with the settings their names leave out.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub scores: Vec<Score>,
}

/// What a named group expands to.
pub struct GroupSettings<'a> {
    pub ks: &'a [f64],
    pub lowercase: bool,
    pub reference: bool,
    /// Whether the reference shares the target's vocabulary (token-level scores possible).
    pub same_vocab: bool,
    pub extraction: Option<Extraction>,
    /// Whether the engines give the whole next-token distribution (a local model does, a
    /// server does not): without it the default set leaves out the scores that need it and
    /// naming one is an error.
    pub full_distribution: bool,
    /// Whether a ReCaLL prefix was given (`--recall-prefix`).
    pub prefix: bool,
    /// Con-ReCall's contrast weights, when a member prefix was given too
    /// (`--member-prefix`, `--gamma`); empty otherwise.
    pub gammas: &'a [f64],
    /// Whether a token frequency table in the target's vocabulary was given
    /// (`--freq-table`): DC-PDD.
    pub freq: bool,
}

/// The names `--scores` accepts, for help and errors.
pub const SCORE_NAMES: &str =
    "default, finetune, all, neg_loss, mink_K, minkpp_K, gapk_K, surp_K, zlib, \
    lowercase, ref, ref_mink_K, ref_llr, ref_bpb, ez, ez_llr, wbc, ref_info, recall, conrecall_G, dcpdd, extraction_P_S";

impl Selection {
    /// The default set: every score that costs nothing beyond the views the run computes
    /// anyway — neg_loss, Min-K% at each k, and where the whole distribution is known (a
    /// local model) Min-K%++, Gap-K% and SURP at each k; zlib, lowercase (unless off); with
    /// a reference `ref_bpb`, and where it shares the target's vocabulary also `ref`,
    /// `ref_mink_k`, `ref_llr` and the fine-tune scores (ez, ez_llr, wbc, and ref_info with
    /// the whole distribution); the extraction score when `--extraction` is given.
    pub fn default_for(g: &GroupSettings) -> Selection {
        let mut s = vec![Score::NegLoss];
        s.extend(g.ks.iter().map(|&k| Score::Mink(k)));
        if g.full_distribution {
            s.extend(g.ks.iter().map(|&k| Score::Minkpp(k)));
            s.extend(g.ks.iter().map(|&k| Score::Gapk(k)));
            s.extend(g.ks.iter().map(|&k| Score::Surp(k)));
        }
        s.push(Score::Zlib);
        if g.lowercase {
            s.push(Score::Lowercase);
        }
        if g.reference {
            if g.same_vocab {
                s.push(Score::Ref);
                s.extend(g.ks.iter().map(|&k| Score::RefMink(k)));
                s.push(Score::RefLlr);
                s.extend([Score::Ez, Score::EzLlr, Score::Wbc]);
                if g.full_distribution {
                    s.push(Score::RefInfo);
                }
            }
            s.push(Score::RefBpb);
        }
        s.extend(g.extraction.map(Score::Extraction));
        if g.prefix {
            s.push(Score::Recall);
            s.extend(g.gammas.iter().map(|&x| Score::ConRecall(x)));
        }
        if g.freq {
            s.push(Score::Dcpdd);
        }
        Selection { scores: s }
    }

    /// Parses `--scores`: score names and the groups `default` (see [`Self::default_for`]),
    /// `finetune` (ez, ez_llr, wbc, ref_info: a same-vocabulary reference needed) and `all`
    /// (both). `None` gives the default. Names are kept in the order given, duplicates
    /// dropped, `neg_loss` first when not named; a score that needs a missing reference is
    /// an error.
    pub fn parse(spec: Option<&[String]>, g: &GroupSettings) -> Result<Selection> {
        let Some(spec) = spec else {
            return Ok(Selection::default_for(g));
        };
        let mut out: Vec<Score> = Vec::new();
        let add = |s: Score, out: &mut Vec<Score>| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        let finetune = [Score::Ez, Score::EzLlr, Score::Wbc, Score::RefInfo];
        for name in spec.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match name {
                "default" => Selection::default_for(g)
                    .scores
                    .into_iter()
                    .for_each(|s| add(s, &mut out)),
                "finetune" => finetune.iter().for_each(|&s| add(s, &mut out)),
                "all" => Selection::default_for(g)
                    .scores
                    .into_iter()
                    .chain(finetune)
                    .for_each(|s| add(s, &mut out)),
                _ => add(parse_one(name, g)?, &mut out),
            }
        }
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "--scores: no score named (known: {SCORE_NAMES})"
            )));
        }
        // always there: it costs nothing beyond the target pass, and a scan ranks by it
        // without a calibration
        if !out.contains(&Score::NegLoss) {
            out.insert(0, Score::NegLoss);
        }
        for s in &out {
            let name = s.name();
            if s.needs_distribution() && !g.full_distribution {
                return Err(Error::Usage(format!(
                    "--scores {name}: needs the whole next-token distribution at every position, which a server does not return (only the top few log-probs); score it with a local model"
                )));
            }
            match s.view() {
                Some(View::Reference) if !g.reference => {
                    return Err(Error::Usage(format!(
                        "--scores {name}: needs a reference model (--reference)"
                    )))
                }
                Some(View::Reference) if s.token_level_reference() && !g.same_vocab => {
                    return Err(Error::Usage(format!(
                        "--scores {name}: compares the models token by token, but the reference has another vocabulary (ref_bpb works across vocabularies)"
                    )))
                }
                Some(View::MemberPrefixed) if !g.prefix || g.gammas.is_empty() => {
                    return Err(Error::Usage(format!(
                        "--scores {name}: needs a non-member and a member prefix (--recall-prefix, --member-prefix)"
                    )))
                }
                Some(View::Prefixed) if !g.prefix => {
                    return Err(Error::Usage(format!(
                        "--scores {name}: needs a non-member prefix (--recall-prefix NAME|FILE)"
                    )))
                }
                None if *s == Score::Dcpdd && !g.freq => {
                    return Err(Error::Usage(format!(
                        "--scores {name}: needs a token frequency table in the target's vocabulary (--freq-table FILE, made by `miascan freq build`)"
                    )))
                }
                Some(View::Lowercase) if !g.lowercase => {
                    return Err(Error::Usage(
                        "--scores lowercase contradicts --no-lowercase".into(),
                    ))
                }
                _ => {}
            }
        }
        Ok(Selection { scores: out })
    }

    pub fn needs(&self, view: View) -> bool {
        view == View::Target
            || self.scores.iter().any(|s| {
                s.view() == Some(view)
                    || (view == View::Prefixed && matches!(s, Score::ConRecall(_)))
            })
    }

    /// The extraction settings, if an extraction score is selected.
    pub fn extraction(&self) -> Option<Extraction> {
        self.scores.iter().find_map(|s| match s {
            Score::Extraction(e) => Some(*e),
            _ => None,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.scores.iter().map(Score::name).collect()
    }

    /// Every selected score's value, in order.
    pub fn compute(&self, c: &PassageContext) -> Vec<(String, Option<f64>)> {
        self.scores
            .iter()
            .map(|s| (s.name(), s.compute(c)))
            .collect()
    }
}

/// One score by name; `k` and the extraction lengths come from the name itself
/// (`mink_0.3`, `extraction_50_50`), the extraction stride from `--extraction`.
fn parse_one(name: &str, g: &GroupSettings) -> Result<Score> {
    let unknown = || {
        Error::Usage(format!(
            "--scores {name}: unknown score (known: {SCORE_NAMES})"
        ))
    };
    let k = |rest: &str| -> Result<f64> {
        match rest.parse::<f64>() {
            Ok(k) if k > 0.0 && k <= 1.0 => Ok(k),
            _ => Err(Error::Usage(format!(
                "--scores {name}: k must be in (0, 1]"
            ))),
        }
    };
    Ok(match name {
        "neg_loss" => Score::NegLoss,
        "zlib" => Score::Zlib,
        "lowercase" => Score::Lowercase,
        "ref" => Score::Ref,
        "ref_llr" => Score::RefLlr,
        "ref_bpb" => Score::RefBpb,
        "ez" => Score::Ez,
        "ez_llr" => Score::EzLlr,
        "wbc" => Score::Wbc,
        "ref_info" => Score::RefInfo,
        "recall" => Score::Recall,
        "dcpdd" => Score::Dcpdd,
        _ => {
            if let Some(r) = name.strip_prefix("ref_mink_") {
                Score::RefMink(k(r)?)
            } else if let Some(r) = name.strip_prefix("conrecall_") {
                match r.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Score::ConRecall(x),
                    _ => {
                        return Err(Error::Usage(format!(
                            "--scores {name}: γ must be a number >= 0"
                        )))
                    }
                }
            } else if let Some(r) = name.strip_prefix("gapk_") {
                Score::Gapk(k(r)?)
            } else if let Some(r) = name.strip_prefix("surp_") {
                Score::Surp(k(r)?)
            } else if let Some(r) = name.strip_prefix("minkpp_") {
                Score::Minkpp(k(r)?)
            } else if let Some(r) = name.strip_prefix("mink_") {
                Score::Mink(k(r)?)
            } else if let Some(r) = name.strip_prefix("extraction_") {
                let e = Extraction::parse(&r.replacen('_', ":", 1))?;
                // the stride is a setting of the run, not of the name
                let stride = g.extraction.map_or(e.stride, |x| x.stride);
                Score::Extraction(Extraction { stride, ..e })
            } else {
                return Err(unknown());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(reference: bool) -> GroupSettings<'static> {
        GroupSettings {
            ks: &[0.2],
            lowercase: true,
            reference,
            same_vocab: reference,
            extraction: None,
            full_distribution: true,
            prefix: false,
            gammas: &[],
            freq: false,
        }
    }

    #[test]
    fn the_default_is_every_score_the_runs_views_pay_for() {
        assert_eq!(
            Selection::default_for(&g(false)).names(),
            [
                "neg_loss",
                "mink_0.2",
                "minkpp_0.2",
                "gapk_0.2",
                "surp_0.2",
                "zlib",
                "lowercase"
            ]
        );
        assert_eq!(
            Selection::default_for(&g(true)).names(),
            [
                "neg_loss",
                "mink_0.2",
                "minkpp_0.2",
                "gapk_0.2",
                "surp_0.2",
                "zlib",
                "lowercase",
                "ref",
                "ref_mink_0.2",
                "ref_llr",
                "ez",
                "ez_llr",
                "wbc",
                "ref_info",
                "ref_bpb"
            ]
        );
        // another vocabulary: no token-level comparison, so no fine-tune scores
        let other_vocab = GroupSettings {
            same_vocab: false,
            ..g(true)
        };
        let d = Selection::default_for(&other_vocab).names();
        assert_eq!(d.last().unwrap(), "ref_bpb");
        assert!(
            !d.iter().any(|n| n.starts_with("ez") || n == "wbc"),
            "{d:?}"
        );
        // a k list: every k-score at every k, in one selection (one pass)
        let sweep = GroupSettings {
            ks: &[0.1, 0.5],
            ..g(false)
        };
        let d = Selection::default_for(&sweep).names();
        for n in ["mink", "minkpp", "gapk", "surp"] {
            for k in ["0.1", "0.5"] {
                assert!(d.contains(&format!("{n}_{k}")), "{n}_{k} in {d:?}");
            }
        }
    }

    #[test]
    fn without_the_whole_distribution_its_scores_leave_the_default_and_are_refused_by_name() {
        let server = GroupSettings {
            full_distribution: false,
            ..g(true)
        };
        let d = Selection::default_for(&server).names();
        for gone in ["minkpp", "gapk", "surp", "ref_info"] {
            assert!(!d.iter().any(|n| n.starts_with(gone)), "{gone} in {d:?}");
        }
        for kept in ["mink_0.2", "ref_llr", "ez", "ez_llr", "wbc"] {
            assert!(d.contains(&kept.to_string()), "{kept} not in {d:?}");
        }
        let spec = |s: &str| vec![s.to_string()];
        for name in ["minkpp_0.2", "gapk_0.2", "surp_0.2", "ref_info", "all"] {
            let e = Selection::parse(Some(&spec(name)), &server)
                .unwrap_err()
                .to_string();
            assert!(e.contains("whole next-token distribution"), "{name}: {e}");
        }
        let names: Vec<String> = ["ez", "ez_llr", "wbc", "ref_bpb"]
            .map(String::from)
            .to_vec();
        let ok = Selection::parse(Some(&names), &server).unwrap();
        assert_eq!(ok.names(), ["neg_loss", "ez", "ez_llr", "wbc", "ref_bpb"]);
    }

    #[test]
    fn names_and_groups_parse_and_views_follow() {
        let spec = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        let s = Selection::parse(Some(&spec("neg_loss,mink_0.5,ez,wbc,ez")), &g(true)).unwrap();
        assert_eq!(s.names(), ["neg_loss", "mink_0.5", "ez", "wbc"]);
        assert!(s.needs(View::Reference) && !s.needs(View::Lowercase));
        let s = Selection::parse(Some(&spec("zlib")), &g(false)).unwrap();
        assert_eq!(s.names(), ["neg_loss", "zlib"]);
        assert!(!s.needs(View::Reference) && !s.needs(View::Lowercase) && s.needs(View::Target));
        let all = Selection::parse(Some(&spec("all")), &g(true)).unwrap();
        assert_eq!(all.scores.len(), 15);
        let s = Selection::parse(Some(&spec("gapk_0.3,surp_0.1")), &g(false)).unwrap();
        assert_eq!(s.names(), ["neg_loss", "gapk_0.3", "surp_0.1"]);
        let e = Selection::parse(Some(&spec("extraction_50_50")), &g(false)).unwrap();
        assert_eq!(e.extraction().map(|x| (x.prefix, x.suffix)), Some((50, 50)));
        assert_eq!(e.names(), ["neg_loss", "extraction_50_50"]);
        assert!(e.needs(View::Extraction));
        for bad in ["ez", "nope", "mink_2", "ref_mink_x", "gapk_0", "surp_x", ""] {
            assert!(
                Selection::parse(Some(&spec(bad)), &g(false)).is_err(),
                "{bad}"
            );
        }
    }
}
