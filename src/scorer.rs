//! The scoring pipeline: passages → token ids → windows → packed forward passes → token
//! statistics → scores. One forward pass per passage (plus one for the lowercased text when
//! the lowercase score is on) serves every score.
//!
//! **Scored positions.** With ids `t_0 … t_{n-1}` (BOS first if the model adds one), positions
//! `1 … n-1` are scored: the BOS is never scored and, for models without BOS, the first text
//! token is context only.
//!
//! **Long passages.** A passage longer than the context `C` is scored in overlapping windows
//! of `C` tokens with stride `C/2`: the first window scores its positions `1 … C-1`; each
//! later window ends `C/2` tokens further on and scores only its last `C/2` (new) tokens, so
//! every token is scored exactly once and has at least `C/2 - 1` tokens of left context. For
//! models with a BOS, every window begins with the BOS. Nothing is ever truncated.

use crate::error::Result;
use crate::input::Passage;
use crate::model::{Batch, Model};
use crate::score::{score_passage, PassageScores};
use crate::stats::{token_ranks, token_stats, TokenStat};

/// Settings of a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Fractions for Min-K% and Min-K%++ (default `[0.2]`).
    pub ks: Vec<f64>,
    /// Also score the lowercased text (the `lowercase` score; a second forward).
    pub lowercase: bool,
    /// Use a context shorter than the model's (windows of this many tokens).
    pub max_context: Option<usize>,
    /// Tokens packed into one forward pass.
    pub batch_tokens: usize,
    /// Keep per-token arrays in the results.
    pub token_details: bool,
    /// With the details, the rank of each token among the model's predictions (a second
    /// pass over the LM head: for heat maps of a few passages).
    pub token_ranks: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            ks: vec![0.2],
            lowercase: true,
            max_context: None,
            batch_tokens: 2048,
            token_details: false,
            token_ranks: false,
        }
    }
}

/// Per-token arrays of one passage, aligned with its scored positions.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDetails {
    /// Ids as scored (BOS included).
    pub ids: Vec<u32>,
    /// Text of each id.
    pub tokens: Vec<String>,
    /// One per scored position (`ids[1..]`).
    pub stats: Vec<TokenStat>,
    /// Rank of each scored token among the model's predictions (1 = top), when asked for.
    pub ranks: Option<Vec<u32>>,
}

/// The result for one passage.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageResult {
    pub id: String,
    pub source: String,
    pub n_tokens: usize,
    pub n_scored: usize,
    pub scores: PassageScores,
    /// Why there are no numbers (`n_scored = 0`).
    pub reason: Option<String>,
    pub details: Option<TokenDetails>,
}

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

/// Per sequence, the rank of each scored token (empty when not asked for).
type Ranks = Vec<Vec<u32>>;

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
#[derive(Clone, Copy)]
struct Runner<'m> {
    model: &'m Model,
    ctx: usize,
    batch_tokens: usize,
}

impl<'m> Runner<'m> {
    fn new(model: &'m Model, opts: &ScoreOptions) -> Self {
        let model_ctx = model.lm.context_length();
        let ctx = opts
            .max_context
            .map_or(model_ctx, |c| c.min(model_ctx))
            .max(2);
        Runner {
            model,
            ctx,
            batch_tokens: opts.batch_tokens,
        }
    }

