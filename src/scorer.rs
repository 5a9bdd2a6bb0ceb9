//! The scoring pipeline: passages → token ids → windows → packed forward passes → token
//! statistics → scores. One forward pass per view serves every score: the target's on the
//! text always, and — only when a selected score needs it ([`Selection`]) — the target's on
//! the lowercased text, the reference's on the text, and the target's on the extraction
//! windows.
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
use crate::record::PassageRecord;
use crate::score::extraction::{self, Extraction};
use crate::score::{score_passage, GroupSettings, PassageContext, Selection, View};
use crate::stats::{token_stats, TokenStat};

/// Settings of a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Fractions for Min-K% and Min-K%++ (default `[0.2]`).
    pub ks: Vec<f64>,
    /// Also score the lowercased text (the `lowercase` score; a second forward).
    pub lowercase: bool,
    /// The scores to compute (`--scores`: names and groups, see [`Selection::parse`]);
    /// `None`: the default set.
    pub scores: Option<Vec<String>>,
    /// Windows of the verbatim-extraction score (`--extraction`).
    pub extraction: Option<Extraction>,
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
            scores: None,
            extraction: None,
            max_context: None,
            batch_tokens: 2048,
            token_details: false,
            token_ranks: false,
        }
    }
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
        Ok(())
    }
}

/// A passage tokenised for every view of a run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub passage: Passage,
    ids: Vec<u32>,
    lower: Option<Vec<u32>>,
    reference: Option<Vec<u32>>,
    /// With extraction: each text token's byte span, and the windows' first tokens.
    spans: Vec<(usize, usize)>,
    starts: Vec<usize>,
}

impl Prepared {
    /// Tokens over every view (what a group's budget counts).
    pub fn tokens(&self, extraction: Option<Extraction>) -> usize {
        let windows = extraction.map_or(0, |e| self.starts.len() * (e.window_len() + 1));
        self.ids.len()
            + self.lower.as_ref().map_or(0, Vec::len)
            + self.reference.as_ref().map_or(0, Vec::len)
            + windows
    }
}

/// Scores passages with a target model and, optionally, a reference model.
pub struct Scorer<'m> {
    target: Runner<'m>,
    reference: Option<Runner<'m>>,
    opts: ScoreOptions,
    selection: Selection,
}

impl<'m> Scorer<'m> {
    /// A scorer of the default set; `opts.scores` takes effect only through
    /// [`Self::select`] (after [`Self::with_reference`]), which can refuse it.
    pub fn new(model: &'m Model, opts: ScoreOptions) -> Self {
        let mut s = Scorer {
            target: Runner::new(model, &opts),
            reference: None,
            selection: Selection { scores: Vec::new() },
            opts,
        };
        s.selection = Selection::default_for(&s.group_settings());
        s
    }

    /// Adds a reference model: its statistics on the same texts give the `ref*` scores.
    pub fn with_reference(mut self, reference: &'m Model) -> Self {
        self.reference = Some(Runner::new(reference, &self.opts));
        self.selection = Selection::default_for(&self.group_settings());
        self
    }

    /// Resolves `opts.scores` against the models (after [`Self::with_reference`]): an
    /// unknown score, or one whose model is missing, is an error naming it.
    pub fn select(mut self) -> Result<Self> {
        self.selection = Selection::parse(self.opts.scores.as_deref(), &self.group_settings())?;
        Ok(self)
    }

