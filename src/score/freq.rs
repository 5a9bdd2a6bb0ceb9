//! DC-PDD's token frequency table (`miascan freq build`, `--freq-table FILE`) and the score
//! (Zhang et al., EMNLP 2024, "Pretraining Data Detection for Large Language Models: A
//! Divergence-based Calibration Method").
//!
//! The table counts every text token of a reference corpus in one tokenizer's vocabulary.
//! It is tied to that vocabulary by its hash: a table built with another tokenizer would
//! read every id as some other token, so it is refused rather than used.
//!
//! The file: the magic `MIAFREQ\0`, a little-endian u32 version and u32 header length, the
//! header (JSON: [`FreqHeader`]), `vocab_size` little-endian u64 counts, and the sha256 of
//! every byte before it. The checksum is the table's identity (what calibrations store) and
//! catches a truncated or altered file.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

const MAGIC: &[u8; 8] = b"MIAFREQ\0";
/// Format version of table files.
pub const VERSION: u32 = 1;
/// DC-PDD's upper clip of a token's contribution (the authors' `a`).
pub const DCPDD_CLIP: f64 = 0.01;
/// Largest table file read: a vocabulary of 64 M tokens.
const MAX_FILE_BYTES: u64 = 512 << 20;

/// What a table says of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FreqHeader {
    /// The vocabulary's hash ([`crate::model::Tokenizer::vocab_hash`]).
    pub vocab_hash: String,
    /// The tokenizer's kind, for messages.
    pub tokenizer: String,
    pub vocab_size: usize,
    /// Text tokens counted (the BOS is not a text token and is not counted).
    pub total: u64,
    /// Documents (files, rows) the tokens came from.
    pub documents: u64,
    /// Files or rows the build could not read (or read only in part), each listed when it
    /// ran: a table over a corpus with gaps says so.
    #[serde(default)]
    pub skipped: u64,
    /// How the frequencies are smoothed: `laplace` = `(count + 1) / (total + vocab_size)`.
    pub smoothing: String,
    /// The program that built it.
    pub built_by: String,
}

/// Token counts over a reference corpus, in one vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct FreqTable {
    pub header: FreqHeader,
    counts: Vec<u64>,
    /// sha256 (hex) of the file's bytes before the checksum: the table's identity.
    sha256: String,
}

/// Counts tokens; one per thread, merged by [`Counter::merge`].
#[derive(Debug, Clone)]
pub struct Counter {
    pub counts: Vec<u64>,
    pub documents: u64,
}

impl Counter {
    pub fn new(vocab_size: usize) -> Self {
        Counter {
            counts: vec![0; vocab_size],
            documents: 0,
        }
    }

    /// Counts the text tokens `ids`. An id outside the vocabulary is a tokenizer bug: an
    /// error, never a silent drop.
    pub fn add(&mut self, ids: &[u32]) -> Result<()> {
        let n = self.counts.len();
        for &id in ids {
            let c = self.counts.get_mut(id as usize).ok_or_else(|| {
                Error::Internal(format!(
                    "token id {id} outside the vocabulary of {n} tokens"
                ))
            })?;
            *c += 1;
        }
        Ok(())
    }

    pub fn merge(mut self, other: Counter) -> Counter {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.documents += other.documents;
        self
    }

    /// The table of these counts for the vocabulary `vocab_hash` of a `tokenizer` kind;
    /// `skipped` files or rows of the corpus could not be read.
    pub fn finish(self, vocab_hash: &str, tokenizer: &str, skipped: u64) -> FreqTable {
        let header = FreqHeader {
            vocab_hash: vocab_hash.to_string(),
            tokenizer: tokenizer.to_string(),
            vocab_size: self.counts.len(),
            total: self.counts.iter().sum(),
            documents: self.documents,
            skipped,
            smoothing: "laplace".into(),
            built_by: format!("miascan {}", env!("CARGO_PKG_VERSION")),
        };
        let sha256 = crate::model::tokenizer::hex(&Sha256::digest(body(&header, &self.counts)));
        FreqTable {
            header,
            counts: self.counts,
            sha256,
        }
    }
}

