//! The models of a run, loaded once, each behind its engine, with the score options they
//! make: the library's side of the model and scoring flags (`scan`, `score`, `calibrate`,
//! `eval`, `dataset-test`, `exposure` all start here).
//!
//! Everything a run's scores depend on is settled once, in [`Models::load`]: the prefix
//! files and the frequency table are read and hashed there, and the [`ScoreOptions`] that
//! records, calibrations and scan logs carry are built from what was read, never read again.

use crate::calibrate::{Calibration, Settings};
use crate::chunk::{cut_passages, ChunkOptions};
use crate::engine::remote::RemoteOptions;
use crate::engine::{is_url, Engine, LocalEngine, RemoteEngine};
use crate::error::{Error, Result};
use crate::eval::baseline::BLIND_SAMPLE;
use crate::eval::reservoir::Reservoir;
use crate::input::Passage;
use crate::model::{Compute, LoadOptions, Model, Residency, Tokenizer};
use crate::record::PassageRecord;
use crate::score::freq::FreqTable;
use crate::score::prefix::{self, PrefixText};
use crate::scorer::{ScoreOptions, Scorer};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a run's models come from and how they run.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The target: a .gguf file, a checkpoint folder, a hub id or a server's `…/v1` URL.
    pub model: String,
    /// A reference model scoring the same passages (same kinds of spec).
    pub reference: Option<String>,
    /// Hub models from the local cache only.
    pub offline: bool,
    /// `cpu`, `cuda`, `cuda:N` or `metal`.
    pub device: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    pub weights: Residency,
    /// Exact f32 products (default) or GGUF blocks multiplied as stored with 8-bit
    /// activations (`--compute fast`); for the target and a local reference alike.
    pub compute: Compute,
    /// How to talk to a server target (its `url` is the target's; `served_model` the
    /// target's name).
    pub server: RemoteOptions,
    /// The model name to ask a reference server for.
    pub reference_served_model: Option<String>,
    /// With a server target: the tokenizer that cuts documents here.
    pub tokenizer: Option<String>,
    /// ReCaLL's non-member prefix (a bundled name or a file).
    pub recall_prefix: Option<String>,
    /// Con-ReCall's member prefix (a bundled name or a file).
    pub member_prefix: Option<String>,
    /// DC-PDD's token frequency table.
    pub freq_table: Option<PathBuf>,
}

impl ModelSpec {
    /// `model` alone, as the command line's defaults read it: on the CPU in f32, weights as
    /// stored, hub models downloaded when missing, no reference, prefix or table.
    pub fn new(model: &str) -> Self {
        ModelSpec {
            model: model.to_string(),
            reference: None,
            offline: false,
            device: "cpu".into(),
            dtype: "f32".into(),
            weights: Residency::Stored,
            compute: Compute::Exact,
            server: RemoteOptions::new(model),
            reference_served_model: None,
            tokenizer: None,
            recall_prefix: None,
            member_prefix: None,
            freq_table: None,
        }
    }
}

/// The models of a run, each behind its engine, and the options every score of the run is
/// made with.
pub struct Models {
    pub target: Box<dyn Engine>,
    pub reference: Option<Box<dyn Engine>>,
    /// The target reading passages after the ReCaLL prefix.
    pub prefixed: Option<Box<dyn Engine>>,
    /// The target reading passages after Con-ReCall's member prefix.
    pub member_prefixed: Option<Box<dyn Engine>>,
    /// With a server as target: the tokenizer that cuts documents.
    pub cutter: Option<Tokenizer>,
    /// DC-PDD's token frequencies.
    pub freq: Option<FreqTable>,
    /// The run's score options, the prefixes' and the table's hashes filled in from what
    /// was read: what records, calibrations and scan logs are checked against.
    pub options: ScoreOptions,
    /// The compute dtype the spec named (part of a scan's identity).
    pub dtype: String,
    /// What loading did that a user should hear of (a prefix cut to fit the context).
    pub notes: Vec<String>,
}

/// Checks the score options a caller built from its flags.
fn check_options(opts: &ScoreOptions) -> Result<()> {
    for &k in &opts.ks {
        if !(k > 0.0 && k <= 1.0) {
            return Err(Error::Usage(format!("--k {k}: must be in (0, 1]")));
        }
    }
    if opts.batch_tokens == 0 || opts.max_context.is_some_and(|c| c < 2) {
        return Err(Error::Usage(
            "--batch-tokens must be >= 1 and --max-context >= 2".into(),
        ));
    }
    if opts.gammas.iter().any(|g| !(g.is_finite() && *g >= 0.0)) {
        return Err(Error::Usage(format!(
            "--gamma {:?}: each must be a number >= 0",
            opts.gammas
        )));
    }
    Ok(())
}

