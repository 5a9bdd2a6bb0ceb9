//! A whole scan as one library call: from loaded models, a decision and a [`ScanJob`] to a
//! finished output folder. The order of the stages is this file:
//!
//! 1. the run header (models, settings by construction, calibration) opens or resumes the
//!    log; a calibration made here is saved beside it;
//! 2. one read of the collection scores every passage into the log ([`super::run`]) and draws
//!    the blind baseline's sample as it goes;
//! 3. the log becomes the outputs ([`finish::collect`]); the heat maps' documents are read
//!    once more, those alone, for their per-token details;
//! 4. the blind baseline and the verdict ([`super::verdict::conclude`]); the files are written, the
//!    summary last.
//!
//! The collection is read twice in all (the scan; the heat maps' documents), where the
//! command line's own sequence read it three times (a third read drew the blind sample).

use super::finish;
use super::log::{self, LogWriter, RunHeader, ScanSettings};
use super::outputs::write_file;
use super::outputs::write_outputs;
use super::summary::{Outputs, RunInfo};
use super::{RunStats, ScanOptions, Scoring};
use crate::calibrate::Decision;
use crate::error::{Error, Result};
use crate::eval::baseline::{Blind, BLIND_SAMPLE};
use crate::input::{CollectOptions, Utf8Policy};
use crate::models::Models;
use crate::scorer::ScoreOptions;
use std::path::PathBuf;

/// How a scan starts in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new scan: refused if the folder holds one.
    New,
    /// A new scan over whatever the folder holds.
    Force,
    /// Finish the scan the folder holds (refused if models or settings differ).
    Resume,
}

/// What to scan and where the results go.
#[derive(Debug, Clone)]
pub struct ScanJob {
    /// Files and directories (or `-` for stdin).
    pub inputs: Vec<PathBuf>,
    /// The results' folder (created if needed).
    pub out: PathBuf,
    /// Reading, cutting and sharding (the label field is `options.collect.read`'s).
    pub options: ScanOptions,
    /// False-discovery rate at which documents are flagged.
    pub fdr: f64,
    /// Passages shown token by token in the report.
    pub heatmaps: usize,
    pub start: Start,
}

/// Where a scan's calibration came from. Either holds a sample of the non-members' texts
/// (`Calibration::sample`), the blind baseline's other side.
pub enum CalibrationSource {
    /// Made for this scan on known non-members: the file's text (saved as
    /// `calibration.json`).
    Made { json: String },
    /// A calibration file.
    File(PathBuf),
}

/// A scan's calibrated decision.
pub struct ScanDecision {
    pub decision: Decision,
    pub source: CalibrationSource,
}

/// What a scan tells its caller as it goes.
pub enum Event<'a> {
    /// Something the user should know that does not stop the scan.
    Warning(String),
    /// After each group of passages: documents, passages and text bytes done.
    Progress {
        documents: u64,
        passages: u64,
        bytes: u64,
    },
    /// Every passage scored; the outputs come next.
    Scanned(&'a RunStats),
}

