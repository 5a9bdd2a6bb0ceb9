//! Canary exposure (Carlini et al. 2019, "The Secret Sharer"): is one specific secret — an
//! account number, a patient line — more likely under the model than random fills of the
//! same template? The secret's log-likelihood is ranked among `N` random fills (or all
//! fills, when the template's space is that small). Under the null that the secret is just
//! another random fill, its rank is uniform, so
//! `p = (1 + #{fills scoring >= the secret}) / (1 + N)` is an exact p-value; the exposure
//! `log2|space| − log2 rank` is estimated from the sample as `−log2 p` (exact when every
//! fill is scored), and for ranks beyond the sample by a normal fit to the fills'
//! log-likelihoods (`exposure_extrapolated`; the paper fits a skew-normal).

use crate::error::{Error, Result};
use rand::Rng;
use serde::Serialize;
use std::path::Path;

/// One variable part of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// `{digits:N}`: N ASCII digits.
    Digits(usize),
    /// `{letters:N}`: N lowercase ASCII letters.
    Letters(usize),
    /// `{words:FILE}`: one word of a list (one per line).
    Words(Vec<String>),
}

impl Slot {
    fn alphabet(&self) -> &'static [u8] {
        match self {
            Slot::Digits(_) => b"0123456789",
            _ => b"abcdefghijklmnopqrstuvwxyz",
        }
    }

    fn log2_size(&self) -> f64 {
        match self {
            Slot::Digits(n) | Slot::Letters(n) => *n as f64 * (self.alphabet().len() as f64).log2(),
            Slot::Words(w) => (w.len() as f64).log2(),
        }
    }

    fn size(&self) -> Option<u128> {
        match self {
            Slot::Digits(n) | Slot::Letters(n) => {
                (self.alphabet().len() as u128).checked_pow(u32::try_from(*n).ok()?)
            }
            Slot::Words(w) => Some(w.len() as u128),
        }
    }

    /// The `i`-th value (`i < size`), in lexicographic order.
    fn nth(&self, mut i: u128, out: &mut String) {
        match self {
            Slot::Digits(n) | Slot::Letters(n) => {
                let a = self.alphabet();
                let mut chars = vec![0u8; *n];
                for c in chars.iter_mut().rev() {
                    *c = a[(i % a.len() as u128) as usize];
                    i /= a.len() as u128;
                }
                out.push_str(std::str::from_utf8(&chars).expect("ASCII"));
            }
            Slot::Words(w) => out.push_str(&w[i as usize]),
        }
    }

    fn sample(&self, rng: &mut impl Rng, out: &mut String) {
        match self {
            Slot::Digits(n) | Slot::Letters(n) => {
                let a = self.alphabet();
                out.extend((0..*n).map(|_| a[rng.random_range(0..a.len())] as char));
            }
            Slot::Words(w) => out.push_str(&w[rng.random_range(0..w.len())]),
        }
    }

    /// Byte lengths of the values this slot can match at the start of `s`.
    fn matches(&self, s: &str) -> Vec<usize> {
        match self {
            Slot::Digits(n) | Slot::Letters(n) => {
                let a = self.alphabet();
                let ok = s.len() >= *n && s.as_bytes()[..*n].iter().all(|c| a.contains(c));
                if ok {
                    vec![*n]
                } else {
                    Vec::new()
                }
            }
            Slot::Words(w) => w
                .iter()
                .filter(|w| s.starts_with(w.as_str()))
                .map(String::len)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Slot(Slot),
}

/// A secret's template: literal text with slots, e.g. `my account number is {digits:9}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
    source: String,
}

