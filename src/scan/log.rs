//! The scan's append-only log, `DIR/scan.log.jsonl`: a run header, then for every group of
//! passages scored together their records, the documents they completed and the files
//! skipped, each group closed by a `commit` line. A process killed at any moment leaves a
//! prefix of this file; everything after the last commit (a half-written group, a torn
//! line) is cut off on `--resume`, and the scan goes on from the item after it. Groups are
//! formed the same way from the same point, so the resumed log equals an uninterrupted one.

use crate::error::{Error, Result};
use crate::record::PassageRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};

/// Format version of the log.
pub const VERSION: u32 = 1;

/// What a scan was run with: a resumed scan and merged shards must agree on all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    pub miascan_scan: u32,
    pub model: crate::model::ModelIdentity,
    pub reference: Option<crate::model::ModelIdentity>,
    /// Scoring, chunking and reading settings.
    pub settings: Value,
    /// sha256 of the calibration file, its deciding score and FPR.
    pub calibration: Option<Value>,
    /// `[index, count]` of this shard (`None`: the whole collection).
    pub shard: Option<[u64; 2]>,
}

/// Everything a scan's results depend on besides the models and the calibration: a resume
/// must match it, and merged shards must share it. Serialised into the header's `settings`
/// (`scores` and `extraction` only when given, so logs of earlier versions still resume).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanSettings {
    pub ks: Vec<f64>,
    pub lowercase: bool,
    pub max_context: Option<usize>,
    pub batch_tokens: usize,
    pub dtype: String,
    pub passage_tokens: usize,
    pub overlap: usize,
    pub format: String,
    pub text_field: String,
    pub id_field: String,
    pub label_field: Option<String>,
    pub hidden: bool,
    pub follow_links: bool,
    /// Ignore files respected (always written: logs of versions that read everything
    /// have none, and do not resume under these rules).
    pub ignore_files: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub type_not: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub globs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    pub invalid_utf8: String,
    pub segment_bytes: usize,
    /// The bound on a compressed file's expansion (written only when not the default, so
    /// logs of earlier versions still resume).
    #[serde(skip_serializing_if = "is_default_expanded")]
    pub max_expanded_bytes: u64,
    pub inputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extraction: Option<crate::score::extraction::Extraction>,
    /// sha256 of the ReCaLL prefix (`--recall-prefix`): records scored after another
    /// prefix must not be mixed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_prefix: Option<String>,
    /// sha256 of Con-ReCall's member prefix, and its γs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gammas: Option<Vec<f64>>,
    /// sha256 of DC-PDD's token frequency table (`--freq-table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freq_table: Option<String>,
}

fn is_default_expanded(n: &u64) -> bool {
    *n == crate::input::open::DEFAULT_MAX_EXPANDED
}

impl RunHeader {
    /// The header of a scan with these models, settings, calibration (see
    /// [`calibration_ref`]) and shard `(index, count)`.
    pub fn new(
        model: &crate::model::ModelIdentity,
        reference: Option<&crate::model::ModelIdentity>,
        settings: &ScanSettings,
        calibration: Option<Value>,
        shard: Option<(u64, u64)>,
    ) -> Result<RunHeader> {
        Ok(RunHeader {
            miascan_scan: VERSION,
            model: model.clone(),
            reference: reference.cloned(),
            settings: serde_json::to_value(settings)
                .map_err(|e| Error::Internal(format!("scan settings: {e}")))?,
            calibration,
            shard: shard.map(|(i, n)| [i, n]),
        })
    }