/// Everything a scan's results depend on besides the models and the calibration, taken from
/// the library objects themselves. Each is destructured whole, so a new option is a compile
/// error here until it is part of the identity (or said not to be): a `--resume` or a merge
/// can never mix records made with different settings unchecked.
pub fn settings_of(
    scoring: &ScoreOptions,
    dtype: &str,
    options: &ScanOptions,
    inputs: &[PathBuf],
) -> ScanSettings {
    let ScoreOptions {
        ks,
        lowercase,
        scores,
        extraction,
        recall_prefix,
        member_prefix,
        gammas,
        freq_table,
        max_context,
        batch_tokens,
        // what a record keeps, not what it holds: the scan's records never keep details
        token_details: _,
        token_ranks: _,
    } = scoring;
    let ScanOptions {
        collect,
        chunk,
        // the shard is the header's own field
        shard: _,
    } = options;
    let CollectOptions {
        read,
        walk,
        // the scan's own way of reading, the same for every scan
        strict: _,
        relative_ids: _,
        segment_bytes,
        max_record_bytes: _,
        max_expanded_bytes,
        utf8,
    } = collect;
    let (types, type_not, globs) = walk
        .filter
        .as_ref()
        .map_or((&[][..], &[][..], &[][..]), |f| f.spec());
    ScanSettings {
        ks: ks.clone(),
        lowercase: *lowercase,
        max_context: *max_context,
        batch_tokens: *batch_tokens,
        dtype: dtype.to_string(),
        passage_tokens: chunk.passage_tokens,
        overlap: chunk.overlap,
        format: format!("{:?}", read.format).to_lowercase(),
        text_field: read.text_field.clone(),
        id_field: read.id_field.clone(),
        label_field: read.label_field.clone(),
        hidden: walk.hidden,
        follow_links: walk.follow_links,
        ignore_files: walk.ignore_files,
        types: types.to_vec(),
        type_not: type_not.to_vec(),
        globs: globs.to_vec(),
        encoding: read.encoding.map(|e| e.name().to_string()),
        invalid_utf8: match utf8 {
            Utf8Policy::Skip => "skip",
            Utf8Policy::Replace => "replace",
        }
        .to_string(),
        segment_bytes: *segment_bytes,
        max_expanded_bytes: *max_expanded_bytes,
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        scores: scores.clone(),
        extraction: *extraction,
        // the γs matter only beside a member prefix (and logs without one have none)
        gammas: member_prefix.is_some().then(|| gammas.clone()),
        recall_prefix: recall_prefix.clone(),
        member_prefix: member_prefix.clone(),
        freq_table: freq_table.clone(),
    }
}

