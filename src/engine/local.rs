//! miascan's own engine: the model's tokenizer, its forward over packed windows, and the
//! LM-head statistics over the whole vocabulary (exact `mu`, `sigma`, `rank`).
//!
//! **Long sequences.** A sequence longer than the context `C` is scored in overlapping
//! windows of `C` tokens with stride `C/2`: the first window scores its positions
//! `1 … C-1`; each later window ends `C/2` tokens further on and scores only its last `C/2`
//! (new) tokens, so every token is scored exactly once and has at least `C/2 - 1` tokens of
//! left context. For models with a BOS, every window begins with the BOS. Nothing is ever
//! truncated.

use super::{Engine, Scored, Seq};
use crate::error::{Error, Result};
use crate::model::{Batch, Model, ModelIdentity, Prefix, Tokenizer};
use crate::stats::{token_stats, TokenStat};
use std::borrow::Borrow;

/// One forward sequence: a window of a tokenised text and the positions it scores.
struct Job {
    seq: usize,
    /// Window content starts at `ids[start]` (after a BOS when `bos` is set).
    start: usize,
    end: usize,
    bos: Option<u32>,
    /// Positions `from..to` of the full sequence scored by this window.
    from: usize,
    to: usize,
}

impl Job {
    fn len(&self) -> usize {
        self.end - self.start + usize::from(self.bos.is_some())
    }
}

/// Splits a sequence of `n` ids into windows of at most `ctx` tokens (see the module docs).
fn windows(seq: usize, ids: &[u32], ctx: usize, bos: Option<u32>) -> Vec<Job> {
    let n = ids.len();
    if n < 2 {
        return Vec::new();
    }
    if n <= ctx {
        return vec![Job {
            seq,
            start: 0,
            end: n,
            bos: None,
            from: 1,
            to: n,
        }];
    }
    let stride = (ctx / 2).max(1);
    let mut jobs = vec![Job {
        seq,
        start: 0,
        end: ctx,
        bos: None,
        from: 1,
        to: ctx,
    }];
    let mut done = ctx;
    while done < n {
        let end = (done + stride).min(n);
        // a later window repeats the BOS, then as much left context as fits
        let (start, bos) = match bos {
            Some(b) => (end - (ctx - 1), Some(b)),
            None => (end - ctx, None),
        };
        jobs.push(Job {
            seq,
            start,
            end,
            bos,
            from: done,
            to: end,
        });
        done = end;
    }
    jobs
}

/// Computes token statistics of token sequences with one model: windows, packing into
/// batches of at most `batch_tokens`, forward, statistics.
pub struct LocalEngine<M = Model> {
    /// The model, owned or borrowed.
    model: M,
    ctx: usize,
    batch_tokens: usize,
    /// A text every sequence is read after (ReCaLL's prefix), its key/value state computed
    /// once.
    prefix: Option<Conditioning>,
}

/// A prefix's state. The key/value state covers all its tokens but the last; the last is put
/// in front of every sequence (as a BOS would be), so the row that predicts the sequence's
/// first token is in the batch and that token is scored too.
struct Conditioning {
    state: Prefix,
    last: u32,
    tokens: usize,
    trimmed: usize,
}

/// What a prefix became: its tokens as read, and how many were cut from its front to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixFit {
    pub tokens: usize,
    pub trimmed: usize,
}

impl<M: Borrow<Model>> LocalEngine<M> {
    /// The engine of a loaded model: windows of at most `max_context` tokens (default and
    /// maximum: the model's context), forward passes of at most `batch_tokens` tokens.
    pub fn new(model: M, max_context: Option<usize>, batch_tokens: usize) -> Self {
        let model_ctx = model.borrow().lm.context_length();
        let ctx = max_context.map_or(model_ctx, |c| c.min(model_ctx)).max(2);
        LocalEngine {
            model,
            ctx,
            batch_tokens: batch_tokens.max(1),
            prefix: None,
        }
    }

