//! The two ways an OpenAI-compatible server returns the log-probabilities of prompt tokens,
//! as request bodies and as parsers of the answers. Pure functions of JSON: the HTTP side is
//! in `client`, the checks of what comes back in `probe`.
//!
//! - [`Protocol::PromptLogprobs`] (vLLM's extension, also SGLang's): `prompt_logprobs: K`
//!   with `return_token_ids`; each prompt position comes back as a map from token id to
//!   `{logprob, rank, decoded_token}` holding the actual token and the top K, with the
//!   prompt's ids in `prompt_token_ids`. Ranks are over the whole vocabulary.
//! - [`Protocol::Echo`] (the OpenAI completions convention lm-evaluation-harness uses):
//!   `echo: true, logprobs: K`; `logprobs` holds `tokens`, `token_logprobs`, `top_logprobs`
//!   and `text_offset`, prompt and generated tokens together. vLLM renders tokens as
//!   `token_id:N` when asked (`return_tokens_as_token_ids`), which gives the ids.
//!
//! Both ask for one generated token (`max_tokens: 1`; some servers read 0 as "no limit")
//! and drop it: only prompt positions are kept.

use serde_json::{json, Value};

/// How prompt log-probs are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    PromptLogprobs,
    Echo,
}

impl Protocol {
    /// By name, as `--server-protocol` takes it.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "prompt_logprobs" => Some(Protocol::PromptLogprobs),
            "echo" => Some(Protocol::Echo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::PromptLogprobs => "prompt_logprobs",
            Protocol::Echo => "echo",
        }
    }
}

/// A prompt: text for the server to tokenise, or ids it reads as they are.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    Text(&'a str),
    Ids(&'a [u32]),
}

/// One prompt position as the server answered it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Token {
    pub id: Option<u32>,
    /// The token's text as the server renders it (a piece of a multi-byte character may
    /// come as U+FFFD or empty).
    pub text: Option<String>,
    /// `log p(token | tokens before)`; `None` at the first position.
    pub logp: Option<f64>,
    /// The largest log-prob among the alternatives returned (and the token's own).
    pub top1: Option<f64>,
    /// The token's rank over the vocabulary, when the server gives it.
    pub rank: Option<u32>,
    /// How many alternatives came back for this position.
    pub alternatives: usize,
    /// Where the token starts in the echoed text, in characters (`text_offset`).
    pub offset: Option<usize>,
}

/// The request body for `prompts` (all text or all ids: a server takes one kind a request).
pub fn request(protocol: Protocol, model: &str, prompts: &[Prompt], top: u32) -> Value {
    let prompt = Value::Array(
        prompts
            .iter()
            .map(|p| match p {
                Prompt::Text(t) => json!(t),
                Prompt::Ids(ids) => json!(ids),
            })
            .collect(),
    );
    let mut body = json!({
        "model": model,
        "prompt": prompt,
        "max_tokens": 1,
        "temperature": 0,
    });
    match protocol {
        Protocol::PromptLogprobs => {
            body["prompt_logprobs"] = json!(top);
            body["return_token_ids"] = json!(true);
        }
        Protocol::Echo => {
            body["echo"] = json!(true);
            body["logprobs"] = json!(top);
            body["return_tokens_as_token_ids"] = json!(true);
        }
    }
    body
}

/// The answer for each prompt, in prompt order: its prompt positions. An `Err` names what
/// is missing or malformed (the caller adds which request).
pub fn parse(
    protocol: Protocol,
    body: &Value,
    prompts: &[Prompt],
) -> Result<Vec<Vec<Token>>, String> {
    let choices = body
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("the answer has no `choices` list")?;
    let mut out: Vec<Option<Vec<Token>>> = vec![None; prompts.len()];
    for (k, c) in choices.iter().enumerate() {
        let index = c
            .get("index")
            .and_then(Value::as_u64)
            .map_or(k, |i| i as usize);
        let slot = out
            .get_mut(index)
            .ok_or_else(|| format!("choice index {index} but {} prompt(s) sent", prompts.len()))?;
        if slot.is_some() {
            return Err(format!("choice index {index} answered twice"));
        }
        let tokens = match protocol {
            Protocol::PromptLogprobs => parse_prompt_logprobs(c),
            Protocol::Echo => parse_echo(c, prompts[index]),
        }
        .map_err(|e| format!("choice {index}: {e}"))?;
        *slot = Some(tokens);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| format!("no choice answers prompt {i}")))
        .collect()
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{what} is not a number")),
        // some servers write -inf as a string or a huge negative number
        Value::String(s) if s == "-inf" || s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(format!("{what} is not a number: {v}")),
    }
}