/// With a server as target and no `--tokenizer`: the tokenizer of the served model's name
/// when that name is a hub id that resolves (in the local cache, or online), said in a note;
/// `None` otherwise (commands that cut passages then ask for `--tokenizer`).
fn served_tokenizer(
    served: &crate::model::ModelIdentity,
    offline: bool,
    notes: &mut Vec<String>,
) -> Option<Tokenizer> {
    let name = &served.name;
    if !matches!(
        crate::model::source::ModelSpec::parse(name),
        crate::model::source::ModelSpec::Hub { .. }
    ) {
        return None;
    }
    match Tokenizer::open(name, offline) {
        Ok(t) => {
            notes.push(format!(
                "passages are cut with the tokenizer of {name}, the served model's hub id (--tokenizer names another)"
            ));
            Some(t)
        }
        Err(e) => {
            notes.push(format!(
                "the served model's name {name} did not resolve as a hub id ({e}); give the tokenizer with --tokenizer to cut passages"
            ));
            None
        }
    }
}

impl Models {
    /// Loads the models of `spec` for scoring with `options` (its `ks`, `lowercase`,
    /// `scores`, `extraction`, `gammas`, window and batch; the hashes are filled in here).
    pub fn load(spec: &ModelSpec, mut options: ScoreOptions) -> Result<Models> {
        check_options(&options)?;
        let load = LoadOptions {
            device: crate::model::parse_device(&spec.device)?,
            dtype: crate::model::parse_dtype(&spec.dtype)?,
            residency: spec.weights,
            compute: spec.compute,
            offline: spec.offline,
        };
        let served = is_url(&spec.model) || spec.reference.as_deref().is_some_and(is_url);
        if spec.compute == Compute::Fast && served {
            return Err(Error::Usage(
                "--compute fast is for local GGUF models: a server computes as it is set up to"
                    .into(),
            ));
        }
        let open = |s: &str| Model::open(s, &load);
        let read_prefix = |flag: &str, p: &Option<String>| {
            p.as_deref().map(|s| prefix::load_as(flag, s)).transpose()
        };
        let recall = read_prefix("--recall-prefix", &spec.recall_prefix)?;
        let member = read_prefix("--member-prefix", &spec.member_prefix)?;
        if member.is_some() && recall.is_none() {
            return Err(Error::Usage(
                "--member-prefix needs --recall-prefix (Con-ReCall contrasts the two)".into(),
            ));
        }
        let mut notes = Vec::new();
        type Boxed = Option<Box<dyn Engine>>;
        let (target, prefixed, member_prefixed): (Box<dyn Engine>, Boxed, Boxed) = if is_url(
            &spec.model,
        ) {
            if recall.is_some() {
                return Err(Error::Usage(
                        "--recall-prefix needs a local model: a server gives no way to reuse a prefix's state".into(),
                    ));
            }
            let server = RemoteOptions {
                url: spec.model.clone(),
                ..spec.server.clone()
            };
            (Box::new(RemoteEngine::open(&server)?), None, None)
        } else {
            let model = Arc::new(open(&spec.model)?);
            let mut after = |flag: &str, p: &Option<PrefixText>| -> Result<Boxed> {
                let Some(p) = p else { return Ok(None) };
                let e = options
                    .local_engine(model.clone())
                    .conditioned_on(&p.text)?;
                if let Some(fit) = e.prefix_fit().filter(|f| f.trimmed > 0) {
                    notes.push(format!(
                        "{flag} {}: {} tokens cut from its front to fit half the context; {} kept",
                        p.name, fit.trimmed, fit.tokens
                    ));
                }
                Ok(Some(Box::new(e)))
            };
            let prefixed = after("--recall-prefix", &recall)?;
            let member_prefixed = after("--member-prefix", &member)?;
            (
                Box::new(options.local_engine(model)),
                prefixed,
                member_prefixed,
            )
        };
        let reference: Boxed = match &spec.reference {
            Some(url) if is_url(url) => {
                let server = RemoteOptions {
                    url: url.clone(),
                    served_model: spec.reference_served_model.clone(),
                    ..spec.server.clone()
                };
                Some(Box::new(RemoteEngine::open(&server)?))
            }
            Some(r) => Some(Box::new(LocalEngine::new(
                open(r)?,
                options.max_context,
                options.batch_tokens,
            ))),
            None => None,
        };
        let cutter = match &spec.tokenizer {
            _ if target.tokenizer().is_some() => None,
            Some(t) => Some(Tokenizer::open(t, spec.offline)?),
            None => served_tokenizer(target.identity(), spec.offline, &mut notes),
        };
        let freq = spec
            .freq_table
            .as_deref()
            .map(FreqTable::load)
            .transpose()?;
        options.recall_prefix = recall.map(|p| p.sha256);
        options.member_prefix = member.map(|p| p.sha256);
        options.freq_table = freq.as_ref().map(|t| t.sha256().to_string());
        Ok(Models {
            target,
            reference,
            prefixed,
            member_prefixed,
            cutter,
            freq,
            options,
            dtype: spec.dtype.clone(),
            notes,
        })
    }

