//! Verbatim extraction probability (Cooper et al. 2025, "Extracting memorized pieces of
//! (copyrighted) books from open-weight language models"): for windows of a passage, the
//! probability that the model continues a `prefix`-token prefix with exactly the next
//! `suffix` tokens, `Π p(t_i | prefix, t_<i)` under teacher forcing — the chance that
//! greedy-free sampling at temperature 1 reproduces the text verbatim. Per passage the best
//! window and its probability are reported: evidence that needs no statistics to read.
//!
//! Each window is its own sequence (the model's BOS, if it adds one, then `prefix + suffix`
//! tokens of the text), so the suffix is conditioned on exactly its prefix, never on the
//! rest of the passage; windows start every `stride` tokens.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Window lengths and stride (`--extraction PREFIX:SUFFIX[:STRIDE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extraction {
    pub prefix: usize,
    pub suffix: usize,
    pub stride: usize,
}

/// The default stride: a window every 10 tokens (cost: about `(prefix + suffix) / stride`
/// forward tokens per text token, see the cost table in docs/scores.md).
pub const DEFAULT_STRIDE: usize = 10;

impl Extraction {
    /// `PREFIX:SUFFIX` or `PREFIX:SUFFIX:STRIDE`, each at least 1.
    pub fn parse(s: &str) -> Result<Extraction> {
        let bad = || {
            Error::Usage(format!(
                "--extraction {s}: expected PREFIX:SUFFIX[:STRIDE] in tokens, e.g. 50:50 or 50:50:10"
            ))
        };
        let parts: Vec<usize> = s
            .split(':')
            .map(|p| p.trim().parse::<usize>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let (prefix, suffix, stride) = match parts[..] {
            [p, s] => (p, s, DEFAULT_STRIDE),
            [p, s, t] => (p, s, t),
            _ => return Err(bad()),
        };
        if prefix == 0 || suffix == 0 || stride == 0 {
            return Err(bad());
        }
        Ok(Extraction {
            prefix,
            suffix,
            stride,
        })
    }

    /// `extraction_P_S`: the log-probability (nats) of the best window's suffix.
    pub fn score_name(&self) -> String {
        format!("extraction_{}_{}", self.prefix, self.suffix)
    }

    pub fn window_len(&self) -> usize {
        self.prefix + self.suffix
    }

    /// First token (of the text's tokens, BOS excluded) of each window over `n` tokens:
    /// `0, stride, …`, plus a last window flush with the end so the final tokens are
    /// covered. Empty when the text is shorter than one window.
    pub fn starts(&self, n: usize) -> Vec<usize> {
        let w = self.window_len();
        if n < w {
            return Vec::new();
        }
        let last = n - w;
        let mut s: Vec<usize> = (0..=last).step_by(self.stride).collect();
        if s.last() != Some(&last) {
            s.push(last);
        }
        s
    }
}

/// The most extractable window of a passage.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionBest {
    /// Its first token among the text's tokens (BOS excluded).
    pub start: usize,
    /// `Σ log p` over its suffix tokens (nats); the probability is `exp` of it.
    pub log_prob: f64,
    /// Windows tried.
    pub windows: usize,
}

/// The best window as a passage record shows it: the prefix and suffix text (cut from the
/// passage at token boundaries), their byte span in the passage, and the probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionEvidence {
    /// `[start, end)` of prefix + suffix in the passage's text (bytes).
    pub span: [usize; 2],
    pub prefix: String,
    pub suffix: String,
    /// `Σ log p` of the suffix given the prefix (nats).
    pub log_prob: f64,
    /// `exp(log_prob)`: the chance of sampling the suffix verbatim at temperature 1.
    pub probability: f64,
    pub windows: usize,
}

impl ExtractionBest {
    /// The evidence in the passage's own text, given the byte span of each text token.
    pub fn evidence(
        &self,
        e: &Extraction,
        text: &str,
        spans: &[(usize, usize)],
    ) -> ExtractionEvidence {
        let (a, mid, b) = (
            spans[self.start].0,
            spans[self.start + e.prefix].0,
            spans[self.start + e.window_len() - 1].1,
        );
        let cut = |x: usize, y: usize| String::from_utf8_lossy(&text.as_bytes()[x..y]).into_owned();
        ExtractionEvidence {
            span: [a, b],
            prefix: cut(a, mid),
            suffix: cut(mid, b),
            log_prob: self.log_prob,
            probability: self.log_prob.exp(),
            windows: self.windows,
        }
    }
}

/// The best of the windows' suffix log-probabilities (`None` for no window).
pub fn best(starts: &[usize], suffix_log_probs: &[f64]) -> Option<ExtractionBest> {
    let (i, &lp) = suffix_log_probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    Some(ExtractionBest {
        start: starts[i],
        log_prob: lp,
        windows: starts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lengths_and_stride() {
        let e = Extraction::parse("50:50").unwrap();
        assert_eq!((e.prefix, e.suffix, e.stride), (50, 50, DEFAULT_STRIDE));
        assert_eq!(Extraction::parse("8:4:2").unwrap().stride, 2);
        for bad in ["50", "50:0", "a:b", "1:2:3:4", "0:5"] {
            assert!(Extraction::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(e.score_name(), "extraction_50_50");
    }

    #[test]
    fn windows_cover_the_text_and_end_flush() {
        let e = Extraction::parse("3:2:4").unwrap();
        assert_eq!(e.starts(4), Vec::<usize>::new());
        assert_eq!(e.starts(5), [0]);
        assert_eq!(e.starts(9), [0, 4]);
        assert_eq!(e.starts(11), [0, 4, 6]);
        let b = best(&[0, 4, 6], &[-3.0, -0.5, -9.0]).unwrap();
        assert_eq!((b.start, b.log_prob, b.windows), (4, -0.5, 3));
        assert!(best(&[], &[]).is_none());
    }
}