impl Template {
    /// Parses `{digits:N}`, `{letters:N}` and `{words:FILE}` slots (`{{` and `}}` are
    /// literal braces); word files are read with `read_words` (relative to the caller).
    pub fn parse(s: &str) -> Result<Template> {
        Template::parse_with(s, |p| {
            let text = std::fs::read_to_string(p).map_err(|source| Error::InputIo {
                path: p.to_path_buf(),
                source,
            })?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect())
        })
    }

    pub fn parse_with(
        s: &str,
        read_words: impl Fn(&Path) -> Result<Vec<String>>,
    ) -> Result<Template> {
        let bad = |m: String| Error::Usage(format!("--template {s:?}: {m}"));
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                text.push(c);
                rest = &rest[2..];
                continue;
            }
            if c == '}' {
                return Err(bad("unmatched '}' (write '}}' for a literal brace)".into()));
            }
            if c != '{' {
                text.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest
                .find('}')
                .ok_or_else(|| bad("unclosed '{' (write '{{' for a literal brace)".into()))?;
            let spec = &rest[1..end];
            rest = &rest[end + 1..];
            let (kind, arg) = spec.split_once(':').ok_or_else(|| {
                bad(format!(
                    "slot {{{spec}}}: expected {{digits:N}}, {{letters:N}} or {{words:FILE}}"
                ))
            })?;
            let count = || match arg.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(n),
                _ => Err(bad(format!("slot {{{spec}}}: N must be 1 to 64"))),
            };
            let slot = match kind {
                "digits" => Slot::Digits(count()?),
                "letters" => Slot::Letters(count()?),
                "words" => {
                    let mut w = read_words(Path::new(arg))?;
                    w.sort();
                    w.dedup();
                    if w.is_empty() {
                        return Err(bad(format!("word list {arg} holds no word")));
                    }
                    Slot::Words(w)
                }
                _ => {
                    return Err(bad(format!(
                        "unknown slot kind {kind:?} (digits, letters, words)"
                    )))
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Slot(slot));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Slot(_))) {
            return Err(bad("no slot: nothing to randomise".into()));
        }
        Ok(Template {
            pieces,
            source: s.to_string(),
        })
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Slot(s) => Some(s),
            Piece::Text(_) => None,
        })
    }

    /// `log2` of the number of fills.
    pub fn log2_space(&self) -> f64 {
        self.slots().map(Slot::log2_size).sum()
    }

    /// The number of fills, when it fits in a `u128`.
    pub fn space(&self) -> Option<u128> {
        self.slots()
            .try_fold(1u128, |acc, s| acc.checked_mul(s.size()?))
    }

    /// The `i`-th fill in lexicographic order of the slots (mixed radix, last slot fastest).
    pub fn nth(&self, mut i: u128) -> String {
        let sizes: Vec<u128> = self
            .slots()
            .map(|s| s.size().unwrap_or(u128::MAX))
            .collect();
        let mut digits = vec![0u128; sizes.len()];
        for (d, n) in digits.iter_mut().zip(&sizes).rev() {
            *d = i % n;
            i /= n;
        }
        let mut out = String::new();
        let mut k = 0;
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(s) => {
                    s.nth(digits[k], &mut out);
                    k += 1;
                }
            }
        }
        out
    }

    /// A uniformly random fill.
    pub fn sample(&self, rng: &mut impl Rng) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(s) => s.sample(rng, &mut out),
            }
        }
        out
    }

    /// Whether `s` is one of the template's fills.
    pub fn matches(&self, s: &str) -> bool {
        fn go(pieces: &[Piece], s: &str) -> bool {
            match pieces.split_first() {
                None => s.is_empty(),
                Some((Piece::Text(t), rest)) => {
                    s.strip_prefix(t.as_str()).is_some_and(|s| go(rest, s))
                }
                Some((Piece::Slot(slot), rest)) => {
                    slot.matches(s).into_iter().any(|n| go(rest, &s[n..]))
                }
            }
        }
        go(&self.pieces, s)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The fills a run compares secrets with.
#[derive(Debug, Clone)]
pub struct Fills {
    pub texts: Vec<String>,
    /// Every fill of the space (the p-value and exposure are then exact).
    pub enumerated: bool,
}

/// All fills when the space has at most `samples`, else `samples` uniform draws (with
/// replacement) from a seeded generator.
pub fn fills(t: &Template, samples: usize, seed: u64) -> Fills {
    use rand::SeedableRng;
    match t.space() {
        Some(n) if n <= samples as u128 => Fills {
            texts: (0..n).map(|i| t.nth(i)).collect(),
            enumerated: true,
        },
        _ => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            Fills {
                texts: (0..samples).map(|_| t.sample(&mut rng)).collect(),
                enumerated: false,
            }
        }
    }
}

/// One secret's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    pub secret: String,
    pub template: String,
    /// `Σ log p` of the secret's tokens (nats), as the fills are scored.
    pub log_prob: f64,
    /// Fills compared with (the secret itself, if drawn, is left out).
    pub fills: usize,
    pub enumerated: bool,
    /// Fills whose log-likelihood is at least the secret's (ties count against it).
    pub at_least: usize,
    /// `1 + at_least`: the secret's rank among the fills and itself.
    pub rank: usize,
    /// `(1 + at_least) / (1 + fills)`: exact under the null that the secret is a random
    /// fill.
    pub p_value: f64,
    pub log2_space: f64,
    /// `log2|space| − log2 rank`, estimated as `−log2 p_value` (exact when enumerated; at
    /// most `log2(1 + fills)` from a sample).
    pub exposure: f64,
    /// `−log2 P(X >= log_prob)` under a normal fit to the fills' log-likelihoods (capped at
    /// `log2|space|`): the estimate for ranks beyond the sample.
    pub exposure_extrapolated: Option<f64>,
    pub fills_mean: f64,
    pub fills_sd: f64,
}