fn parse_prompt_logprobs(c: &Value) -> Result<Vec<Token>, String> {
    let positions = c
        .get("prompt_logprobs")
        .and_then(Value::as_array)
        .ok_or("no `prompt_logprobs` in the answer")?;
    let ids = c
        .get("prompt_token_ids")
        .and_then(Value::as_array)
        .ok_or("`prompt_logprobs` without `prompt_token_ids`: which entry is the prompt's token cannot be told (a vLLM older than `return_token_ids`)")?;
    if ids.len() != positions.len() {
        return Err(format!(
            "{} prompt token ids but {} prompt_logprobs positions",
            ids.len(),
            positions.len()
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, (id, pos)) in ids.iter().zip(positions).enumerate() {
        let id = id
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| format!("prompt_token_ids[{i}] is not a token id"))?;
        let mut t = Token {
            id: Some(id),
            ..Token::default()
        };
        match pos {
            Value::Null if i == 0 => {}
            Value::Null => return Err(format!("position {i} has no log-probs")),
            Value::Object(m) => {
                let own = m.get(&id.to_string()).ok_or_else(|| {
                    format!(
                        "position {i}: the prompt's token {id} is not among the returned entries"
                    )
                })?;
                t.logp = Some(number(&own["logprob"], &format!("position {i}'s logprob"))?);
                t.rank = own.get("rank").and_then(Value::as_u64).map(|r| r as u32);
                t.text = own
                    .get("decoded_token")
                    .and_then(Value::as_str)
                    .map(String::from);
                let mut top = f64::NEG_INFINITY;
                for (key, e) in m {
                    let lp = number(&e["logprob"], &format!("position {i}, entry {key}"))?;
                    top = top.max(lp);
                }
                t.top1 = Some(top);
                t.alternatives = m.len();
            }
            _ => return Err(format!("position {i} is neither null nor an object")),
        }
        out.push(t);
    }
    Ok(out)
}

fn parse_echo(c: &Value, prompt: Prompt) -> Result<Vec<Token>, String> {
    let lp = c
        .get("logprobs")
        .filter(|v| !v.is_null())
        .ok_or("no `logprobs` in the answer (echo with logprobs not supported?)")?;
    let tokens = lp
        .get("tokens")
        .and_then(Value::as_array)
        .ok_or("`logprobs` has no `tokens`")?;
    let values = lp
        .get("token_logprobs")
        .and_then(Value::as_array)
        .ok_or("`logprobs` has no `token_logprobs`")?;
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    let offsets = lp.get("text_offset").and_then(Value::as_array);
    if offsets.is_some_and(|o| o.len() != tokens.len()) {
        return Err("`text_offset` and `tokens` differ in length".into());
    }
    if values.len() != tokens.len() || tops.is_some_and(|t| t.len() != tokens.len()) {
        return Err("`tokens`, `token_logprobs` and `top_logprobs` differ in length".into());
    }
    let mut out = Vec::with_capacity(tokens.len());
    for (i, tok) in tokens.iter().enumerate() {
        let s = tok
            .as_str()
            .ok_or_else(|| format!("tokens[{i}] is not a string"))?;
        let (id, text) = match s.strip_prefix("token_id:").map(str::parse::<u32>) {
            Some(Ok(id)) => (Some(id), None),
            _ => (None, Some(s.to_string())),
        };
        let logp = match &values[i] {
            Value::Null if i == 0 => None,
            Value::Null => return Err(format!("position {i} has no log-prob")),
            v => Some(number(v, &format!("token_logprobs[{i}]"))?),
        };
        let mut t = Token {
            id,
            text,
            logp,
            offset: offsets.and_then(|o| o[i].as_u64()).map(|o| o as usize),
            ..Token::default()
        };
        if let (Some(Value::Object(m)), Some(own)) = (tops.map(|t| &t[i]), logp) {
            let mut top = own;
            for (key, v) in m {
                top = top.max(number(v, &format!("top_logprobs[{i}][{key:?}]"))?);
            }
            t.top1 = Some(top);
            t.alternatives = m.len();
        }
        out.push(t);
    }
    // drop the generated token(s): ids prompts by count, text prompts where the text ends
    match prompt {
        Prompt::Ids(ids) => {
            if out.len() < ids.len() {
                return Err(format!(
                    "{} tokens echoed for a prompt of {}",
                    out.len(),
                    ids.len()
                ));
            }
            out.truncate(ids.len());
        }
        Prompt::Text(text) => {
            let strings: Option<Vec<&str>> = out.iter().map(|t| t.text.as_deref()).collect();
            let by_strings = strings.and_then(|s| align(&s, text).prompt_len);
            // ids only: the prompt's tokens start inside the text, the generated one at
            // its end
            let chars = text.chars().count();
            let by_offsets = || {
                let n = out
                    .iter()
                    .skip(1)
                    .take_while(|t| t.offset.is_some_and(|o| o < chars))
                    .count();
                out.iter().all(|t| t.offset.is_some()).then_some(n + 1)
            };
            match by_strings.or_else(by_offsets) {
                Some(n) => out.truncate(n),
                None => return Err("the echoed tokens neither spell the prompt nor give offsets in it: where the prompt ends cannot be told".into()),
            }
        }
    }
    Ok(out)
}

/// Where a text prompt's tokens lie in its text: how many leading tokens are not text (a
/// BOS) and the byte span of each text token; `None` when the answer does not tell (the
/// strings do not spell the text and no offsets came).
pub fn locate(tokens: &[Token], text: &str) -> Option<(usize, Vec<(usize, usize)>)> {
    let strings: Vec<Option<&str>> = tokens.iter().map(|t| t.text.as_deref()).collect();
    if strings.iter().all(Option::is_some) {
        let s: Vec<&str> = strings.iter().map(|s| s.unwrap_or("")).collect();
        let a = align(&s, text);
        if a.prompt_len == Some(tokens.len()) {
            return Some((a.text_from, a.spans));
        }
    } else if tokens.len() > 1 && strings[1..].iter().all(Option::is_some) {
        // prompt_logprobs: no string at the first position, a BOS or the text's first token
        let s: Vec<&str> = strings[1..].iter().map(|s| s.unwrap_or("")).collect();
        let a = align(&s, text);
        if a.prompt_len == Some(s.len()) && a.text_from == 0 {
            return Some((1, a.spans));
        }
        let k = text.find(s[0]).filter(|&k| k > 0)?;
        let a = align(&s, &text[k..]);
        if a.prompt_len == Some(s.len()) && a.text_from == 0 {
            let mut out = vec![(0, k)];
            out.extend(a.spans.iter().map(|&(x, y)| (x + k, y + k)));
            return Some((0, out));
        }
    }
    if tokens.iter().all(|t| t.offset.is_some()) {
        return from_offsets(tokens, text);
    }
    None
}

/// Spans from `text_offset` (characters): token i covers up to where token i+1 starts, the
/// last one to the end; a first token of no width is a BOS.
fn from_offsets(tokens: &[Token], text: &str) -> Option<(usize, Vec<(usize, usize)>)> {
    let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    bytes.push(text.len());
    let at = |t: &Token| t.offset.and_then(|o| bytes.get(o).copied());
    let starts: Vec<usize> = tokens.iter().map(at).collect::<Option<_>>()?;
    if starts.windows(2).any(|w| w[0] > w[1]) || starts.first() != Some(&0) {
        return None;
    }
    let text_from = usize::from(starts.len() > 1 && starts[1] == 0);
    let spans: Vec<(usize, usize)> = (text_from..starts.len())
        .map(|i| (starts[i], starts.get(i + 1).copied().unwrap_or(text.len())))
        .collect();
    Some((text_from, spans))
}

/// Where each token's text lies in the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Leading tokens that are not text (a BOS).
    pub text_from: usize,
    /// The byte span of each text token; a multi-byte character split over several
    /// tokens gives each of them the character's span.
    pub spans: Vec<(usize, usize)>,
    /// How many tokens spell the whole text (`None`: they do not).
    pub prompt_len: Option<usize>,
}