    /// What differs from `other`, as `key: this vs that` lines (empty when equal).
    pub fn differences(&self, other: &RunHeader, ignore_shard: bool) -> Vec<String> {
        let mut a = serde_json::to_value(self).expect("serialises");
        let mut b = serde_json::to_value(other).expect("serialises");
        if ignore_shard {
            a["shard"] = Value::Null;
            b["shard"] = Value::Null;
        }
        let mut out = Vec::new();
        diff("", &a, &b, &mut out);
        out
    }
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.dedup();
            let mut seen = std::collections::HashSet::new();
            for k in keys {
                if seen.insert(k) {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    diff(
                        &p,
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// What a scan's header records of its calibration: the file's hash (first 16 hex digits
/// of its sha256), the deciding score, the FPR and the number of non-members. A resume with
/// another calibration file, or one deciding otherwise, is refused.
pub fn calibration_ref(path: &Path, d: &crate::calibrate::Decision) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|source| Error::InputIo {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(calibration_ref_of(&bytes, d))
}

/// [`calibration_ref`] of a calibration file's bytes (one made by the scan itself, written
/// once the scan's folder is known to be free).
pub fn calibration_ref_of(bytes: &[u8], d: &crate::calibrate::Decision) -> Value {
    use sha2::{Digest, Sha256};
    let sha: String = Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({"sha256": sha, "decided_by": d.by, "fpr": d.fpr, "n": d.calibration.n})
}

/// A document read completely (or cut short by an error after some of it was read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentLine {
    pub id: String,
    pub source: String,
    /// Bytes of text read.
    pub bytes: u64,
    pub passages: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<bool>,
    /// Why the document was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Invalid UTF-8 was replaced (`--invalid-utf8 replace`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
}

/// A file or row not scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    pub source: String,
    pub reason: String,
}

impl SkippedLine {
    /// Left out by an ignore file (by the user's rules, not for a problem of its own).
    pub fn is_exclusion(&self) -> bool {
        self.reason.starts_with(crate::input::walk::IGNORED)
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLine {
    Header(Box<RunHeader>),
    Passage(Box<PassageRecord>),
    Document(DocumentLine),
    Skipped(SkippedLine),
    /// Everything before is complete; `items` counts passages, documents and skips so far.
    Commit {
        items: u64,
    },
}

/// The log of a scan directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("scan.log.jsonl")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + use<> {
    Error::output(path)
}

/// Appends lines; [`LogWriter::commit`] makes a group durable.
pub struct LogWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    items: u64,
}

impl LogWriter {
    /// Starts a new log (refusing to overwrite one unless `overwrite`).
    pub fn create(dir: &Path, header: &RunHeader, overwrite: bool) -> Result<LogWriter> {
        let path = path(dir);
        if path.exists() && !overwrite {
            return Err(Error::Usage(format!(
                "{} already holds a scan: add --resume to finish it, or --force to start over",
                dir.display()
            )));
        }
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut w = LogWriter {
            file: std::io::BufWriter::new(file),
            path,
            items: 0,
        };
        w.write(&LogLine::Header(Box::new(header.clone())))?;
        w.flush()?;
        Ok(w)
    }

    /// Reopens a log for `--resume`: checks its header against `header`, cuts everything
    /// after the last commit, and returns the writer with the number of items done.
    /// A log that is absent, or was cut before its header was complete, starts anew.
    pub fn resume(dir: &Path, header: &RunHeader) -> Result<LogWriter> {
        let path = path(dir);
        if !path.exists() {
            return LogWriter::create(dir, header, false);
        }
        let read = match read_committed(&path) {
            Ok(r) => r,
            Err(Error::InvalidInput { line: Some(1), .. }) => {
                return LogWriter::create(dir, header, true)
            }
            Err(e) => return Err(e),
        };
        let diffs = read.header.differences(header, false);
        if !diffs.is_empty() {
            return Err(Error::Usage(format!(
                "cannot resume {}: the scan there was run differently ({}); run with the same \
                 settings, or start over with --force",
                dir.display(),
                diffs.join("; ")
            )));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.set_len(read.committed_bytes).map_err(io(&path))?;
        file.seek(std::io::SeekFrom::End(0)).map_err(io(&path))?;
        Ok(LogWriter {
            file: std::io::BufWriter::new(file),
            path,
            items: read.items,
        })
    }

    /// Items (passages, documents, skips) committed so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn write(&mut self, line: &LogLine) -> Result<()> {
        if matches!(
            line,
            LogLine::Passage(_) | LogLine::Document(_) | LogLine::Skipped(_)
        ) {
            self.items += 1;
        }
        let s = serde_json::to_string(line).expect("log lines serialise");
        writeln!(self.file, "{s}").map_err(io(&self.path))
    }

    /// Closes a group: writes the commit line and puts it on disk.
    pub fn commit(&mut self) -> Result<()> {
        let items = self.items;
        self.write(&LogLine::Commit { items })?;
        self.flush()?;
        self.file.get_ref().sync_data().map_err(io(&self.path))
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(io(&self.path))
    }
}

/// What a log holds up to its last commit.
pub struct Committed {
    pub header: RunHeader,
    pub items: u64,
    pub committed_bytes: u64,
}

/// Reads a log's header and finds its last commit (a torn or half-written tail is ignored).
pub fn read_committed(path: &Path) -> Result<Committed> {
    let mut header = None;
    let (mut items, mut committed_bytes, mut pos) = (0, 0, 0u64);
    // a group with a failed passage and every group after it count as not committed: a
    // resume scores them again
    let mut failed = false;
    for_each_line(path, |line, raw_len, complete| {
        pos += raw_len;
        if !complete {
            return Ok(());
        }
        match line {
            Some(LogLine::Header(h)) if header.is_none() => {
                header = Some(*h);
                committed_bytes = pos;
            }
            Some(LogLine::Passage(p)) if p.failed.is_some() => failed = true,
            Some(LogLine::Commit { items: n }) if !failed => {
                items = n;
                committed_bytes = pos;
            }
            _ => {}
        }
        Ok(())
    })?;
    let header = header.ok_or_else(|| Error::InvalidInput {
        path: path.to_path_buf(),
        line: Some(1),
        message: "not a miascan scan log (no header)".into(),
    })?;
    Ok(Committed {
        header,
        items,
        committed_bytes,
    })
}

/// Calls `f` with each line parsed (`None` if it does not parse), its length in bytes, and
/// whether it ended with a newline.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(Option<LogLine>, u64, bool) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| Error::InputIo {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|source| Error::InputIo {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        let complete = buf.last() == Some(&b'\n');
        let line = serde_json::from_slice::<LogLine>(&buf).ok();
        f(line, n as u64, complete)?;
    }
}