/// The secret's figures given the fills' log-likelihoods (`(text, log_prob)`).
pub fn measure(t: &Template, fills: &Fills, secret: (&str, f64), scored: &[f64]) -> Exposure {
    let (text, lp) = secret;
    let others: Vec<f64> = fills
        .texts
        .iter()
        .zip(scored)
        .filter(|(f, _)| f.as_str() != text)
        .map(|(_, &v)| v)
        .collect();
    let n = others.len();
    let at_least = others.iter().filter(|&&v| v >= lp).count();
    let p = (1 + at_least) as f64 / (1 + n) as f64;
    let mean = others.iter().sum::<f64>() / n.max(1) as f64;
    let var = others.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let sd = var.sqrt();
    let log2_space = t.log2_space();
    let extrapolated = (sd > 0.0).then(|| {
        let z = (lp - mean) / sd;
        (-log2_upper_tail(z)).clamp(0.0, log2_space)
    });
    Exposure {
        secret: text.to_string(),
        template: t.source().to_string(),
        log_prob: lp,
        fills: n,
        enumerated: fills.enumerated,
        at_least,
        rank: 1 + at_least,
        p_value: p,
        log2_space,
        exposure: -p.log2(),
        exposure_extrapolated: extrapolated,
        fills_mean: mean,
        fills_sd: sd,
    }
}

/// `log2 P(Z >= z)` for a standard normal, accurate in the far tail (asymptotic series
/// beyond z = 30, where `erfc` underflows).
fn log2_upper_tail(z: f64) -> f64 {
    if z < 30.0 {
        (0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)).log2()
    } else {
        let ln = -z * z / 2.0 - (z * (2.0 * std::f64::consts::PI).sqrt()).ln()
            + (1.0 - 1.0 / (z * z)).ln();
        ln / std::f64::consts::LN_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(_: &Path) -> Result<Vec<String>> {
        Ok(vec![
            "red".into(),
            "blue".into(),
            "re".into(),
            "blue".into(),
        ])
    }

    #[test]
    fn templates_parse_count_enumerate_and_match() {
        let t = Template::parse_with("id {digits:2}-{letters:1} {{x}}", words).unwrap();
        assert_eq!(t.space(), Some(100 * 26));
        assert!((t.log2_space() - (2600f64).log2()).abs() < 1e-12);
        assert_eq!(t.nth(0), "id 00-a {x}");
        assert_eq!(t.nth(2599), "id 99-z {x}");
        assert_eq!(t.nth(27), "id 01-b {x}");
        assert!(t.matches("id 42-q {x}"));
        assert!(!t.matches("id 4-q {x}") && !t.matches("id 42-Q {x}") && !t.matches("id 42-q {x"));
        // word lists: sorted, deduplicated; a prefix word must not block the longer one
        let w = Template::parse_with("{words:f}d", words).unwrap();
        assert_eq!(w.space(), Some(3));
        assert_eq!(
            (w.nth(0), w.nth(1), w.nth(2)),
            ("blued".into(), "red".into(), "redd".into())
        );
        assert!(w.matches("redd") && w.matches("red") && !w.matches("green"));
        for bad in [
            "no slot",
            "{digits:0}",
            "{digits}",
            "{colour:3}",
            "{digits:3",
            "a } b",
        ] {
            assert!(Template::parse_with(bad, words).is_err(), "{bad}");
        }
        let all = fills(&t, 5000, 0);
        assert!(all.enumerated && all.texts.len() == 2600);
        let some = fills(&t, 100, 0);
        assert!(!some.enumerated && some.texts.len() == 100);
        assert!(some.texts.iter().all(|f| t.matches(f)));
        assert_eq!(some.texts, fills(&t, 100, 0).texts, "seeded");
    }

    #[test]
    fn p_value_rank_and_exposure_by_hand() {
        let t = Template::parse_with("{digits:1}", words).unwrap();
        let f = fills(&t, 100, 0);
        assert!(f.enumerated);
        // fills 0..9 scored -9..0 (fill "9" best); the secret "7" scores -2
        let scored: Vec<f64> = (0..10).map(|i| i as f64 - 9.0).collect();
        let e = measure(&t, &f, ("7", -2.0), &scored);
        // the secret itself is left out: 9 others, of which "8" (-1) and "9" (0) are >= -2
        assert_eq!((e.fills, e.at_least, e.rank), (9, 2, 3));
        assert!((e.p_value - 0.3).abs() < 1e-12);
        // exact: log2 10 − log2 3
        assert!((e.exposure - (10f64.log2() - 3f64.log2())).abs() < 1e-12);
        let top = measure(&t, &f, ("9", 0.0), &scored);
        assert_eq!(top.rank, 1);
        assert!((top.exposure - 10f64.log2()).abs() < 1e-12);
        let x = top.exposure_extrapolated.unwrap();
        assert!(x > 0.0 && x <= 10f64.log2());
    }

    #[test]
    fn the_normal_tail_is_continuous_where_the_series_takes_over() {
        let (a, b) = (log2_upper_tail(29.999), log2_upper_tail(30.001));
        assert!((a - b).abs() < 0.1, "{a} vs {b}");
        assert!((log2_upper_tail(0.0) + 1.0).abs() < 1e-12);
        assert!(log2_upper_tail(100.0) < -7000.0);
    }
}