    /// Statistics of positions `1..n` of every sequence.
    fn stats(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<TokenStat>>> {
        Ok(self.stats_ranks(seqs, false)?.0)
    }

    /// Statistics (and, if `ranks`, the ranks) of positions `1..n` of every sequence.
    fn stats_ranks(&self, seqs: &[Vec<u32>], ranks: bool) -> Result<(Vec<Vec<TokenStat>>, Ranks)> {
        let bos = self.model.tokenizer.bos();
        let jobs: Vec<Job> = seqs
            .iter()
            .enumerate()
            .flat_map(|(s, ids)| windows(s, ids, self.ctx, bos))
            .collect();
        let mut stats: Vec<Vec<TokenStat>> = seqs
            .iter()
            .map(|s| Vec::with_capacity(s.len().saturating_sub(1)))
            .collect();
        let mut rank_out: Vec<Vec<u32>> = vec![Vec::new(); if ranks { seqs.len() } else { 0 }];
        let mut k = 0;
        while k < jobs.len() {
            let mut end = k;
            let mut n = 0;
            while end < jobs.len() && (end == k || n + jobs[end].len() <= self.batch_tokens) {
                n += jobs[end].len();
                end += 1;
            }
            self.run_batch(
                &jobs[k..end],
                seqs,
                &mut stats,
                ranks.then_some(&mut rank_out),
            )?;
            k = end;
        }
        Ok((stats, rank_out))
    }

    fn run_batch(
        &self,
        jobs: &[Job],
        seqs: &[Vec<u32>],
        stats: &mut [Vec<TokenStat>],
        ranks: Option<&mut Vec<Vec<u32>>>,
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
            batch.push(&window);
            let offset = usize::from(job.bos.is_some());
            for (p, &target) in ids.iter().enumerate().take(job.to).skip(job.from) {
                // local index of position p in the window; its prediction comes from the row before
                let local = p - job.start + offset;
                rows.push((span_start + local - 1) as u32);
                targets.push(target);
            }
        }
        let hidden = self.model.lm.forward(&batch)?;
        let computed = token_stats(self.model.lm.as_ref(), &hidden, &rows, &targets)?;
        let mut it = computed.into_iter();
        for job in jobs {
            stats[job.seq].extend(it.by_ref().take(job.to - job.from));
        }
        if let Some(ranks) = ranks {
            let computed = token_ranks(self.model.lm.as_ref(), &hidden, &rows, &targets)?;
            let mut it = computed.into_iter();
            for job in jobs {
                ranks[job.seq].extend(it.by_ref().take(job.to - job.from));
            }
        }
        Ok(())
    }
}

/// A passage tokenised for every view of a run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub passage: Passage,
    ids: Vec<u32>,
    lower: Vec<u32>,
    reference: Option<Vec<u32>>,
}

impl Prepared {
    /// Tokens over every view (what a group's budget counts).
    pub fn tokens(&self) -> usize {
        self.ids.len() + self.lower.len() + self.reference.as_ref().map_or(0, Vec::len)
    }
}

/// Scores passages with a target model and, optionally, a reference model.
pub struct Scorer<'m> {
    target: Runner<'m>,
    reference: Option<Runner<'m>>,
    opts: ScoreOptions,
}

impl<'m> Scorer<'m> {
    pub fn new(model: &'m Model, opts: ScoreOptions) -> Self {
        Scorer {
            target: Runner::new(model, &opts),
            reference: None,
            opts,
        }
    }

    /// Adds a reference model: its statistics on the same texts give the `ref*` scores.
    pub fn with_reference(mut self, reference: &'m Model) -> Self {
        self.reference = Some(Runner::new(reference, &self.opts));
        self
    }

