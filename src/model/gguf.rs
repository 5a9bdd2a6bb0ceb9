//! GGUF files: metadata and tensors, dequantised to f32 on the compute device.
//!
//! Parsing is candle's (`candle_core::quantized::gguf_file`, bounds-checked since 0.11.1);
//! this module adds typed, named errors and a guard so that a hostile file can never take
//! the process down with a panic.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use std::fs::File;
use std::path::{Path, PathBuf};

/// An opened GGUF file: its parsed header and a handle for reading tensors.
pub struct Gguf {
    path: PathBuf,
    content: Content,
    file: File,
    /// Compute dtype tensors are converted to after dequantisation.
    dtype: DType,
    /// Whether weight matrices stay quantised between uses.
    residency: crate::model::weight::Residency,
    /// How the weight matrices are multiplied.
    compute: crate::model::weight::Compute,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf").field("path", &self.path).finish()
    }
}

/// Runs `f`, turning a panic inside candle's parser into an error naming the file.
fn guarded<T>(path: &Path, what: &str, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    let invalid = |message: String| Error::InvalidModel {
        path: path.to_path_buf(),
        message: crate::error::printable(&message),
    };
    match crate::error::catch_panic(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(invalid(format!("{what}: {}", crate::error::plain(&e)))),
        Err(detail) => Err(invalid(format!(
            "{what}: malformed file (the parser gave up: {detail})"
        ))),
    }
}