/// Reads the committed lines of a log, in order (the header excluded), in one pass: the
/// lines of a group are held until its commit line, and a group never committed is
/// dropped.
pub fn read_lines(path: &Path, mut f: impl FnMut(LogLine) -> Result<()>) -> Result<RunHeader> {
    let mut header = None;
    let mut group: Vec<LogLine> = Vec::new();
    let mut unparsed: Option<u64> = None;
    let mut pos = 0u64;
    for_each_line(path, |line, n, complete| {
        pos += n;
        if !complete {
            return Ok(());
        }
        match line {
            Some(LogLine::Header(h)) if header.is_none() => header = Some(*h),
            Some(LogLine::Commit { .. }) => {
                if let Some(at) = unparsed {
                    return Err(Error::InvalidInput {
                        path: path.to_path_buf(),
                        line: None,
                        message: format!("a committed line at byte {at} does not parse"),
                    });
                }
                group.drain(..).try_for_each(&mut f)?;
            }
            Some(l) => group.push(l),
            None => {
                unparsed.get_or_insert(pos - n);
            }
        }
        Ok(())
    })?;
    header.ok_or_else(|| Error::InvalidInput {
        path: path.to_path_buf(),
        line: Some(1),
        message: "not a miascan scan log (no header)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sha: &str) -> RunHeader {
        RunHeader {
            miascan_scan: VERSION,
            model: crate::model::ModelIdentity {
                name: "m".into(),
                sha256: sha.into(),
                compute: "f32".into(),
                device: "cpu".into(),
                revision: None,
            },
            reference: None,
            settings: serde_json::json!({"passage_tokens": 128}),
            calibration: None,
            shard: None,
        }
    }

    fn skip(n: usize) -> LogLine {
        LogLine::Skipped(SkippedLine {
            source: format!("f{n}"),
            reason: "r".into(),
        })
    }

    #[test]
    fn resume_cuts_after_the_last_commit_and_refuses_other_settings() {
        let d = tempfile::tempdir().unwrap();
        let mut w = LogWriter::create(d.path(), &header("aa"), false).unwrap();
        w.write(&skip(1)).unwrap();
        w.write(&skip(2)).unwrap();
        w.commit().unwrap();
        w.write(&skip(3)).unwrap();
        drop(w);
        // a torn line at the end
        let p = path(d.path());
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"skipped\":{\"sou").unwrap();
        drop(f);
        assert!(LogWriter::create(d.path(), &header("aa"), false).is_err());
        let e = LogWriter::resume(d.path(), &header("bb"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("model.sha256: \"aa\" vs \"bb\""), "{e}");
        let mut w = LogWriter::resume(d.path(), &header("aa")).unwrap();
        assert_eq!(w.items(), 2);
        w.write(&skip(3)).unwrap();
        w.commit().unwrap();
        drop(w);
        let mut seen = Vec::new();
        read_lines(&p, |l| {
            seen.push(l);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [skip(1), skip(2), skip(3)]);
    }

    #[test]
    fn resume_scores_again_from_the_first_group_with_a_failed_passage() {
        let d = tempfile::tempdir().unwrap();
        let passage = |id: &str, failed: bool| {
            let mut r = PassageRecord::new(id.into(), header("aa").model);
            r.failed = failed.then(|| "model server x: HTTP 500".to_string());
            LogLine::Passage(Box::new(r))
        };
        let mut w = LogWriter::create(d.path(), &header("aa"), false).unwrap();
        w.write(&passage("a", false)).unwrap();
        w.commit().unwrap();
        w.write(&passage("b", true)).unwrap();
        w.write(&skip(1)).unwrap();
        w.commit().unwrap();
        w.write(&passage("c", false)).unwrap();
        w.commit().unwrap();
        drop(w);
        let w = LogWriter::resume(d.path(), &header("aa")).unwrap();
        assert_eq!(
            w.items(),
            1,
            "the groups from the failed one on are done again"
        );
        drop(w);
        let mut seen = Vec::new();
        read_lines(&path(d.path()), |l| {
            seen.push(l);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [passage("a", false)]);
    }
}
