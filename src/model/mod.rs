//! Models: what `--model` names, loaded into a tokenizer plus a causal LM that returns hidden
//! states for every position (candle-transformers' models keep only the last one).

pub mod arch;
pub mod decoder;
pub mod gguf;
pub mod hf;
pub mod layers;
pub mod safetensors;
pub mod source;
pub mod tokenizer;
pub mod weight;

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use gguf::Gguf;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
pub use tokenizer::Tokenizer;
pub use weight::{Compute, Residency};

/// Several token sequences packed into one forward pass: their tokens are concatenated, and
/// attention never crosses from one sequence to another (positions restart at 0 in each).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub positions: Vec<u32>,
    /// `(start, len)` of each sequence in `ids`.
    pub spans: Vec<(usize, usize)>,
}

impl Batch {
    pub fn push(&mut self, seq: &[u32]) {
        self.spans.push((self.ids.len(), seq.len()));
        self.ids.extend_from_slice(seq);
        self.positions.extend(0..seq.len() as u32);
    }

    /// Adds a sequence that continues a prefix of `offset` tokens: its positions are
    /// `offset..offset + len` (for [`CausalLm::forward_after`]).
    pub fn push_after(&mut self, seq: &[u32], offset: usize) {
        self.spans.push((self.ids.len(), seq.len()));
        self.ids.extend_from_slice(seq);
        self.positions
            .extend((0..seq.len() as u32).map(|p| p + offset as u32));
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A causal language model with its hidden states exposed.
pub trait CausalLm: Send + Sync {
    /// Final-normed hidden states `[T, hidden]` for every position of the batch.
    fn forward(&self, batch: &Batch) -> Result<Tensor>;
    /// The output projection `[vocab, hidden]` (tied to the embeddings where the model is).
    fn lm_head(&self) -> &weight::Weight;
    /// `tanh` soft-capping of the logits (`cap · tanh(logits / cap)`), if the model uses it.
    fn logit_softcap(&self) -> Option<f64> {
        None
    }
    /// Architecture facts, from the file's own metadata or config.
    fn describe(&self) -> ArchInfo;
    /// Longest sequence the model was trained for.
    fn context_length(&self) -> usize {
        self.describe().context_length
    }
    /// The key/value state of a prefix `ids` (a prompt every later sequence is conditioned
    /// on: ReCaLL's non-member prefix), computed once for [`CausalLm::forward_after`].
    fn prefix(&self, _ids: &[u32]) -> Result<Prefix> {
        Err(no_prefix(&self.describe().architecture))
    }
    /// [`CausalLm::forward`] with every sequence of the batch attending to `prefix` first:
    /// the same hidden states as the sequence's positions of a forward over `prefix + seq`,
    /// without running the prefix again. The batch's positions must continue the prefix
    /// ([`Batch::push_after`] with `prefix.len`).
    fn forward_after(&self, _batch: &Batch, _prefix: &Prefix) -> Result<Tensor> {
        Err(no_prefix(&self.describe().architecture))
    }
}

/// The refusal of an architecture without a key/value prefix path.
fn no_prefix(architecture: &str) -> Error {
    Error::Usage(format!(
        "conditioning on a prefix is not supported for the {architecture} architecture"
    ))
}

/// The key/value state of a prefix, one entry per layer (keys already rotated for positions
/// `0..len`): computed once, reused for every batch conditioned on it.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// The prefix's length in tokens: conditioned sequences' positions start here.
    pub len: usize,
    pub layers: Vec<layers::KvPrefix>,
}

/// Architecture facts for `inspect` and reports.
#[derive(Debug, Clone, Serialize)]
pub struct ArchInfo {
    pub architecture: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Width of the feed-forward block.
    pub ffn: usize,
    /// Whether the feed-forward block is gated (three matrices: gate, up, down) rather than
    /// two (up, down).
    pub gated_ffn: bool,
    pub vocab: usize,
    pub context_length: usize,
    pub sliding_window: Option<usize>,
}

impl ArchInfo {
    /// Floating-point operations of one token's forward and LM head (2 per multiply-add): the
    /// projections, the feed-forward block, the head, and causal attention over `context`
    /// earlier positions on average. Norms, activations and the soft-max are left out: this
    /// is the matmul work that bounds the speed (`scripts/bench/bench.sh`'s f32 limit).
    pub fn flops_per_token(&self, context: f64) -> f64 {
        let (h, q, kv) = (
            self.hidden as f64,
            (self.heads * self.head_dim) as f64,
            (self.kv_heads * self.head_dim) as f64,
        );
        let ffn = self.ffn as f64 * h * if self.gated_ffn { 3.0 } else { 2.0 };
        let proj = h * (q + 2.0 * kv) + q * h;
        let attn = 2.0 * q * context;
        2.0 * (self.layers as f64 * (proj + ffn + attn) + self.vocab as f64 * h)
    }
}

/// What identifies the model in every output line.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ModelIdentity {
    /// File name (GGUF) or folder name (checkpoint) of the model.
    pub name: String,
    /// First 16 hex digits of the file's sha256 (GGUF), or of the sha256 over the weight
    /// files' sha256s in name order (checkpoint folder).
    pub sha256: String,
    /// How the weights are computed: `f32` (dequantised).
    #[serde(default)]
    pub compute: String,
    #[serde(default)]
    pub device: String,
    /// Hub models: the commit the revision resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A loaded model: tokenizer, network, identity.
pub struct Model {
    pub tokenizer: Tokenizer,
    pub lm: Box<dyn CausalLm>,
    pub identity: ModelIdentity,
    pub path: PathBuf,
    /// Total weights in the file.
    pub parameters: u64,
    /// Quantisation types in the file, e.g. `Q4_1 x 210, F32 x 61`.
    pub file_dtypes: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish()
    }
}

