//! What is asked of a server once, before anything is scored: which protocol it speaks,
//! whether its log-probs belong to the tokens they are reported for, and a fingerprint of
//! the model behind it.
//!
//! **Alignment.** A server that pairs token `i` with the distribution predicting token
//! `i+1` (llama-cpp-python 0.3.36's server does) returns numbers of the right shape and
//! wrong meaning. The probe is a counting sequence: after `1, 2, … 12,` any trained model
//! predicts the next number and comma almost surely, so the log-probs of the last numbers
//! are near 0; shifted by one position they are the probabilities of a number where a comma
//! comes (and the reverse), many nats below. Measured over the checked positions (the last
//! 39 tokens): correctly aligned, SmolLM2-135M Q4_1 −0.03 and Gemma 3 270M −0.02 (miascan's
//! engine); shifted, SmolLM2 through llama-cpp-python's server −13.4. The bound is −1.5.
//!
//! **Consistency.** Every log-prob ≤ 0, none above the position's top alternative, the
//! alternatives' probabilities summing to at most 1, rank 1 exactly where the token is the
//! top, and the tokens spelling the probe text.

use super::client::Client;
use super::protocol::{self, Prompt, Protocol, Token};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The alignment probe: a sequence any trained model continues with near certainty.
pub const PROBE: &str =
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24";
/// The tokens of the probe from this byte on are checked (the numbers 15 … 24 and commas).
const CHECKED_FROM: usize = 46;
/// The mean log-prob over the checked tokens must be above this.
pub const ALIGNED_MEAN: f64 = -1.5;