    /// The engine reading every sequence after `text` (tokenised as a passage: the BOS first
    /// where the model adds one), whose key/value state is computed here, once. Every text
    /// token of a sequence is then scored, the first too (its context is the prefix). A
    /// prefix over half the context is cut from the front (after its BOS) to half, so that
    /// passages keep room; [`LocalEngine::prefix_fit`] says how many tokens went.
    pub fn conditioned_on(mut self, text: &str) -> Result<Self> {
        let m = self.m();
        let mut ids = m.tokenizer.encode("prefix", text)?;
        let bos = usize::from(m.tokenizer.bos().is_some());
        if ids.len() <= bos {
            return Err(Error::Usage(
                "the prefix has no text tokens: nothing to condition on".into(),
            ));
        }
        let keep = (self.ctx / 2).max(bos + 1);
        let trimmed = ids.len().saturating_sub(keep);
        ids.drain(bos..bos + trimmed);
        let last = ids.pop().expect("at least one text token");
        let state = if ids.is_empty() {
            // a one-token prefix without a BOS: no state, the token alone is the context
            Prefix {
                len: 0,
                layers: Vec::new(),
            }
        } else {
            m.lm.prefix(&ids)?
        };
        self.prefix = Some(Conditioning {
            tokens: ids.len() + 1,
            state,
            last,
            trimmed,
        });
        Ok(self)
    }

    /// The prefix's size and trim, when the engine reads sequences after one.
    pub fn prefix_fit(&self) -> Option<PrefixFit> {
        self.prefix.as_ref().map(|c| PrefixFit {
            tokens: c.tokens,
            trimmed: c.trimmed,
        })
    }

    fn m(&self) -> &Model {
        self.model.borrow()
    }

    fn stats(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<TokenStat>>> {
        // after a prefix, a sequence is read as [the prefix's last token, its text tokens]
        // in a context shortened by the prefix's state; later windows repeat that token
        let conditioned: Vec<Vec<u32>>;
        let (seqs, ctx, bos) = match &self.prefix {
            Some(c) => {
                let from = usize::from(self.m().tokenizer.bos().is_some());
                conditioned = seqs
                    .iter()
                    .map(|ids| {
                        let text = ids.get(from..).unwrap_or_default();
                        std::iter::once(c.last)
                            .chain(text.iter().copied())
                            .collect()
                    })
                    .collect();
                (&conditioned[..], self.ctx - c.state.len, Some(c.last))
            }
            None => (seqs, self.ctx, self.m().tokenizer.bos()),
        };
        let jobs: Vec<Job> = seqs
            .iter()
            .enumerate()
            .flat_map(|(s, ids)| windows(s, ids, ctx, bos))
            .collect();
        let mut stats: Vec<Vec<TokenStat>> = seqs
            .iter()
            .map(|s| Vec::with_capacity(s.len().saturating_sub(1)))
            .collect();
        let mut k = 0;
        while k < jobs.len() {
            let mut end = k;
            let mut n = 0;
            while end < jobs.len() && (end == k || n + jobs[end].len() <= self.batch_tokens) {
                n += jobs[end].len();
                end += 1;
            }
            self.run_batch(&jobs[k..end], seqs, &mut stats)?;
            k = end;
        }
        Ok(stats)
    }

    fn run_batch(
        &self,
        jobs: &[Job],
        seqs: &[Vec<u32>],
        stats: &mut [Vec<TokenStat>],
    ) -> Result<()> {
        let mut batch = Batch::default();
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut window = Vec::with_capacity(self.ctx);
        for job in jobs {
            let ids = &seqs[job.seq];
            let span_start = batch.len();
            window.clear();
            window.extend(job.bos);
            window.extend_from_slice(&ids[job.start..job.end]);
            match &self.prefix {
                Some(c) => batch.push_after(&window, c.state.len),
                None => batch.push(&window),
            }
            let offset = usize::from(job.bos.is_some());
            for (p, &target) in ids.iter().enumerate().take(job.to).skip(job.from) {
                // local index of position p in the window; its prediction comes from the row before
                let local = p - job.start + offset;
                rows.push((span_start + local - 1) as u32);
                targets.push(target);
            }
        }
        let hidden = match &self.prefix {
            Some(c) if c.state.len > 0 => self.m().lm.forward_after(&batch, &c.state)?,
            _ => self.m().lm.forward(&batch)?,
        };
        let computed = token_stats(self.m().lm.as_ref(), &hidden, &rows, &targets)?;
        let mut it = computed.into_iter();
        for job in jobs {
            stats[job.seq].extend(it.by_ref().take(job.to - job.from));
        }
        Ok(())
    }
}

impl<M: Borrow<Model>> LocalEngine<M> {
    /// The loaded model.
    pub fn model(&self) -> &Model {
        self.m()
    }

