//! The scoring pipeline: passages → token ids → windows → packed forward passes → token
//! statistics → scores. One forward pass per view serves every score: the target's on the
//! text always, and — only when a selected score needs it ([`Selection`]) — the target's on
//! the lowercased text, the reference's on the text, and the target's on the extraction
//! windows.
//!
//! The model behind each view is an [`Engine`]: miascan's own forward or a server; the
//! scored positions and the windows of long passages are the engine's (see [`crate::engine`]).

use crate::engine::{Engine, Scored, Seq};
use crate::error::Result;
use crate::input::Passage;
use crate::model::Tokenizer;
use crate::record::PassageRecord;
use crate::score::extraction::{self, Extraction};
use crate::score::freq::FreqTable;
use crate::score::{score_passage, GroupSettings, PassageContext, Selection, View};

/// Settings of a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Fractions for the k-scores, Min-K%, Min-K%++, Gap-K% and SURP (default `[0.2]`):
    /// every k is computed from the same pass.
    pub ks: Vec<f64>,
    /// Also score the lowercased text (the `lowercase` score; a second forward).
    pub lowercase: bool,
    /// The scores to compute (`--scores`: names and groups, see [`Selection::parse`]);
    /// `None`: the default set.
    pub scores: Option<Vec<String>>,
    /// Windows of the verbatim-extraction score (`--extraction`).
    pub extraction: Option<Extraction>,
    /// sha256 of the ReCaLL prefix text (`--recall-prefix`), for calibrations to check.
    pub recall_prefix: Option<String>,
    /// sha256 of Con-ReCall's member prefix (`--member-prefix`).
    pub member_prefix: Option<String>,
    /// Con-ReCall's contrast weights γ (`--gamma`), one score each.
    pub gammas: Vec<f64>,
    /// sha256 of DC-PDD's token frequency table (`--freq-table`), for calibrations to check.
    pub freq_table: Option<String>,
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

impl ScoreOptions {
    /// The local engine of `model` with these options' window and batch settings.
    pub fn local_engine<M: std::borrow::Borrow<crate::model::Model>>(
        &self,
        model: M,
    ) -> crate::engine::LocalEngine<M> {
        crate::engine::LocalEngine::new(model, self.max_context, self.batch_tokens)
    }
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            ks: vec![0.2],
            lowercase: true,
            scores: None,
            extraction: None,
            recall_prefix: None,
            member_prefix: None,
            gammas: vec![0.1, 0.5, 1.0],
            freq_table: None,
            max_context: None,
            batch_tokens: 2048,
            token_details: false,
            token_ranks: false,
        }
    }
}

/// A passage prepared for every view of a run: tokenised when the engine has a local
/// tokenizer, text for a server to tokenise otherwise.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub passage: Passage,
    text: Seq,
    lower: Option<Seq>,
    reference: Option<Seq>,
}

impl Prepared {
    /// Tokens over every view (what a group's budget counts; estimated for text).
    pub fn tokens(&self, extraction: Option<Extraction>) -> usize {
        let windows = match (extraction, &self.text) {
            (Some(e), Seq::Tokens { spans, .. }) => {
                e.starts(spans.len()).len() * (e.window_len() + 1)
            }
            _ => 0,
        };
        self.text.tokens()
            + self.lower.as_ref().map_or(0, Seq::tokens)
            + self.reference.as_ref().map_or(0, Seq::tokens)
            + windows
    }
}

/// Scores passages with a target engine and, optionally, a reference engine.
pub struct Scorer<'m> {
    target: &'m dyn Engine,
    reference: Option<&'m dyn Engine>,
    /// The target reading every passage after the ReCaLL prefix.
    prefixed: Option<&'m dyn Engine>,
    /// The target reading every passage after Con-ReCall's member prefix.
    member_prefixed: Option<&'m dyn Engine>,
    /// Cuts documents into passages (the target's tokenizer, or the one given for a server).
    cutter: Option<&'m Tokenizer>,
    /// DC-PDD's token frequencies, in the target's vocabulary.
    freq: Option<&'m FreqTable>,
    opts: ScoreOptions,
    selection: Selection,
}