/// Asks with each protocol in turn; the first whose answer holds prompt log-probs is the
/// server's. Returns it with the probe's answer.
pub fn choose(
    client: &Client,
    model: &str,
    top: u32,
    only: Option<Protocol>,
) -> Result<(Protocol, Vec<Token>)> {
    let mut why = Vec::new();
    let all = [Protocol::PromptLogprobs, Protocol::Echo];
    for protocol in all.into_iter().filter(|p| only.is_none_or(|o| o == *p)) {
        let prompts = [Prompt::Text(PROBE)];
        let body = protocol::request(protocol, model, &prompts, top);
        let what = format!("the {} probe", protocol.name());
        match client.post("completions", &body, &what) {
            Ok(answer) => match protocol::parse(protocol, &answer, &prompts) {
                Ok(mut t) if t[0].len() > 1 => return Ok((protocol, t.remove(0))),
                Ok(_) => why.push(format!("{}: a single position came back", protocol.name())),
                Err(e) => why.push(format!("{}: {e}", protocol.name())),
            },
            // a protocol the server refuses (400, 422) is a protocol it does not speak;
            // an unreachable server is the answer for both
            Err(Error::Server { message, .. }) if message.contains("HTTP 4") => {
                why.push(format!("{}: {message}", protocol.name()))
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Server {
        endpoint: client.endpoint().to_string(),
        message: format!(
            "returns no log-probabilities of prompt tokens, which scoring needs ({})",
            why.join("; ")
        ),
    })
}

/// Checks that the server's log-probs belong to the tokens they are given for (see the
/// module docs); an error names what failed and the numbers.
pub fn check(endpoint: &str, tokens: &[Token]) -> Result<()> {
    let fail = |message: String| Error::Server {
        endpoint: endpoint.to_string(),
        message: format!("refused: {message}"),
    };
    for (i, t) in tokens.iter().enumerate().skip(1) {
        let lp = t.logp.unwrap_or(f64::NAN);
        if lp.is_nan() || lp > 1e-4 {
            return Err(fail(format!(
                "probe position {i}: log-prob {lp} is not a log-probability"
            )));
        }
        if let Some(top) = t.top1 {
            if lp > top + 1e-4 {
                return Err(fail(format!(
                    "probe position {i}: the token's log-prob {lp} is above the top alternative's {top}"
                )));
            }
            if let Some(r) = t.rank {
                let at_top = lp >= top - 1e-4 * top.abs().max(1.0);
                if (r == 1) != at_top {
                    return Err(fail(format!(
                        "probe position {i}: rank {r} but log-prob {lp} against the top {top}"
                    )));
                }
            }
        }
    }
    let (text_from, spans) = protocol::locate(tokens, PROBE).ok_or_else(|| {
        fail("the probe's tokens do not spell the probe text (token strings missing or another text scored)".into())
    })?;
    let checked: Vec<f64> = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 >= CHECKED_FROM)
        .filter_map(|(k, _)| tokens[text_from + k].logp)
        .collect();
    if checked.len() < 5 {
        return Err(fail(format!(
            "the probe came back with {} tokens past its checked start",
            checked.len()
        )));
    }
    let mean = checked.iter().sum::<f64>() / checked.len() as f64;
    if mean < ALIGNED_MEAN {
        return Err(fail(format!(
            "its prompt log-probs are not aligned with their tokens: on the counting probe \"{PROBE}\" the last {} tokens average {mean:.2} nats, where any trained model is near 0 (bound {ALIGNED_MEAN}); a server that scores token i with the distribution predicting token i+1 looks like this (llama-cpp-python's server does)",
            checked.len()
        )));
    }
    Ok(())
}

/// A fingerprint of the model behind a server: the first 16 hex digits of the sha256 of the
/// probe's tokens and their log-probs rounded to 0.1 nat. Another model gives other numbers;
/// the same weights served again give the same ones.
pub fn fingerprint(tokens: &[Token]) -> String {
    let mut h = Sha256::new();
    for t in tokens {
        match (t.id, &t.text) {
            (Some(id), _) => h.update(format!("{id}|")),
            (None, Some(s)) => h.update(format!("{s:?}|")),
            (None, None) => h.update("?|"),
        }
        match t.logp {
            Some(lp) if lp.is_finite() => h.update(format!("{:.1};", lp)),
            _ => h.update("-;"),
        }
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe cut at commas and spaces as a BPE would, with the given log-probs.
    fn probe_tokens(logp: impl Fn(usize) -> f64) -> Vec<Token> {
        let mut out = Vec::new();
        let mut rest = PROBE;
        while !rest.is_empty() {
            let n = if rest.starts_with(',') {
                1
            } else {
                rest[1..].find(',').map_or(rest.len(), |k| k + 1)
            };
            let i = out.len();
            out.push(Token {
                id: Some(i as u32),
                text: Some(rest[..n].to_string()),
                logp: (i > 0).then(|| logp(i)),
                top1: (i > 0).then(|| logp(i).max(-0.01)),
                rank: None,
                alternatives: 1,
                offset: None,
            });
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn an_aligned_answer_passes_and_a_shifted_one_is_refused_naming_why() {
        assert!(check("http://x/v1", &probe_tokens(|_| -0.02)).is_ok());
        let shifted = probe_tokens(|i| if i % 2 == 0 { -9.0 } else { -3.0 });
        let e = check("http://x/v1", &shifted).unwrap_err().to_string();
        assert!(
            e.contains("not aligned") && e.contains("http://x/v1"),
            "{e}"
        );
        let mut over = probe_tokens(|_| -0.02);
        over[3].logp = Some(0.5);
        assert!(check("h", &over)
            .unwrap_err()
            .to_string()
            .contains("not a log-probability"));
        let mut wrong_text = probe_tokens(|_| -0.02);
        wrong_text[5].text = Some("x".into());
        assert!(check("h", &wrong_text)
            .unwrap_err()
            .to_string()
            .contains("do not spell"));
    }

    #[test]
    fn fingerprints_follow_the_numbers_not_their_noise() {
        let a = fingerprint(&probe_tokens(|_| -0.02));
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint(&probe_tokens(|_| -0.0201)));
        assert_ne!(
            a,
            fingerprint(&probe_tokens(|i| if i == 9 { -0.4 } else { -0.02 }))
        );
    }
}