    /// The context (window length) in use.
    pub fn context(&self) -> usize {
        self.ctx
    }
}

impl<M: Borrow<Model> + Send + Sync> Engine for LocalEngine<M> {
    fn identity(&self) -> &ModelIdentity {
        &self.m().identity
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        Some(&self.m().tokenizer)
    }

    fn score(&self, seqs: Vec<Seq>) -> Result<Vec<Result<Scored>>> {
        let text_from = usize::from(self.m().tokenizer.bos().is_some());
        let mut ids = Vec::with_capacity(seqs.len());
        let mut spans = Vec::with_capacity(seqs.len());
        for s in seqs {
            match s {
                Seq::Tokens { ids: i, spans: p } => {
                    ids.push(i);
                    spans.push(p);
                }
                Seq::Text(_) => {
                    return Err(Error::Internal(
                        "the local engine scores token ids; the text was not tokenised".into(),
                    ))
                }
            }
        }
        let stats = self.stats(&ids)?;
        Ok(ids
            .into_iter()
            .zip(spans)
            .zip(stats)
            .map(|((ids, spans), stats)| {
                Ok(Scored {
                    ids,
                    text_from,
                    spans,
                    tokens: None,
                    stats,
                })
            })
            .collect())
    }

    fn full_distribution(&self) -> bool {
        true
    }

    fn bos_policy(&self) -> String {
        self.m().tokenizer.bos_policy()
    }

    fn vocab_key(&self) -> String {
        self.m().tokenizer.vocab_hash().to_string()
    }

    fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        self.m().tokenizer.token_strings(ids)
    }

    fn group_full(&self, n: usize, tokens: usize) -> bool {
        tokens >= self.batch_tokens * 4 || n >= 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(jobs: &[Job]) -> Vec<usize> {
        jobs.iter().flat_map(|j| j.from..j.to).collect()
    }

    #[test]
    fn short_sequences_are_one_window() {
        let ids: Vec<u32> = (0..10).collect();
        let j = windows(0, &ids, 16, None);
        assert_eq!(j.len(), 1);
        assert_eq!(scored(&j), (1..10).collect::<Vec<_>>());
        assert!(windows(0, &[5], 16, None).is_empty());
        assert!(windows(0, &[], 16, None).is_empty());
    }

    #[test]
    fn long_sequences_score_every_token_once_with_enough_context() {
        for bos in [None, Some(99)] {
            for n in [17, 33, 40, 100] {
                let ids: Vec<u32> = (0..n as u32).collect();
                let ctx = 16;
                let jobs = windows(0, &ids, ctx, bos);
                assert_eq!(scored(&jobs), (1..n).collect::<Vec<_>>(), "n={n}");
                for j in &jobs {
                    assert!(j.len() <= ctx, "window too long");
                    assert!(j.from > j.start && j.to <= j.end);
                    if j.start > 0 {
                        assert!(j.from - j.start >= ctx / 2 - 1, "left context");
                        assert_eq!(j.bos, bos);
                    }
                }
            }
        }
    }
}