impl<'m> Scorer<'m> {
    /// A scorer of the default set; `opts.scores` takes effect only through
    /// [`Self::select`] (after [`Self::with_reference`]), which can refuse it.
    pub fn new(target: &'m dyn Engine, opts: ScoreOptions) -> Self {
        let mut s = Scorer {
            target,
            reference: None,
            prefixed: None,
            member_prefixed: None,
            cutter: target.tokenizer(),
            freq: None,
            selection: Selection { scores: Vec::new() },
            opts,
        };
        s.selection = Selection::default_for(&s.group_settings());
        s
    }

    /// Adds a reference model: its statistics on the same texts give the `ref*` scores.
    pub fn with_reference(mut self, reference: &'m dyn Engine) -> Self {
        self.reference = Some(reference);
        self.selection = Selection::default_for(&self.group_settings());
        self
    }

    /// Adds the target reading every passage after a non-member prefix
    /// ([`crate::engine::LocalEngine::conditioned_on`]): the `recall` score.
    pub fn with_prefixed(mut self, prefixed: &'m dyn Engine) -> Self {
        self.prefixed = Some(prefixed);
        self.selection = Selection::default_for(&self.group_settings());
        self
    }

    /// Adds the target reading every passage after a member prefix: the Con-ReCall scores
    /// (with [`Self::with_prefixed`], at each of `opts.gammas`).
    pub fn with_member_prefixed(mut self, member: &'m dyn Engine) -> Self {
        self.member_prefixed = Some(member);
        self.selection = Selection::default_for(&self.group_settings());
        self
    }

    /// Adds DC-PDD's token frequency table (the `dcpdd` score). Its vocabulary must be the
    /// target's: a local model's own tokenizer, or for a server that returns token ids the
    /// tokenizer given for it (`--tokenizer`, after [`Self::with_cutter`]), against which
    /// each passage's ids from the server are then checked (a passage the server tokenised
    /// otherwise gets no `dcpdd`). Refused otherwise, naming what is missing.
    pub fn with_freq(mut self, table: &'m FreqTable) -> Result<Self> {
        let name = &self.target.identity().name;
        let tok = match (self.target.tokenizer(), self.cutter) {
            (Some(t), _) => t,
            (None, Some(c)) if self.target.scores_ids() => c,
            (None, Some(_)) => {
                return Err(crate::Error::Usage(format!(
                    "--freq-table: {name} is scored by a server that returns no token ids, so its tokens cannot be looked up in the table; score DC-PDD with a server that gives ids (vLLM) or a local model"
                )))
            }
            (None, None) => {
                return Err(crate::Error::Usage(format!(
                    "--freq-table: {name} is scored by a server; DC-PDD needs the model's tokenizer here too (--tokenizer FILE.gguf|tokenizer.json|HUB_ID), in the table's vocabulary"
                )))
            }
        };
        if tok.vocab_hash() != table.header.vocab_hash {
            return Err(crate::Error::Usage(format!(
                "--freq-table: built with the vocabulary {} ({}, {} tokens), but {name} tokenises with {} ({}, {} tokens): build one with this model (miascan freq build --model …)",
                short(&table.header.vocab_hash),
                table.header.tokenizer,
                table.header.vocab_size,
                short(tok.vocab_hash()),
                tok.kind(),
                tok.vocab_size()
            )));
        }
        self.freq = Some(table);
        self.selection = Selection::default_for(&self.group_settings());
        Ok(self)
    }