/// Aligns token strings with the text they came from, greedily: a token whose string comes
/// next in the text takes those bytes; tokens rendered as U+FFFD or empty (pieces of one
/// multi-byte character) share the bytes up to the next token that matches. A first token
/// that is not in the text is context (a BOS).
pub fn align(tokens: &[&str], text: &str) -> Alignment {
    let mut at = 0usize;
    let mut spans = Vec::with_capacity(tokens.len());
    let mut pending: Vec<usize> = Vec::new();
    let mut text_from = 0;
    let mut prompt_len = None;
    for (i, s) in tokens.iter().enumerate() {
        if at == text.len() && pending.is_empty() && i > text_from {
            prompt_len = Some(i);
            break;
        }
        // a first token that is empty or not the text's start is a BOS (servers render it
        // as "" or as its name, "<s>")
        if i == 0 && (s.is_empty() || !text.starts_with(s)) && !s.contains('\u{FFFD}') {
            text_from = 1;
            continue;
        }
        if !s.is_empty() && !s.contains('\u{FFFD}') && text[at..].starts_with(s) {
            close(&mut spans, &mut pending, at, at);
            spans.push((at, at + s.len()));
            at += s.len();
        } else if s.is_empty() || s.contains('\u{FFFD}') {
            pending.push(i);
            spans.push((at, at));
        } else if let Some(k) = (!pending.is_empty()).then(|| text[at..].find(s)).flatten() {
            // the pending pieces were the bytes before this token
            let end = at + k;
            close(&mut spans, &mut pending, at, end);
            spans.push((end, end + s.len()));
            at = end + s.len();
        } else {
            return Alignment {
                text_from,
                spans: Vec::new(),
                prompt_len: None,
            };
        }
    }
    if !pending.is_empty() {
        let end = text.len();
        let start = spans[spans.len() - pending.len()].0;
        close(&mut spans, &mut pending, start, end);
        at = end;
    }
    if prompt_len.is_none() && at == text.len() {
        prompt_len = Some(spans.len() + text_from);
    }
    if prompt_len.is_none() {
        spans.clear();
    }
    Alignment {
        text_from,
        spans,
        prompt_len,
    }
}