/// How a model is loaded: where and in what dtype it computes (f32, f16, bf16; bf16 needs a
/// GPU: candle has no bf16 matmul on CPU), how its weights are held between forward passes,
/// how its weight matrices are multiplied, and whether a hub id may be downloaded. The
/// default: the CPU, f32, weights as stored, exact products, downloads allowed.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    /// Exact f32 products, or GGUF blocks multiplied as stored (`--compute fast`).
    pub compute: Compute,
    /// Hub models from the local cache only.
    pub offline: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: DType::F32,
            residency: Residency::default(),
            compute: Compute::default(),
            offline: false,
        }
    }
}

impl Model {
    /// Loads what `--model` names: a GGUF file, a checkpoint folder, or a hub id
    /// `org/name[@revision]` (downloaded into the Hugging Face cache unless `offline`; see
    /// [`source`]).
    pub fn open(spec: &str, opts: &LoadOptions) -> Result<Model> {
        check_dtype(&opts.device, opts.dtype)?;
        match source::ModelSpec::parse(spec) {
            source::ModelSpec::Local(p) => Model::load_with(&p, opts),
            source::ModelSpec::Hub { repo, revision } => {
                check_compute(opts, true)?;
                let snap =
                    source::resolve_hub(&repo, &revision, opts.offline, source::Need::Model)?;
                let mut m = Model::load_dir(&snap.dir, &opts.device, opts.dtype, opts.residency)?;
                m.identity.name = repo;
                m.identity.revision = Some(snap.commit);
                Ok(m)
            }
        }
    }

    /// Loads a model file or checkpoint folder in f32 on `device`, weights as stored.
    pub fn load(path: &Path, device: &Device) -> Result<Model> {
        Model::load_with(
            path,
            &LoadOptions {
                device: device.clone(),
                ..LoadOptions::default()
            },
        )
    }