    /// The run's scorer, `--scores` checked against the models.
    pub fn scorer(&self) -> Result<Scorer<'_>> {
        self.scorer_with(self.options.clone())
    }

    /// A scorer with other options of the same run (per-token details, say).
    pub fn scorer_with(&self, opts: ScoreOptions) -> Result<Scorer<'_>> {
        let mut s = Scorer::new(self.target.as_ref(), opts).with_cutter(self.cutter.as_ref());
        if let Some(r) = &self.reference {
            s = s.with_reference(r.as_ref());
        }
        if let Some(p) = &self.prefixed {
            s = s.with_prefixed(p.as_ref());
        }
        if let Some(m) = &self.member_prefixed {
            s = s.with_member_prefixed(m.as_ref());
        }
        if let Some(t) = &self.freq {
            s = s.with_freq(t)?;
        }
        s.select()
    }

    /// Scores every passage with `opts`, calling `tick(done)` after each.
    pub fn score_passages(
        &self,
        passages: &[Passage],
        opts: ScoreOptions,
        mut tick: impl FnMut(usize),
    ) -> Result<Vec<PassageRecord>> {
        let mut out = Vec::with_capacity(passages.len());
        self.scorer_with(opts)?.score_all(passages, |r| {
            out.push(r);
            tick(out.len());
            Ok(())
        })?;
        Ok(out)
    }

    /// `passages` cut into passages of `passage_tokens` target tokens, as a scan cuts its
    /// documents (no overlap).
    pub fn cut(&self, passages: Vec<Passage>, passage_tokens: usize) -> Result<Vec<Passage>> {
        if passage_tokens < 2 {
            return Err(Error::Usage("--passage-tokens must be at least 2".into()));
        }
        cut_passages(
            self.scorer()?.target_tokenizer()?,
            passages,
            ChunkOptions {
                passage_tokens,
                overlap: 0,
            },
        )
    }

    /// The calibration on known non-member `passages` (already cut into passages of
    /// `passage_tokens` when that is given: it is recorded), deciding by `decide_by` when
    /// given: `miascan calibrate`'s work, also done by `scan --nonmembers`.
    pub fn calibrate(
        &self,
        passages: &[Passage],
        passage_tokens: Option<usize>,
        decide_by: Option<String>,
        tick: impl FnMut(usize),
    ) -> Result<Calibration> {
        let results = self.score_passages(passages, self.options.clone(), tick)?;
        let mut settings = self.settings();
        settings.passage_tokens = passage_tokens;
        let mut c = Calibration::from_results(settings, &results);
        let mut sample = Reservoir::new(BLIND_SAMPLE, 0);
        passages.iter().for_each(|p| sample.offer(&p.text));
        c.sample = sample.into_items();
        if let Some(by) = decide_by {
            if !c.scores.contains_key(&by) {
                let known: Vec<&str> = c.scores.keys().map(String::as_str).collect();
                return Err(Error::Usage(format!(
                    "--decide-by {by}: not among the calibrated scores ({})",
                    known.join(", ")
                )));
            }
            c.decide_by = Some(by);
        }
        Ok(c)
    }

    /// The calibration settings of this run (whole passages; a caller that cuts sets
    /// `passage_tokens`).
    pub fn settings(&self) -> Settings {
        Settings::new(
            self.target.identity(),
            self.reference.as_ref().map(|r| r.identity()),
            &self.options,
        )
    }
}