    fn group_settings(&self) -> GroupSettings<'_> {
        GroupSettings {
            ks: &self.opts.ks,
            lowercase: self.opts.lowercase,
            reference: self.reference.is_some(),
            same_vocab: self.same_vocab(),
            extraction: self.opts.extraction,
        }
    }

    fn same_vocab(&self) -> bool {
        self.reference.as_ref().is_some_and(|r| {
            r.model.tokenizer.vocab_hash() == self.target.model.tokenizer.vocab_hash()
        })
    }

    /// The scores this scorer computes, in output order.
    pub fn selection(&self) -> &Selection {
        &self.selection
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
            selection: self.selection.clone(),
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
        sink: impl FnMut(PassageRecord) -> Result<()>,
    ) -> Result<()> {
        self.score_iter(passages.iter().map(|p| self.prepare(p.clone())), sink)
    }

    /// Scores prepared passages as they come (tokenised elsewhere, e.g. on a reader
    /// thread) and hands each result to `sink`, in order. Stops at the first error.
    pub fn score_iter(
        &self,
        items: impl Iterator<Item = Result<Prepared>>,
        mut sink: impl FnMut(PassageRecord) -> Result<()>,
    ) -> Result<()> {
        let mut group = Vec::new();
        let mut tokens = 0;
        for item in items {
            let p = item?;
            tokens += p.tokens(self.selection.extraction());
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

    /// Tokens of a prepared passage over every view (a group's budget).
    pub fn prepared_tokens(&self, p: &Prepared) -> usize {
        p.tokens(self.selection.extraction())
    }

    /// Tokenises a passage for every view this scorer computes (target, lowercase,
    /// reference, extraction windows). Needs only the tokenizers: can run on any thread.
    pub fn prepare(&self, passage: Passage) -> Result<Prepared> {
        let _span = crate::profile::span(crate::profile::Phase::Tokenize);
        let tokenizer = &self.target.model.tokenizer;
        let sel = &self.selection;
        let (ids, spans, starts) = match sel.extraction() {
            Some(e) => {
                let pieces = tokenizer.pieces(&passage.id, &passage.text)?;
                let mut ids: Vec<u32> = tokenizer.bos().into_iter().collect();
                ids.extend(pieces.iter().map(|p| p.0));
                let spans: Vec<(usize, usize)> = pieces.iter().map(|p| (p.1, p.2)).collect();
                let starts = e.starts(spans.len());
                (ids, spans, starts)
            }
            None => (
                tokenizer.encode(&passage.id, &passage.text)?,
                Vec::new(),
                Vec::new(),
            ),
        };
        let lower = if sel.needs(View::Lowercase) {
            Some(tokenizer.encode(&passage.id, &passage.text.to_lowercase())?)
        } else {
            None
        };
        let reference = match &self.reference {
            Some(r) if sel.needs(View::Reference) => {
                Some(r.model.tokenizer.encode(&passage.id, &passage.text)?)
            }
            _ => None,
        };
        Ok(Prepared {
            passage,
            ids,
            lower,
            reference,
            spans,
            starts,
        })
    }

    /// Scores a group of prepared passages: every target-model sequence of the group (texts,
    /// lowercased texts, extraction windows) is packed into the same forward passes, the
    /// reference's into its own.
    pub fn score_prepared(&self, group: Vec<Prepared>) -> Result<Vec<PassageRecord>> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let extraction = self.selection.extraction();
        let bos = self.target.model.tokenizer.bos();
        let offset = usize::from(bos.is_some());
        let mut seqs: Vec<Vec<u32>> = group.iter().map(|p| p.ids.clone()).collect();
        let lower_at = seqs.len();
        seqs.extend(group.iter().filter_map(|p| p.lower.clone()));
        let windows_at = seqs.len();
        if let Some(e) = extraction {
            for p in &group {
                for &s in &p.starts {
                    let text = &p.ids[offset + s..offset + s + e.window_len()];
                    seqs.push(bos.into_iter().chain(text.iter().copied()).collect());
                }
            }
        }
        let mut stats = self.target.stats(&seqs)?;
        let mut window_stats = stats.split_off(windows_at).into_iter();
        let mut lower_stats = stats.split_off(lower_at).into_iter();
        let text_stats = stats;
        let ref_ids: Vec<Vec<u32>> = group.iter().filter_map(|p| p.reference.clone()).collect();
        let mut ref_stats = match &self.reference {
            Some(r) if !ref_ids.is_empty() => r.stats(&ref_ids)?,
            _ => Vec::new(),
        }
        .into_iter();
        let same_vocab = self.same_vocab();
        let tokenizer = &self.target.model.tokenizer;
        let mut out = Vec::with_capacity(group.len());
        for (p, st) in group.into_iter().zip(text_stats) {
            let lower = p.lower.as_ref().and_then(|_| lower_stats.next());
            let reference = p.reference.as_ref().and_then(|_| ref_stats.next());
            let best = extraction.and_then(|e| {
                let suffix: Vec<f64> = window_stats
                    .by_ref()
                    .take(p.starts.len())
                    .map(|w| w[w.len() - e.suffix..].iter().map(|s| s.logp).sum())
                    .collect();
                extraction::best(&p.starts, &suffix)
            });
            // token-level differences only where both models tokenised the text alike
            let aligned = same_vocab && p.reference.as_ref() == Some(&p.ids);
            let ctx = PassageContext {
                text: &p.passage.text,
                target: &st,
                lowercase: lower.as_deref(),
                reference: reference.as_deref(),
                aligned,
                extraction: best.as_ref(),
            };
            let scores = score_passage(&ctx, &self.selection);
            let mut rec =
                PassageRecord::new(p.passage.id.clone(), self.target.model.identity.clone());
            rec.reference = self.reference.as_ref().map(|r| r.model.identity.clone());
            rec.n_tokens = p.ids.len();
            rec.n_scored = st.len();
            rec.stats = scores.stats;
            rec.scores = scores.scores;
            rec.reason = st.is_empty().then(|| {
                format!(
                    "too short: {} token(s), nothing to score ({})",
                    p.ids.len(),
                    tokenizer.bos_policy()
                )
            });
            rec.extraction = match (extraction, &best) {
                (Some(e), Some(b)) => Some(b.evidence(&e, &p.passage.text, &p.spans)),
                _ => None,
            };
            if self.opts.token_details {
                rec.set_tokens(
                    p.ids.clone(),
                    tokenizer.token_strings(&p.ids),
                    &st,
                    self.opts.token_ranks,
                );
            }
            out.push(rec);
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