    /// The tokenizer that cuts documents into passages, for a target without one of its
    /// own (a server): passages are then about as long as asked, and the server's own
    /// tokens are scored.
    pub fn with_cutter(mut self, cutter: Option<&'m Tokenizer>) -> Self {
        if self.cutter.is_none() {
            self.cutter = cutter;
        }
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
            full_distribution: self.target.full_distribution()
                && self.reference.is_none_or(|r| r.full_distribution()),
            prefix: self.prefixed.is_some(),
            gammas: if self.member_prefixed.is_some() {
                &self.opts.gammas
            } else {
                &[]
            },
            freq: self.freq.is_some(),
        }
    }

    fn same_vocab(&self) -> bool {
        self.reference
            .is_some_and(|r| r.vocab_key() == self.target.vocab_key())
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
            prefixed: self.prefixed,
            member_prefixed: self.member_prefixed,
            cutter: self.cutter,
            freq: self.freq,
            opts: ScoreOptions {
                token_details: true,
                token_ranks: true,
                ..self.opts.clone()
            },
            selection: self.selection.clone(),
        }
    }

    /// The tokenizer documents are cut into passages with: the target's own, or the one
    /// given with [`Self::with_cutter`]. An error naming the fix when there is none.
    pub fn target_tokenizer(&self) -> Result<&'m Tokenizer> {
        self.cutter.ok_or_else(|| {
            crate::Error::Usage(format!(
                "{} is scored by a server, which tokenises for itself: cutting documents into passages of N tokens needs the model's tokenizer here too (--tokenizer FILE.gguf|tokenizer.json|HUB_ID)",
                self.target.identity().name
            ))
        })
    }

    /// The target engine.
    pub fn target(&self) -> &'m dyn Engine {
        self.target
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
    /// Groups bound the memory held for pending results; packing (local) and requests in
    /// flight (server) happen inside a group.
    pub fn group_full(&self, n: usize, tokens: usize) -> bool {
        self.target.group_full(n, tokens)
    }

    /// Tokens of a prepared passage over every view (a group's budget).
    pub fn prepared_tokens(&self, p: &Prepared) -> usize {
        p.tokens(self.selection.extraction())
    }

    /// Tokenises a passage for every view this scorer computes (target, lowercase,
    /// reference) where the engine tokenises locally; keeps the text for a server. Needs
    /// only the tokenizers: can run on any thread.
    pub fn prepare(&self, passage: Passage) -> Result<Prepared> {
        let _span = crate::profile::span(crate::profile::Phase::Tokenize);
        let sel = &self.selection;
        let with_spans = sel.extraction().is_some();
        let text = view_seq(self.target, &passage.id, &passage.text, with_spans)?;
        let lower = if sel.needs(View::Lowercase) {
            Some(view_seq(
                self.target,
                &passage.id,
                &passage.text.to_lowercase(),
                false,
            )?)
        } else {
            None
        };
        let reference = match self.reference {
            Some(r) if sel.needs(View::Reference) => {
                Some(view_seq(r, &passage.id, &passage.text, false)?)
            }
            _ => None,
        };
        Ok(Prepared {
            passage,
            text,
            lower,
            reference,
        })
    }

    /// The record of a passage that could not be scored (`error`: why): no numbers, the
    /// error in `failed` and `reason`.
    pub fn failed_record(&self, id: String, error: &crate::Error) -> PassageRecord {
        let mut rec = PassageRecord::new(id, self.target.identity().clone());
        rec.reference = self.reference.map(|r| r.identity().clone());
        rec.scores = self
            .selection
            .names()
            .into_iter()
            .map(|n| (n, None))
            .collect();
        rec.reason = Some(format!("failed: {error}"));
        rec.failed = Some(error.to_string());
        rec
    }

    /// Scores a group of prepared passages; the first passage that failed fails the group
    /// (see [`Scorer::score_group`] for the results one by one).
    pub fn score_prepared(&self, group: Vec<Prepared>) -> Result<Vec<PassageRecord>> {
        self.score_group(group)?.into_iter().collect()
    }

    /// Scores a group of prepared passages: every target sequence of the group (texts,
    /// lowercased texts, extraction windows) goes to the target engine at once, the
    /// reference's to its own. Extraction windows are cut from the scored tokens: with a
    /// local tokenizer they go with the texts; a server's tokens are known only after its
    /// answer, so its windows are a second round.
    ///
    /// The outer error stops the run; an inner one is that passage's alone: a sequence of
    /// it (text, lowercase, a window, the reference's) that the engine could not score —
    /// a server request that kept failing — named with the passage's id.
    pub fn score_group(&self, group: Vec<Prepared>) -> Result<Vec<Result<PassageRecord>>> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let extraction = self.selection.extraction();
        let mut seqs: Vec<Seq> = group.iter().map(|p| p.text.clone()).collect();
        let lower_at = seqs.len();
        seqs.extend(group.iter().filter_map(|p| p.lower.clone()));
        let windows_at = seqs.len();
        let local_ids = self.target.tokenizer().is_some();
        let mut starts: Vec<Vec<usize>> = vec![Vec::new(); group.len()];
        if let (Some(e), true) = (extraction, local_ids) {
            for (p, st) in group.iter().zip(starts.iter_mut()) {
                if let Seq::Tokens { ids, spans } = &p.text {
                    *st = e.starts(spans.len());
                    seqs.extend(windows_of(ids, ids.len() - spans.len(), st, &e));
                }
            }
        }
        let mut scored = self.target.score(seqs)?;
        let mut window_scored = scored.split_off(windows_at);
        let mut lower_scored = scored.split_off(lower_at).into_iter();
        let text_scored = scored;
        if let (Some(e), false, true) = (extraction, local_ids, self.target.scores_ids()) {
            let mut seqs = Vec::new();
            for (s, st) in text_scored.iter().zip(starts.iter_mut()) {
                if let Ok(s) = s {
                    if s.spans.len() + s.text_from == s.ids.len() {
                        *st = e.starts(s.spans.len());
                        seqs.extend(windows_of(&s.ids, s.text_from, st, &e));
                    }
                }
            }
            window_scored = self.target.score(seqs)?;
        }
        let mut window_scored = window_scored.into_iter();
        let ref_seqs: Vec<Seq> = group.iter().filter_map(|p| p.reference.clone()).collect();
        let mut ref_scored = match self.reference {
            Some(r) if !ref_seqs.is_empty() => r.score(ref_seqs)?,
            _ => Vec::new(),
        }
        .into_iter();
        // the same token sequences as the target's, read after the prefix
        let mut prefixed_scored = match self.prefixed {
            Some(e) if self.selection.needs(View::Prefixed) => {
                e.score(group.iter().map(|p| p.text.clone()).collect())?
            }
            _ => Vec::new(),
        }
        .into_iter();
        let mut member_scored = match self.member_prefixed {
            Some(e) if self.selection.needs(View::MemberPrefixed) => {
                e.score(group.iter().map(|p| p.text.clone()).collect())?
            }
            _ => Vec::new(),
        }
        .into_iter();
        let mut out = Vec::with_capacity(group.len());
        for ((p, st), starts) in group.into_iter().zip(text_scored).zip(starts) {
            let lower = p
                .lower
                .as_ref()
                .and_then(|_| lower_scored.next())
                .transpose();
            let reference = p
                .reference
                .as_ref()
                .and_then(|_| ref_scored.next())
                .transpose();
            let windows: Result<Vec<Scored>> = window_scored.by_ref().take(starts.len()).collect();
            let prefixed = prefixed_scored.next().transpose();
            let member_prefixed = member_scored.next().transpose();
            let id = p.passage.id.clone();
            let views = || -> Result<Views> {
                Ok(Views {
                    text: st?,
                    lower: lower?,
                    reference: reference?,
                    prefixed: prefixed?,
                    member_prefixed: member_prefixed?,
                    windows: windows?,
                })
            };
            let rec = views()
                .map(|v| self.record(p, v, &starts))
                .map_err(|e| match e {
                    crate::Error::Server { endpoint, message } => crate::Error::Server {
                        endpoint,
                        message: format!("{message} (scoring passage {id})"),
                    },
                    other => other,
                });
            out.push(rec);
        }
        Ok(out)
    }

    /// The record of a scored passage: its views' statistics and extraction windows.
    fn record(&self, p: Prepared, views: Views, starts: &[usize]) -> PassageRecord {
        let Views {
            text: st,
            lower,
            reference,
            prefixed,
            member_prefixed,
            windows,
        } = views;
        let extraction = self.selection.extraction();
        let best = extraction.and_then(|e| {
            let suffix: Vec<f64> = windows
                .iter()
                .map(|w| {
                    w.stats[w.stats.len() - e.suffix..]
                        .iter()
                        .map(|s| s.logp)
                        .sum()
                })
                .collect();
            extraction::best(starts, &suffix)
        });
        // token-level differences only where both models tokenised the text alike
        let aligned = self.same_vocab() && reference.as_ref().is_some_and(|r| r.ids == st.ids);
        let ctx = PassageContext {
            text: &p.passage.text,
            target: &st.stats,
            lowercase: lower.as_ref().map(|l| l.stats.as_slice()),
            reference: reference.as_ref().map(|r| r.stats.as_slice()),
            aligned,
            extraction: best.as_ref(),
            prefixed: prefixed.as_ref().map(|s| s.stats.as_slice()),
            member_prefixed: member_prefixed.as_ref().map(|s| s.stats.as_slice()),
            ids: &st.ids[st.ids.len().saturating_sub(st.stats.len())..],
            freq: self
                .freq
                .filter(|_| self.ids_in_cutter_vocabulary(&p.passage, &st)),
        };
        let scores = score_passage(&ctx, &self.selection);
        let mut rec = PassageRecord::new(p.passage.id.clone(), self.target.identity().clone());
        rec.reference = self.reference.map(|r| r.identity().clone());
        rec.n_tokens = st.ids.len();
        rec.n_scored = st.stats.len();
        rec.stats = scores.stats;
        rec.scores = scores.scores;
        rec.reason = st.stats.is_empty().then(|| {
            format!(
                "too short: {} token(s), nothing to score ({})",
                st.ids.len(),
                self.target.bos_policy()
            )
        });
        rec.extraction = match (extraction, &best) {
            (Some(e), Some(b)) => Some(b.evidence(&e, &p.passage.text, &st.spans)),
            _ => None,
        };
        if self.opts.token_details {
            let strings = st
                .tokens
                .clone()
                .unwrap_or_else(|| self.target.token_strings(&st.ids));
            rec.set_tokens(st.ids.clone(), strings, &st.stats, self.opts.token_ranks);
        }
        rec
    }
}