    /// The same scorer keeping per-token details (for heat maps of a few passages).
    pub fn with_details(&self) -> Scorer<'m> {
        Scorer {
            target: self.target,
            reference: self.reference,
            opts: ScoreOptions {
                token_details: true,
                token_ranks: true,
                ..self.opts.clone()
            },
        }
    }

    /// The target model's tokenizer (documents are cut into passages with it).
    pub fn target_tokenizer(&self) -> &'m crate::model::Tokenizer {
        &self.target.model.tokenizer
    }

    /// The context (window length) in use for the target.
    pub fn context(&self) -> usize {
        self.target.ctx
    }

    /// Scores `passages` and hands each result to `sink`, in input order.
    pub fn score_all(
        &self,
        passages: &[Passage],
        sink: impl FnMut(PassageResult) -> Result<()>,
    ) -> Result<()> {
        self.score_iter(passages.iter().map(|p| self.prepare(p.clone())), sink)
    }

    /// Scores prepared passages as they come (tokenised elsewhere, e.g. on a reader
    /// thread) and hands each result to `sink`, in order. Stops at the first error.
    pub fn score_iter(
        &self,
        items: impl Iterator<Item = Result<Prepared>>,
        mut sink: impl FnMut(PassageResult) -> Result<()>,
    ) -> Result<()> {
        let mut group = Vec::new();
        let mut tokens = 0;
        for item in items {
            let p = item?;
            tokens += p.tokens();
            group.push(p);
            if self.group_full(group.len(), tokens) {
                for r in self.score_prepared(std::mem::take(&mut group))? {
                    sink(r)?;
                }
                tokens = 0;
            }
        }
        for r in self.score_prepared(group)? {
            sink(r)?;
        }
        Ok(())
    }

    /// Whether a group of `n` passages with `tokens` tokens (every view) is complete.
    /// Groups bound the memory held for pending results; packing happens inside a group.
    pub fn group_full(&self, n: usize, tokens: usize) -> bool {
        tokens >= self.opts.batch_tokens * 4 || n >= 512
    }

    /// Tokenises a passage for every view this scorer computes (target, lowercase,
    /// reference). Needs only the tokenizers: can run on any thread.
    pub fn prepare(&self, passage: Passage) -> Result<Prepared> {
        let _span = crate::profile::span(crate::profile::Phase::Tokenize);
        let tokenizer = &self.target.model.tokenizer;
        let ids = tokenizer.encode(&passage.id, &passage.text)?;
        let lower = if self.opts.lowercase {
            tokenizer.encode(&passage.id, &passage.text.to_lowercase())?
        } else {
            Vec::new()
        };
        let reference = match &self.reference {
            Some(r) => Some(r.model.tokenizer.encode(&passage.id, &passage.text)?),
            None => None,
        };
        Ok(Prepared {
            passage,
            ids,
            lower,
            reference,
        })
    }

    /// Scores a group of prepared passages (packed into forward passes together).
    pub fn score_prepared(&self, group: Vec<Prepared>) -> Result<Vec<PassageResult>> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let mut passages = Vec::with_capacity(group.len());
        // sequences: 2p = text of passage p, 2p+1 = its lowercased text (or empty)
        let mut seqs = Vec::with_capacity(2 * group.len());
        let mut ref_ids = Vec::new();
        for p in group {
            passages.push(p.passage);
            seqs.push(p.ids);
            seqs.push(p.lower);
            ref_ids.extend(p.reference);
        }
        self.score_group(&passages, seqs, ref_ids)
    }

    fn score_group(
        &self,
        passages: &[Passage],
        seqs: Vec<Vec<u32>>,
        ref_ids: Vec<Vec<u32>>,
    ) -> Result<Vec<PassageResult>> {
        let want_ranks = self.opts.token_details && self.opts.token_ranks;
        let (stats, ranks) = self.target.stats_ranks(&seqs, want_ranks)?;
        let mut ranks = ranks.into_iter().step_by(2);
        let reference = match &self.reference {
            Some(r) => {
                let st = r.stats(&ref_ids)?;
                Some((ref_ids, st))
            }
            None => None,
        };
        let same_vocab = self.reference.as_ref().is_some_and(|r| {
            r.model.tokenizer.vocab_hash() == self.target.model.tokenizer.vocab_hash()
        });
        let tokenizer = &self.target.model.tokenizer;
        let mut out = Vec::with_capacity(passages.len());
        let mut stats = stats.into_iter();
        let mut seqs = seqs.into_iter();
        for (k, p) in passages.iter().enumerate() {
            let (ids, st) = (
                seqs.next().expect("text seq"),
                stats.next().expect("text stats"),
            );
            let (_, lower_st) = (seqs.next(), stats.next().expect("lower stats"));
            let lower: Option<Vec<f64>> = self
                .opts
                .lowercase
                .then(|| lower_st.iter().map(|s| s.logp).collect());
            let mut scores = score_passage(&p.text, &st, lower.as_deref(), &self.opts.ks);
            if let Some((ref_ids, ref_st)) = &reference {
                // token-level differences only where both models tokenised the text alike
                let aligned = same_vocab && ref_ids[k] == ids;
                scores.add_reference(&p.text, &st, &ref_st[k], aligned, &self.opts.ks);
            }
            let reason = st.is_empty().then(|| {
                format!(
                    "too short: {} token(s), nothing to score ({})",
                    ids.len(),
                    tokenizer.bos_policy()
                )
            });
            let details = self.opts.token_details.then(|| TokenDetails {
                tokens: tokenizer.token_strings(&ids),
                ids: ids.clone(),
                stats: st.clone(),
                ranks: ranks.next(),
            });
            out.push(PassageResult {
                id: p.id.clone(),
                source: p.source.clone(),
                n_tokens: ids.len(),
                n_scored: st.len(),
                scores,
                reason,
                details,
            });
        }
        Ok(out)
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