/// The file's bytes before the checksum.
fn body(header: &FreqHeader, counts: &[u64]) -> Vec<u8> {
    let h = serde_json::to_vec(header).expect("a header serialises");
    let mut out = Vec::with_capacity(16 + h.len() + counts.len() * 8 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    for c in counts {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out
}

impl FreqTable {
    /// The smoothed frequency of `id`: `(count + 1) / (total + vocab_size)`; `None` outside
    /// the vocabulary.
    pub fn frequency(&self, id: u32) -> Option<f64> {
        let c = *self.counts.get(id as usize)?;
        Some((c as f64 + 1.0) / (self.header.total as f64 + self.counts.len() as f64))
    }

    pub fn count(&self, id: u32) -> Option<u64> {
        self.counts.get(id as usize).copied()
    }

    /// sha256 (hex) of the table: what calibrations and scan logs store.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Writes the table to `path` (through a temporary file, so a crash leaves no partial
    /// table under the name).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = Error::output(path);
        let mut bytes = body(&self.header, &self.counts);
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(&io)?;
        std::fs::rename(&tmp, path).map_err(&io)
    }

    /// Reads and checks a table: its magic, version, header, length, checksum and total.
    pub fn load(path: &Path) -> Result<FreqTable> {
        let bad = |message: String| Error::InvalidInput {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        let io = |source| Error::InputIo {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(&io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(bad(format!(
                "{len} bytes: larger than any frequency table ({MAX_FILE_BYTES} bytes at most)"
            )));
        }
        let bytes = std::fs::read(path).map_err(&io)?;
        Self::parse(&bytes).map_err(bad)
    }

    fn parse(bytes: &[u8]) -> std::result::Result<FreqTable, String> {
        if bytes.len() < 16 + 32 || &bytes[..8] != MAGIC {
            return Err("not a miascan frequency table (made by `miascan freq build`)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "frequency table version {version} (expected {VERSION})"
            ));
        }
        let (body_bytes, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body_bytes).as_slice() != digest {
            return Err("checksum mismatch: the file is truncated or was altered".into());
        }
        let header_len = u32_at(12) as usize;
        let header_end = 16usize
            .checked_add(header_len)
            .filter(|&e| e <= body_bytes.len())
            .ok_or("header runs past the end of the file")?;
        let header: FreqHeader = serde_json::from_slice(&body_bytes[16..header_end])
            .map_err(|e| format!("header: {e}"))?;
        let rest = &body_bytes[header_end..];
        if header.vocab_size.checked_mul(8) != Some(rest.len()) {
            return Err(format!(
                "{} bytes of counts for a vocabulary of {} tokens (expected {})",
                rest.len(),
                header.vocab_size,
                header.vocab_size.saturating_mul(8)
            ));
        }
        if header.smoothing != "laplace" {
            return Err(format!("unknown smoothing {:?}", header.smoothing));
        }
        let counts: Vec<u64> = rest
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let total = counts
            .iter()
            .try_fold(0u64, |a, &c| a.checked_add(c))
            .ok_or("the counts overflow")?;
        if total != header.total {
            return Err(format!(
                "the counts sum to {total}, the header says {}",
                header.total
            ));
        }
        Ok(FreqTable {
            header,
            counts,
            sha256: crate::model::tokenizer::hex(digest),
        })
    }
}

/// DC-PDD (Zhang et al. 2024): over the first occurrence of each distinct token among the
/// scored positions, `α_i = p_i · log(1 / f_i)` with `p_i` the model's probability of the
/// token and `f_i` its smoothed corpus frequency ([`FreqTable::frequency`]), each `α_i`
/// clipped from above at [`DCPDD_CLIP`]; the score is their mean. A member's rare tokens
/// get more probability than their frequency explains: higher = member. `None` when
/// nothing was scored or an id is outside the table's vocabulary.
pub fn dcpdd(ids: &[u32], logp: &[f64], table: &FreqTable) -> Option<f64> {
    if ids.len() != logp.len() || ids.is_empty() {
        return None;
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut sum = 0.0;
    let mut n = 0usize;
    for (&id, &lp) in ids.iter().zip(logp) {
        if !seen.insert(id) {
            continue;
        }
        let f = table.frequency(id)?;
        sum += (lp.exp() * -f.ln()).min(DCPDD_CLIP);
        n += 1;
    }
    Some(sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(counts: &[u64]) -> FreqTable {
        let mut c = Counter::new(counts.len());
        c.counts.copy_from_slice(counts);
        c.documents = 1;
        c.finish("vocab", "test", 0)
    }

    #[test]
    fn laplace_smoothing_by_hand() {
        // counts [3, 0, 1]: total 4, V 3 → (c + 1) / 7
        let t = table(&[3, 0, 1]);
        assert_eq!(t.frequency(0), Some(4.0 / 7.0));
        assert_eq!(t.frequency(1), Some(1.0 / 7.0));
        assert_eq!(t.frequency(3), None);
    }

    #[test]
    fn dcpdd_takes_first_occurrences_and_clips_at_a() {
        let t = table(&[3, 0, 1]);
        // ids [1, 0, 1]: the second 1 is left out
        let lp = [(0.001f64).ln(), (0.5f64).ln(), 0.0];
        let a1 = 0.001 * (7.0f64).ln(); // 0.0019 < 0.01: kept
                                        // token 0: 0.5 · ln(7/4) = 0.28, clipped to 0.01
        let got = dcpdd(&[1, 0, 1], &lp, &t).unwrap();
        assert!((got - (a1 + DCPDD_CLIP) / 2.0).abs() < 1e-15, "{got}");
        assert_eq!(dcpdd(&[], &[], &t), None);
        assert_eq!(dcpdd(&[5], &[0.0], &t), None);
    }

    #[test]
    fn a_table_survives_its_file_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let t = table(&[3, 0, 1, 7]);
        t.save(&p).unwrap();
        let back = FreqTable::load(&p).unwrap();
        assert_eq!(back, t);
        let bytes = std::fs::read(&p).unwrap();
        let damaged = |b: Vec<u8>, want: &str| {
            std::fs::write(&p, b).unwrap();
            let e = FreqTable::load(&p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("f.bin"), "{want}: {e}");
        };
        damaged(bytes[..bytes.len() - 9].to_vec(), "checksum");
        let mut flipped = bytes.clone();
        let at = bytes.len() - 40;
        flipped[at] ^= 1;
        damaged(flipped, "checksum");
        damaged(
            b"PK\x03\x04 not a table at all, really not, 48 bytes or more....".to_vec(),
            "not a miascan frequency table",
        );
        damaged(Vec::new(), "not a miascan frequency table");
    }
}
