//! The remote engine: a model behind an OpenAI-compatible server (vLLM, SGLang, hosted APIs)
//! scores passages through HTTP. The server tokenises the text; its tokens, their byte spans
//! and the log-probs of every prompt position come back in one answer.
//!
//! What comes back is checked before it is used: the protocol is chosen by asking
//! ([`probe::choose`]), the alignment of log-probs with tokens is tested on a probe whose
//! answer any trained model knows ([`probe::check`]), and every answer is parsed strictly
//! (a missing position, a token not among its own entries, choices that do not match the
//! prompts are errors naming the request).
//!
//! **Exact and not.** The actual token's log-prob is exact (as exact as the server's
//! numerics); so is whether the token was the top prediction. `mu` and `sigma` of the
//! next-token distribution are not returned: they are NaN here and the scores that need
//! them are refused ([`crate::engine::Engine::full_distribution`]). `rank` is the server's
//! where it gives ranks (vLLM), else 1 at the top and, below it, one more than the number
//! of alternatives returned (a lower bound).

pub mod client;
pub mod probe;
pub mod protocol;

use super::{Engine, Scored, Seq};
use crate::error::{Error, Result};
use crate::model::{ModelIdentity, Tokenizer};
use crate::stats::TokenStat;
use client::{Client, Secret};
use protocol::{Prompt, Protocol, Token};
use serde_json::Value;
use std::time::Duration;

pub use client::is_url;

/// How to reach and drive a server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `http(s)://host[:port]/v1`.
    pub url: String,
    /// The model name to ask for (default: the one `/v1/models` lists).
    pub served_model: Option<String>,
    pub api_key: Option<Secret>,
    /// Send the key over plain http to another machine.
    pub allow_plain_http_key: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Prompts sent in one request.
    pub prompts_per_request: usize,
    /// How long one request may take.
    pub timeout: Duration,
    /// Alternatives asked for at each position (1 gives the top prediction).
    pub top: u32,
    /// The protocol to use; `None`: ask the server (prompt_logprobs first, then echo).
    pub protocol: Option<Protocol>,
    /// Tries of a request in all (the first included).
    pub attempts: u32,
}

impl RemoteOptions {
    pub fn new(url: &str) -> Self {
        RemoteOptions {
            url: url.to_string(),
            served_model: None,
            api_key: None,
            allow_plain_http_key: false,
            concurrency: 16,
            prompts_per_request: 4,
            timeout: Duration::from_secs(600),
            top: 1,
            protocol: None,
            attempts: client::Retry::default().attempts,
        }
    }
}

/// A model served over HTTP.
#[derive(Debug)]
pub struct RemoteEngine {
    client: Client,
    model: String,
    protocol: Protocol,
    identity: ModelIdentity,
    concurrency: usize,
    per_request: usize,
    top: u32,
    /// Whether the server gives token ids (then extraction windows can be sent as ids).
    ids: bool,
    /// The probe's tokens: equal for two servers that tokenise alike.
    vocab_key: String,
    /// Whether the server puts a token before the text (a BOS).
    bos: bool,
}