impl Scorer<'_> {
    /// Whether the scored ids of a passage are the target's vocabulary's: always for a
    /// local model; for a server, when its ids of the text equal the given tokenizer's.
    fn ids_in_cutter_vocabulary(&self, passage: &Passage, st: &Scored) -> bool {
        if self.target.tokenizer().is_some() {
            return true;
        }
        let Some(cutter) = self.cutter else {
            return false;
        };
        // the text's ids end the sequence, after at most one leading token (a BOS): where the
        // server's token texts could not be located in the text (pieces of multi-byte
        // characters), `text_from` is a guess, so the ids themselves are compared
        cutter.pieces(&passage.id, &passage.text).is_ok_and(|p| {
            let lead = st.ids.len().wrapping_sub(p.len());
            lead <= 1 && p.iter().zip(&st.ids[lead..]).all(|(a, &b)| a.0 == b)
        })
    }
}

/// What the engines returned for one passage, view by view.
struct Views {
    text: Scored,
    lower: Option<Scored>,
    reference: Option<Scored>,
    prefixed: Option<Scored>,
    member_prefixed: Option<Scored>,
    windows: Vec<Scored>,
}

/// The sequence of one view: tokenised (with spans for extraction) when the engine has a
/// tokenizer, the text otherwise.
fn view_seq(engine: &dyn Engine, id: &str, text: &str, with_spans: bool) -> Result<Seq> {
    Ok(match engine.tokenizer() {
        Some(t) if with_spans => {
            let pieces = t.pieces(id, text)?;
            let mut ids: Vec<u32> = t.bos().into_iter().collect();
            ids.extend(pieces.iter().map(|p| p.0));
            let spans = pieces.iter().map(|p| (p.1, p.2)).collect();
            Seq::Tokens { ids, spans }
        }
        Some(t) => Seq::Tokens {
            ids: t.encode(id, text)?,
            spans: Vec::new(),
        },
        None => Seq::Text(text.to_string()),
    })
}

/// The extraction windows of a scored text (`text_from` leading ids are not text): each
/// window is the leading ids followed by `window_len` text tokens from a start.
fn windows_of<'a>(
    ids: &'a [u32],
    text_from: usize,
    starts: &'a [usize],
    e: &'a Extraction,
) -> impl Iterator<Item = Seq> + 'a {
    starts.iter().map(move |&s| Seq::Tokens {
        ids: ids[..text_from]
            .iter()
            .chain(&ids[text_from + s..text_from + s + e.window_len()])
            .copied()
            .collect(),
        spans: Vec::new(),
    })
}

/// The first 16 hex digits of a hash, for messages.
fn short(h: &str) -> &str {
    &h[..16.min(h.len())]
}