/// Runs the whole scan of `job` with `models` (and `decision`, when calibrated) into
/// `job.out`, and returns its outputs once every file is written.
pub fn conduct(
    job: &ScanJob,
    models: &Models,
    decision: Option<&ScanDecision>,
    events: &mut dyn FnMut(Event),
) -> Result<Outputs> {
    let chunk = job.options.chunk;
    if chunk.passage_tokens < 2 || chunk.overlap >= chunk.passage_tokens {
        return Err(Error::Usage(
            "--passage-tokens must be at least 2 and --overlap smaller than it".into(),
        ));
    }
    if !(job.fdr > 0.0 && job.fdr < 1.0) {
        return Err(Error::Usage(format!(
            "--fdr {}: must be in (0, 1)",
            job.fdr
        )));
    }
    let out = &job.out;
    std::fs::create_dir_all(out).map_err(Error::output(out))?;
    let scorer = models.scorer()?;

    // 1. the header opens the log
    let calibration = match decision {
        None => None,
        Some(d) => Some(match &d.source {
            CalibrationSource::Made { json } => {
                log::calibration_ref_of(json.as_bytes(), &d.decision)
            }
            CalibrationSource::File(path) => {
                let cal = d.decision.calibration.settings.passage_tokens;
                if cal != Some(chunk.passage_tokens) {
                    events(Event::Warning(format!(
                        "the calibration's passages ({}) differ from this scan's ({} tokens): p-values assume alike passages; calibrate with --passage-tokens {}",
                        cal.map_or("whole inputs".to_string(), |p| format!("{p} tokens")),
                        chunk.passage_tokens,
                        chunk.passage_tokens
                    )));
                }
                log::calibration_ref(path, &d.decision)?
            }
        }),
    };
    let settings = settings_of(&models.options, &models.dtype, &job.options, &job.inputs);
    let header = RunHeader::new(
        models.target.identity(),
        models.reference.as_ref().map(|r| r.identity()),
        &settings,
        calibration,
        job.options.shard,
    )?;
    let mut log = match job.start {
        Start::Resume => LogWriter::resume(out, &header)?,
        Start::New | Start::Force => LogWriter::create(out, &header, job.start == Start::Force)?,
    };
    // a previous summary says the scan was finished; it is written again at the end
    let _ = std::fs::remove_file(out.join("summary.json"));
    if let Some(CalibrationSource::Made { json }) = decision.map(|d| &d.source) {
        write_file(&out.join("calibration.json"), json)?;
    }
    // the blind baseline's other side: the calibration's sample of its non-members' texts
    let nonmembers = decision
        .map(|d| &d.decision.calibration.sample)
        .filter(|s| !s.is_empty());

    // 2. one read scores every passage into the log and draws the blind sample
    let scoring = Scoring {
        scorer: &scorer,
        decision: decision.map(|d| &d.decision),
        label_field: job.options.collect.read.label_field.clone(),
    };
    let resumed_items = log.items();
    let sample = if nonmembers.is_some() {
        BLIND_SAMPLE
    } else {
        0
    };
    let stats = super::run(
        &scoring,
        &job.inputs,
        &job.options,
        &mut log,
        sample,
        |documents, passages, bytes| {
            events(Event::Progress {
                documents,
                passages,
                bytes,
            })
        },
    )?;
    events(Event::Scanned(&stats));
    drop(log);

    // 3. the log becomes the outputs; the heat maps' documents are read again
    let mut o = finish::collect(&[log::path(out)], out, job.fdr, job.heatmaps)?;
    let wanted: Vec<(String, usize)> = o
        .top_passages
        .iter()
        .map(|(d, i, _)| (d.clone(), *i))
        .collect();
    o.heatmaps = super::rescore_with_details(&scoring, &job.inputs, &job.options, &wanted)?;
    finish::best_first(&mut o.heatmaps, o.summary.verdict.score());

    // 4. the guards and the verdict; the files, the summary last
    if let Some(d) = decision {
        o.calibration_values = d
            .decision
            .calibration
            .scores
            .get(&d.decision.by)
            .cloned()
            .unwrap_or_default();
    }
    if let Some(non) = nonmembers {
        let blind = blind(&stats.sample, non);
        o.summary.verdict.blind_auroc = blind.map(|b| b.auroc);
        o.summary.verdict.blind_bound = blind.map(|b| b.bound);
    }
    super::verdict::conclude(&mut o);
    o.summary.run = RunInfo {
        seconds: stats.seconds,
        passages_scored: stats.passages,
        tokens_scored: stats.tokens,
        tokens_per_second: RunInfo::rate(stats.tokens, stats.seconds),
        reader_busy_seconds: stats.reader.busy_seconds,
        reader_waiting_seconds: stats.reader.waiting_seconds,
        resumed_after_items: resumed_items,
        files_opened: stats.collect.files as u64,
        hidden_left_out: stats.collect.hidden as u64,
        type_left_out: stats.collect.by_type as u64,
        glob_left_out: stats.collect.by_glob as u64,
        calibration_values: o.calibration_values.clone(),
        blind_auroc: o.summary.verdict.blind_auroc,
        blind_bound: o.summary.verdict.blind_bound,
        merged_from: Vec::new(),
        missing_shards: Vec::new(),
    };
    write_outputs(out, &o)?;
    Ok(o)
}