impl RemoteEngine {
    /// Connects: the served model, the protocol, the alignment check, the fingerprint.
    pub fn open(opts: &RemoteOptions) -> Result<RemoteEngine> {
        if opts.concurrency == 0 || opts.prompts_per_request == 0 {
            return Err(Error::Usage(
                "--concurrency and --prompts-per-request must be at least 1".into(),
            ));
        }
        let mut client = Client::new(
            &opts.url,
            opts.api_key.clone(),
            opts.allow_plain_http_key,
            opts.timeout,
        )?;
        client.retry.attempts = opts.attempts.max(1);
        let model = match &opts.served_model {
            Some(m) => m.clone(),
            None => served_model(&client)?,
        };
        let (protocol, probe) = probe::choose(&client, &model, opts.top.max(1), opts.protocol)?;
        probe::check(client.endpoint(), &probe)?;
        let ids = probe.iter().all(|t| t.id.is_some());
        let vocab_key = probe
            .iter()
            .map(|t| match (t.id, &t.text) {
                (Some(id), _) => id.to_string(),
                (None, s) => format!("{s:?}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let bos = protocol::locate(&probe, probe::PROBE).is_some_and(|(from, _)| from == 1);
        let identity = ModelIdentity {
            name: model.clone(),
            sha256: probe::fingerprint(&probe),
            compute: format!("server ({})", protocol.name()),
            device: client.endpoint().to_string(),
            revision: None,
        };
        Ok(RemoteEngine {
            client,
            model,
            protocol,
            identity,
            concurrency: opts.concurrency,
            per_request: opts.prompts_per_request,
            top: opts.top.max(1),
            ids,
            vocab_key,
            bos,
        })
    }

    /// The protocol the server speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Requests sent and retried so far.
    pub fn requests(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.client.counters.requests.load(Relaxed),
            self.client.counters.retries.load(Relaxed),
        )
    }

    /// The server's answer for each prompt: requests of up to `per_request` prompts, up to
    /// `concurrency` in flight. A request that still fails after its retries, or whose
    /// answer fails a check, is the error of each prompt it carried; the others stand.
    fn answers(&self, prompts: &[Prompt]) -> Result<Vec<Result<Vec<Token>>>> {
        let chunks: Vec<&[Prompt]> = prompts.chunks(self.per_request).collect();
        let bodies: Vec<(Value, String)> = chunks
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let first = k * self.per_request;
                (
                    protocol::request(self.protocol, &self.model, c, self.top),
                    format!(
                        "request for prompts {}-{} of a group",
                        first + 1,
                        first + c.len()
                    ),
                )
            })
            .collect();
        let answers = self
            .client
            .post_many("completions", &bodies, self.concurrency);
        let mut out = Vec::with_capacity(prompts.len());
        for ((answer, chunk), (_, what)) in answers.into_iter().zip(&chunks).zip(&bodies) {
            let parsed = answer.and_then(|a| {
                protocol::parse(self.protocol, &a, chunk)
                    .map_err(|e| self.error(format!("{what}: {e}")))
            });
            match parsed {
                Ok(tokens) => out.extend(tokens.into_iter().map(Ok)),
                Err(Error::Server { endpoint, message }) => out.extend(chunk.iter().map(|_| {
                    Err(Error::Server {
                        endpoint: endpoint.clone(),
                        message: message.clone(),
                    })
                })),
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// An error of this server.
    fn error(&self, message: String) -> Error {
        Error::Server {
            endpoint: self.client.endpoint().to_string(),
            message,
        }
    }

    /// A sequence's answer as the scorer takes it (see [`render`] for its tokens' text).
    fn scored(&self, tokens: Vec<Token>, text: Option<&str>) -> Result<Scored> {
        let (text_from, spans) = text
            .and_then(|text| protocol::locate(&tokens, text))
            .unwrap_or((usize::from(self.bos), Vec::new()));
        let ids = tokens
            .iter()
            .map(|t| {
                t.id.unwrap_or_else(|| string_id(t.text.as_deref().unwrap_or("")))
            })
            .collect();
        let rendered = render(&tokens, text, self.bos);
        let stats = tokens
            .iter()
            .skip(1)
            .enumerate()
            .map(|(k, t)| {
                let logp = t
                    .logp
                    .ok_or_else(|| self.error(format!("position {} has no log-prob", k + 1)))?;
                let top1 = t.top1.unwrap_or(f64::NAN);
                let rank = t
                    .rank
                    .unwrap_or(if logp >= top1 - 1e-6 * top1.abs().max(1.0) {
                        1
                    } else {
                        t.alternatives as u32 + 1
                    });
                Ok(TokenStat {
                    logp,
                    mu: f64::NAN,
                    sigma: f64::NAN,
                    top1,
                    rank,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Scored {
            ids,
            text_from,
            spans,
            tokens: Some(rendered),
            stats,
        })
    }
}

/// A stable stand-in id for a server that gives token strings only: equal strings, equal
/// ids (the top bit set, above any real vocabulary).
fn string_id(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h | 0x8000_0000
}

/// The one model a server lists; an error naming them when it lists several or none.
fn served_model(client: &Client) -> Result<String> {
    let v = client.get("models")?;
    let names: Vec<String> = v
        .get("data")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Server {
            endpoint: client.endpoint().to_string(),
            message: "/models lists no model; name one with --served-model".into(),
        }),
        many => Err(Error::Usage(format!(
            "{} serves {} models ({}); name one with --served-model",
            client.endpoint(),
            many.len(),
            many.join(", ")
        ))),
    }
}

/// The tokens' text as the server renders it. The first position of a prompt_logprobs answer
/// comes without text; without a BOS it is the passage's first token, whose text is the
/// passage up to where the next token starts (its offset, or what the following tokens'
/// texts leave of the passage). Anything else the server gave no text for is shown by id.
fn render(tokens: &[Token], text: Option<&str>, bos: bool) -> Vec<String> {
    let mut out: Vec<String> = tokens
        .iter()
        .map(|t| match (&t.text, t.id) {
            (Some(s), _) => s.clone(),
            (None, Some(id)) => format!("<id {id}>"),
            (None, None) => String::new(),
        })
        .collect();
    let (Some(text), Some(first), false) = (text, tokens.first(), bos) else {
        return out;
    };
    if first.text.is_some() {
        return out;
    }
    let by_offset = tokens
        .get(1)
        .and_then(|t| t.offset)
        .and_then(|o| text.char_indices().nth(o).map(|(b, _)| &text[..b]));
    let by_rest = || {
        let rest: Option<String> = tokens[1..].iter().map(|t| t.text.as_deref()).collect();
        text.strip_suffix(rest?.as_str())
    };
    if let Some(head) = by_offset.or_else(by_rest).filter(|h| !h.is_empty()) {
        out[0] = head.to_string();
    }
    out
}

impl Engine for RemoteEngine {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        None
    }

    fn score(&self, seqs: Vec<Seq>) -> Result<Vec<Result<Scored>>> {
        // a request carries prompts of one kind: texts and ids go in separate requests
        let mut out: Vec<Option<Result<Scored>>> = (0..seqs.len()).map(|_| None).collect();
        for want_text in [true, false] {
            let picked: Vec<usize> = (0..seqs.len())
                .filter(|&i| matches!(seqs[i], Seq::Text(_)) == want_text)
                .collect();
            if picked.is_empty() {
                continue;
            }
            if !want_text && !self.ids {
                return Err(Error::Internal(
                    "token ids sent to a server that gives no ids".into(),
                ));
            }
            let prompts: Vec<Prompt> = picked
                .iter()
                .map(|&i| match &seqs[i] {
                    Seq::Text(t) => Prompt::Text(t),
                    Seq::Tokens { ids, .. } => Prompt::Ids(ids),
                })
                .collect();
            let answers = self.answers(&prompts)?;
            for ((&i, tokens), prompt) in picked.iter().zip(answers).zip(&prompts) {
                out[i] = Some(tokens.and_then(|tokens| match prompt {
                    Prompt::Ids(ids) => {
                        let same = tokens.len() == ids.len()
                            && tokens.iter().zip(ids.iter()).all(|(t, &w)| t.id == Some(w));
                        if same {
                            self.scored(tokens, None)
                        } else {
                            Err(self.error(
                                "the tokens of an ids prompt came back different from those sent"
                                    .into(),
                            ))
                        }
                    }
                    Prompt::Text(t) => self.scored(tokens, Some(t)),
                }));
            }
        }
        Ok(out
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(Error::Internal("a sequence was not sent".into()))))
            .collect())
    }

    fn full_distribution(&self) -> bool {
        false
    }

    fn bos_policy(&self) -> String {
        if self.bos {
            "the server puts a BOS first; every text token is scored (the BOS itself is not)".into()
        } else {
            "the server puts no BOS first: the first text token is context only and is not scored"
                .into()
        }
    }

    fn vocab_key(&self) -> String {
        self.vocab_key.clone()
    }

    fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|i| format!("<id {i}>")).collect()
    }

    fn group_full(&self, n: usize, _tokens: usize) -> bool {
        n >= (self.concurrency * self.per_request * 2).max(8)
    }

    fn scores_ids(&self) -> bool {
        self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: u32, text: Option<&str>, offset: Option<usize>) -> Token {
        Token {
            id: Some(id),
            text: text.map(String::from),
            logp: None,
            top1: None,
            rank: None,
            alternatives: 0,
            offset,
        }
    }

    #[test]
    fn the_first_token_is_rendered_from_the_passage() {
        let text = "Héllo world";
        // prompt_logprobs: no text at the first position, the rest with text
        let t = [
            token(8184, None, None),
            token(2, Some("llo"), None),
            token(3, Some(" world"), None),
        ];
        assert_eq!(render(&t, Some(text), false), ["Hé", "llo", " world"]);
        // by the next token's offset (in characters) when the server gives one
        let t = [token(8184, None, None), token(2, Some("??"), Some(2))];
        assert_eq!(render(&t, Some(text), false)[0], "Hé");
        // a BOS first is not the passage's: shown by its id
        let t = [token(1, None, None), token(2, Some("Héllo world"), None)];
        assert_eq!(render(&t, Some(text), true)[0], "<id 1>");
        // the texts do not end the passage: by its id, never a guess
        let t = [token(8184, None, None), token(2, Some("other"), None)];
        assert_eq!(render(&t, Some(text), false)[0], "<id 8184>");
        assert_eq!(render(&t, None, false)[0], "<id 8184>");
    }
}