impl Gguf {
    /// Opens and parses the header (metadata and tensor directory) of a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|source| Error::ModelIo {
            path: path.to_path_buf(),
            source,
        })?;
        let content = guarded(path, "not a readable GGUF file", || {
            Content::read(&mut file)
        })?;
        let g = Gguf {
            path: path.to_path_buf(),
            content,
            file,
            dtype: DType::F32,
            residency: Default::default(),
            compute: Default::default(),
        };
        g.check_tensor_extents()?;
        Ok(g)
    }

    /// Refuses a truncated file up front, naming the first tensor that does not fit, rather
    /// than failing halfway through loading.
    fn check_tensor_extents(&self) -> Result<()> {
        let len = self
            .file
            .metadata()
            .map_err(|source| Error::ModelIo {
                path: self.path.clone(),
                source,
            })?
            .len();
        let mut worst: Option<(&str, u64)> = None;
        for (name, info) in &self.content.tensor_infos {
            // the product of the dimensions, refusing one that overflows (candle's
            // elem_count would wrap, or panic where overflow checks are on)
            let Some(elems) = info
                .shape
                .dims()
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            else {
                return Err(self.invalid(format!(
                    "tensor {} has an impossible shape {:?}",
                    name.escape_debug(),
                    info.shape.dims()
                )));
            };
            let block = info.ggml_dtype.block_size() as u64;
            let bytes = (elems / block.max(1)).saturating_mul(info.ggml_dtype.type_size() as u64);
            let end = self
                .content
                .tensor_data_offset
                .saturating_add(info.offset)
                .saturating_add(bytes);
            if end > len && worst.is_none_or(|(_, e)| end > e) {
                worst = Some((name, end));
            }
        }
        match worst {
            Some((name, end)) => Err(self.invalid(format!(
                "truncated: tensor {} ends at byte {end} but the file has {len} bytes",
                name.escape_debug()
            ))),
            None => Ok(()),
        }
    }

    /// Sets the dtype tensors are computed in (default f32).
    pub fn set_dtype(&mut self, dtype: DType) {
        self.dtype = dtype;
    }

    /// Sets whether weight matrices stay quantised between uses (default: they do).
    pub fn set_residency(&mut self, r: crate::model::weight::Residency) {
        self.residency = r;
    }

    /// Sets how weight matrices are multiplied (default exact).
    pub fn set_compute(&mut self, c: crate::model::weight::Compute) {
        self.compute = c;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn invalid(&self, message: String) -> Error {
        Error::InvalidModel {
            path: self.path.clone(),
            message,
        }
    }

    pub(crate) fn unsupported(&self, message: String) -> Error {
        Error::UnsupportedModel {
            path: self.path.clone(),
            message,
        }
    }

    fn value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.invalid(format!("metadata key {key} is missing")))
    }

    /// Whether a metadata key is present.
    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    /// An integer metadata value, whatever integer type the writer chose.
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self.value(key)?;
        as_u64(v).ok_or_else(|| self.invalid(format!("metadata {key} is not an unsigned integer")))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.u64(key)?;
        usize::try_from(v).map_err(|_| self.invalid(format!("metadata {key} = {v} is too large")))
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.has(key) {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    /// A float metadata value (f32 or f64).
    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.value(key)? {
            Value::F32(x) => Ok(*x as f64),
            Value::F64(x) => Ok(*x),
            v => as_u64(v)
                .map(|x| x as f64)
                .ok_or_else(|| self.invalid(format!("metadata {key} is not a number"))),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        if self.has(key) {
            self.f64(key)
        } else {
            Ok(default)
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.content.metadata.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.invalid(format!("metadata {key} is not a boolean"))),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        match self.value(key)? {
            Value::String(s) => Ok(s),
            _ => Err(self.invalid(format!("metadata {key} is not a string"))),
        }
    }

    pub fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        if self.has(key) {
            self.str(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn array(&self, key: &str) -> Result<&Vec<Value>> {
        match self.value(key)? {
            Value::Array(a) => Ok(a),
            _ => Err(self.invalid(format!("metadata {key} is not an array"))),
        }
    }

    /// An array of strings (vocabularies, merges).
    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => Err(self.invalid(format!("metadata {key}[{i}] is not a string"))),
            })
            .collect()
    }

    /// An array of integers (token types).
    pub fn int_array(&self, key: &str) -> Result<Vec<i64>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                as_i64(v)
                    .ok_or_else(|| self.invalid(format!("metadata {key}[{i}] is not an integer")))
            })
            .collect()
    }

    /// An array of floats (SentencePiece scores).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                _ => Err(self.invalid(format!("metadata {key}[{i}] is not a float"))),
            })
            .collect()
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The tensor's shape in candle's order (outermost first: `[rows, cols]` for a matrix
    /// whose rows are output features).
    pub fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        self.content
            .tensor_infos
            .get(name)
            .map(|i| i.shape.dims().to_vec())
            .ok_or_else(|| self.invalid(format!("tensor {} is missing", name.escape_debug())))
    }

    /// Total number of weights (for `inspect`).
    pub fn parameter_count(&self) -> u64 {
        self.content
            .tensor_infos
            .values()
            .map(|i| i.shape.elem_count() as u64)
            .sum()
    }

    /// Names of the quantisation types present, for `inspect` (e.g. `Q4_1 x 210, F32 x 61`).
    pub fn dtype_summary(&self) -> String {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for i in self.content.tensor_infos.values() {
            *counts.entry(format!("{:?}", i.ggml_dtype)).or_default() += 1;
        }
        counts
            .iter()
            .map(|(k, v)| format!("{k} x {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads a tensor, dequantised to the compute dtype on `device`, checking its shape.
    pub fn tensor(&mut self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        let q = self.qtensor(name, shape, device)?;
        let dtype = self.dtype;
        guarded(
            &self.path,
            &format!("tensor {}", name.escape_debug()),
            || q.dequantize(device)?.to_dtype(dtype),
        )
    }

    /// Reads a weight matrix, kept in its blocks unless the residency says otherwise.
    pub fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Result<crate::model::weight::Weight> {
        let q = self.qtensor(name, shape, device)?;
        crate::model::weight::Weight::from_qtensor(q, self.dtype, self.residency, self.compute)
    }

    /// A tensor as stored, after checking its shape against what the metadata implies.
    fn qtensor(
        &mut self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Result<candle_core::quantized::QTensor> {
        let found = self.tensor_shape(name)?;
        if found != shape {
            return Err(self.invalid(format!(
                "tensor {} has shape {found:?}, expected {shape:?} from the metadata",
                name.escape_debug()
            )));
        }
        let Gguf {
            path,
            content,
            file,
            ..
        } = self;
        let what = format!("tensor {}", name.escape_debug());
        guarded(path, &what, || content.tensor(file, name, device))
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::U8(x) => Some(*x as i64),
        Value::U16(x) => Some(*x as i64),
        Value::U32(x) => Some(*x as i64),
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::I8(x) => Some(*x as i64),
        Value::I16(x) => Some(*x as i64),
        Value::I32(x) => Some(*x as i64),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}