/// Gives the pending pieces the span `start..end` (they end where the next token begins).
fn close(spans: &mut [(usize, usize)], pending: &mut Vec<usize>, start: usize, end: usize) {
    if pending.is_empty() {
        return;
    }
    let n = pending.len();
    let first = spans.len() - n;
    let start = spans[first].0.min(start);
    for s in &mut spans[first..] {
        *s = (start, end);
    }
    pending.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_finds_spans_a_bos_and_the_end_of_the_prompt() {
        let a = align(&["<s>", "The", " cat", "."], "The cat.");
        assert_eq!(a.text_from, 1);
        assert_eq!(align(&["", "The", " cat", "."], "The cat.").text_from, 1);
        assert_eq!(a.spans, [(0, 3), (3, 7), (7, 8)]);
        assert_eq!(a.prompt_len, Some(4));
        // a generated token after the prompt is not the prompt's
        let a = align(&["The", " cat", "\n"], "The cat");
        assert_eq!(a.prompt_len, Some(2));
        assert_eq!(a.spans, [(0, 3), (3, 7)]);
        // a character split over two tokens: both get its bytes
        let a = align(&["a", "\u{FFFD}", "\u{FFFD}", "b"], "a\u{1F600}b");
        assert_eq!(a.spans, [(0, 1), (1, 5), (1, 5), (5, 6)]);
        assert_eq!(a.prompt_len, Some(4));
        let a = align(&["a", "\u{FFFD}", "\u{FFFD}"], "a\u{1F600}");
        assert_eq!(a.spans, [(0, 1), (1, 5), (1, 5)]);
        // tokens that do not spell the text: no spans
        let a = align(&["The", " dog"], "The cat");
        assert!(a.spans.is_empty() && a.prompt_len.is_none());
    }

    #[test]
    fn spans_come_from_strings_or_from_offsets() {
        let tok = |text: Option<&str>, offset: Option<usize>| Token {
            text: text.map(String::from),
            offset,
            ..Token::default()
        };
        // echo with strings
        let t = [tok(Some("The"), None), tok(Some(" caf\u{e9}"), None)];
        assert_eq!(locate(&t, "The caf\u{e9}"), Some((0, vec![(0, 3), (3, 9)])));
        // prompt_logprobs: no string at position 0, with and without a BOS
        let t = [
            tok(None, None),
            tok(Some("The"), None),
            tok(Some(" cat"), None),
        ];
        assert_eq!(locate(&t, "The cat"), Some((1, vec![(0, 3), (3, 7)])));
        let t = [tok(None, None), tok(Some(" cat"), None)];
        assert_eq!(locate(&t, "The cat"), Some((0, vec![(0, 3), (3, 7)])));
        // ids only: character offsets, a BOS of no width
        let t = [
            tok(None, Some(0)),
            tok(None, Some(0)),
            tok(None, Some(3)),
            tok(None, Some(5)),
        ];
        assert_eq!(
            locate(&t, "caf\u{e9} x"),
            Some((1, vec![(0, 3), (3, 6), (6, 7)]))
        );
        let t = [tok(None, Some(0)), tok(None, Some(9))];
        assert_eq!(locate(&t, "short"), None);
    }

    #[test]
    fn prompt_logprobs_answers_give_ids_ranks_and_the_top() {
        let body = json!({"choices": [{"index": 0, "text": "x",
            "prompt_token_ids": [1, 7, 9],
            "prompt_logprobs": [null,
                {"7": {"logprob": -2.5, "rank": 3, "decoded_token": "The"},
                 "4": {"logprob": -0.5, "rank": 1, "decoded_token": "A"}},
                {"9": {"logprob": -0.1, "rank": 1, "decoded_token": " cat"}}]}]});
        let t = parse(Protocol::PromptLogprobs, &body, &[Prompt::Text("The cat")]).unwrap();
        let t = &t[0];
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[1].id, t[1].logp, t[1].rank, t[1].top1),
            (Some(7), Some(-2.5), Some(3), Some(-0.5))
        );
        assert_eq!(t[2].top1, Some(-0.1));
        let missing = json!({"choices": [{"index": 0, "prompt_logprobs": [null, {"8": {"logprob": -1.0}}], "prompt_token_ids": [1, 7]}]});
        let e = parse(Protocol::PromptLogprobs, &missing, &[Prompt::Text("x")]).unwrap_err();
        assert!(e.contains("token 7 is not among"), "{e}");
        let no_ids = json!({"choices": [{"index": 0, "prompt_logprobs": [null]}]});
        assert!(
            parse(Protocol::PromptLogprobs, &no_ids, &[Prompt::Text("x")])
                .unwrap_err()
                .contains("prompt_token_ids")
        );
    }

    #[test]
    fn echo_answers_drop_the_generated_token_and_read_token_id_strings() {
        let body = json!({"choices": [{"index": 0, "text": "The cat sat", "logprobs": {
            "tokens": ["The", " cat", " sat"],
            "token_logprobs": [null, -3.0, -1.0],
            "top_logprobs": [null, {" cat": -3.0, " dog": -1.5}, {" sat": -1.0}],
            "text_offset": [0, 3, 7]}}]});
        let t = parse(Protocol::Echo, &body, &[Prompt::Text("The cat")]).unwrap();
        assert_eq!(t[0].len(), 2);
        assert_eq!((t[0][1].logp, t[0][1].top1), (Some(-3.0), Some(-1.5)));
        let ids = json!({"choices": [{"index": 0, "logprobs": {
            "tokens": ["token_id:5", "token_id:6", "token_id:2"],
            "token_logprobs": [null, -1.0, -2.0], "top_logprobs": [null, null, null], "text_offset": [0, 1, 2]}}]});
        let t = parse(Protocol::Echo, &ids, &[Prompt::Ids(&[5, 6])]).unwrap();
        assert_eq!(
            t[0].iter().map(|t| t.id).collect::<Vec<_>>(),
            [Some(5), Some(6)]
        );
        // choices come back in any order and are put back in prompt order
        let two = json!({"choices": [
            {"index": 1, "logprobs": {"tokens": ["b"], "token_logprobs": [null]}},
            {"index": 0, "logprobs": {"tokens": ["a"], "token_logprobs": [null]}}]});
        let t = parse(
            Protocol::Echo,
            &two,
            &[Prompt::Text("a"), Prompt::Text("b")],
        )
        .unwrap();
        assert_eq!(t[0][0].text.as_deref(), Some("a"));
        assert_eq!(t[1][0].text.as_deref(), Some("b"));
        let none = json!({"choices": [{"index": 0, "text": "x"}]});
        assert!(parse(Protocol::Echo, &none, &[Prompt::Text("x")])
            .unwrap_err()
            .contains("no `logprobs`"));
    }
}