    /// Loads a model file or checkpoint folder as `opts` say (`offline` plays no part).
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let (device, dtype, residency) = (&opts.device, opts.dtype, opts.residency);
        if !path.exists() {
            return Err(Error::ModelIo {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        check_compute(opts, path.is_dir())?;
        if path.is_dir() {
            return Self::load_dir(path, device, dtype, residency);
        }
        let mut g = Gguf::open(path)?;
        g.set_dtype(dtype);
        g.set_residency(residency);
        g.set_compute(opts.compute);
        let tokenizer = Tokenizer::from_gguf(&g)?;
        let lm = arch::load_gguf(&mut g, device)?;
        if lm.lm_head().dims2()?.0 != tokenizer.vocab_size() {
            return Err(g.invalid(format!(
                "the output layer has {} rows but the tokenizer {} tokens",
                lm.lm_head().dims2()?.0,
                tokenizer.vocab_size()
            )));
        }
        let identity = ModelIdentity {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: sha256_file(path)?[..16].to_string(),
            compute: match opts.compute {
                Compute::Exact => dtype_name(dtype).into(),
                Compute::Fast => FAST_IDENTITY.into(),
            },
            device: device_name(device),
            revision: None,
        };
        Ok(Model {
            tokenizer,
            lm,
            identity,
            path: path.to_path_buf(),
            parameters: g.parameter_count(),
            file_dtypes: g.dtype_summary(),
        })
    }
}

impl Model {
    /// A Hugging Face checkpoint folder; identity = folder name + hash of the weight files.
    fn load_dir(dir: &Path, device: &Device, dtype: DType, residency: Residency) -> Result<Model> {
        let ck = hf::load(dir, device, dtype, residency)?;
        let mut h = Sha256::new();
        for f in &ck.files {
            h.update(sha256_file(f)?.as_bytes());
        }
        let name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Model {
            tokenizer: ck.tokenizer,
            identity: ModelIdentity {
                name,
                sha256: tokenizer::hex(&h.finalize())[..16].to_string(),
                compute: dtype_name(dtype).into(),
                device: device_name(device),
                revision: None,
            },
            path: dir.to_path_buf(),
            parameters: ck.parameters,
            file_dtypes: format!("safetensors, {} file(s)", ck.files.len()),
            lm: ck.lm,
        })
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| Error::ModelIo {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(tokenizer::hex(&h.finalize()))
}

/// Parses `--device`: `cpu`, `cuda`, `cuda:N` or `metal`. CUDA and Metal need the cargo
/// features of the same names.
pub fn parse_device(spec: &str) -> Result<Device> {
    let err = |e: candle_core::Error| Error::Device(format!("{spec}: {}", crate::error::plain(&e)));
    match spec {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(err),
        "metal" => Device::new_metal(0).map_err(err),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::new_cuda(n).map_err(err),
            _ => Err(Error::Device(format!(
                "{spec}: unknown device (expected cpu, cuda, cuda:N or metal)"
            ))),
        },
    }
}

/// Refuses dtypes the device cannot compute in.
fn check_dtype(device: &Device, dtype: DType) -> Result<()> {
    match (device, dtype) {
        (_, DType::F32 | DType::F16) => Ok(()),
        (Device::Cpu, DType::BF16) => Err(Error::Device(
            "bf16: candle has no bf16 matmul on CPU; use --dtype f32 or f16".into(),
        )),
        (_, DType::BF16) => Ok(()),
        (_, other) => Err(Error::Device(format!("dtype {other:?} is not supported"))),
    }
}

/// Parses `--dtype`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(Error::Usage(format!(
            "unknown dtype {other} (f32, f16, bf16)"
        ))),
    }
}

/// `ModelIdentity::compute` of a model loaded with `--compute fast`: records, calibrations
/// and scan logs made this way name it, so none is mixed with exact ones.
pub const FAST_IDENTITY: &str = "fast (int8 activations)";

/// `--compute fast` multiplies GGUF blocks on the CPU in f32: anything else is refused
/// rather than silently computed exactly under a `fast` label.
fn check_compute(opts: &LoadOptions, checkpoint: bool) -> Result<()> {
    if opts.compute == Compute::Exact {
        return Ok(());
    }
    if !opts.device.is_cpu() || opts.dtype != DType::F32 {
        return Err(Error::Usage(
            "--compute fast runs on the CPU in f32 (drop --device/--dtype, or --compute)".into(),
        ));
    }
    if checkpoint {
        return Err(Error::Usage(
            "--compute fast multiplies GGUF quantised blocks; a checkpoint folder or hub id is computed exactly (drop --compute fast, or give a GGUF file)".into(),
        ));
    }
    Ok(())
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}