/// The blind baseline: a sample of the scanned passages against the calibration's sample of
/// its non-members' (cut as the calibration cut them), by a classifier that never sees the
/// model. `None` when a side has too few passages.
fn blind(scanned: &[String], nonmembers: &[String]) -> Option<Blind> {
    let mut texts: Vec<&str> = scanned.iter().map(String::as_str).collect();
    texts.extend(nonmembers.iter().take(BLIND_SAMPLE).map(String::as_str));
    let is_scanned: Vec<bool> = (0..texts.len()).map(|i| i < scanned.len()).collect();
    crate::eval::baseline::blind(&texts, &is_scanned, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkOptions;

    fn scan_options() -> ScanOptions {
        ScanOptions {
            collect: CollectOptions::default(),
            chunk: ChunkOptions {
                passage_tokens: 128,
                overlap: 0,
            },
            shard: None,
        }
    }

    fn identity(o: &ScoreOptions) -> serde_json::Value {
        let s = settings_of(o, "f32", &scan_options(), &[PathBuf::from("collection")]);
        serde_json::to_value(s).expect("serialises")
    }

    #[test]
    fn every_scoring_setting_is_part_of_the_resume_identity() {
        // written out whole (no `..Default::default()`): a new option does not compile here
        // until it is given a change below, as it does not compile in `settings_of`
        let base = ScoreOptions {
            ks: vec![0.2],
            lowercase: true,
            scores: None,
            extraction: None,
            recall_prefix: Some("a".repeat(64)),
            member_prefix: Some("b".repeat(64)),
            gammas: vec![0.5],
            freq_table: None,
            max_context: None,
            batch_tokens: 2048,
            token_details: false,
            token_ranks: false,
        };
        type Change = fn(&mut ScoreOptions);
        let identity_changes: [(&str, Change); 10] = [
            ("ks", |o| o.ks = vec![0.1, 0.2]),
            ("lowercase", |o| o.lowercase = false),
            ("scores", |o| o.scores = Some(vec!["neg_loss".into()])),
            ("extraction", |o| {
                o.extraction = Some(crate::score::extraction::Extraction::parse("50:50").unwrap())
            }),
            ("recall_prefix", |o| o.recall_prefix = Some("c".repeat(64))),
            ("member_prefix", |o| o.member_prefix = Some("d".repeat(64))),
            ("gammas", |o| o.gammas = vec![0.5, 1.0]),
            ("freq_table", |o| o.freq_table = Some("e".repeat(64))),
            ("max_context", |o| o.max_context = Some(512)),
            ("batch_tokens", |o| o.batch_tokens = 512),
        ];
        let kept_out: [(&str, Change); 2] = [
            ("token_details", |o| o.token_details = true),
            ("token_ranks", |o| o.token_ranks = true),
        ];
        let ScoreOptions {
            ks: _,
            lowercase: _,
            scores: _,
            extraction: _,
            recall_prefix: _,
            member_prefix: _,
            gammas: _,
            freq_table: _,
            max_context: _,
            batch_tokens: _,
            token_details: _,
            token_ranks: _,
        } = &base;
        let before = identity(&base);
        for (name, change) in identity_changes {
            let mut o = base.clone();
            change(&mut o);
            assert_ne!(
                identity(&o),
                before,
                "{name} is not part of the scan's identity"
            );
        }
        for (name, change) in kept_out {
            let mut o = base.clone();
            change(&mut o);
            assert_eq!(identity(&o), before, "{name} changes no score");
        }
    }

    #[test]
    fn reading_settings_are_part_of_the_resume_identity() {
        let o = ScoreOptions::default();
        let at = |s: &ScanOptions| {
            serde_json::to_value(settings_of(&o, "f32", s, &[PathBuf::from("c")])).unwrap()
        };
        let before = at(&scan_options());
        type Change = fn(&mut ScanOptions);
        let changes: [(&str, Change); 9] = [
            ("passage_tokens", |s| s.chunk.passage_tokens = 64),
            ("overlap", |s| s.chunk.overlap = 8),
            ("format", |s| {
                s.collect.read.format = crate::input::Format::Jsonl
            }),
            ("text_field", |s| s.collect.read.text_field = "body".into()),
            ("hidden", |s| s.collect.walk.hidden = !s.collect.walk.hidden),
            ("utf8", |s| s.collect.utf8 = Utf8Policy::Replace),
            ("segment_bytes", |s| s.collect.segment_bytes += 1),
            ("max_expanded_bytes", |s| s.collect.max_expanded_bytes /= 2),
            ("filter", |s| {
                s.collect.walk.filter =
                    crate::input::walk::Filter::new(&["rust".into()], &[], &[]).unwrap()
            }),
        ];
        for (name, change) in changes {
            let mut s = scan_options();
            change(&mut s);
            assert_ne!(at(&s), before, "{name} is not part of the scan's identity");
        }
    }
}
