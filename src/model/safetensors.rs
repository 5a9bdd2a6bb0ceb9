//! Safetensors files read tensor by tensor with plain reads (no memory map): a tensor's
//! bytes are in memory once, in its stored dtype, so a bf16 checkpoint costs its file size,
//! and a header that claims more data than the file holds is refused before anything is
//! allocated. The header is the `safetensors` crate's `TensorInfo` JSON.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorInfo};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest header read (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// The tensors of one or more safetensors files.
pub struct SafeFiles {
    /// name → (file index, start of its bytes in the file, info)
    index: HashMap<String, (usize, u64, TensorInfo)>,
    files: Vec<PathBuf>,
}

fn invalid(path: &Path, message: String) -> Error {
    Error::InvalidModel {
        path: path.to_path_buf(),
        message,
    }
}

fn dtype_of(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::U8 => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I64 => DType::I64,
        _ => return None,
    })
}

impl SafeFiles {
    /// Reads and checks every file's header.
    pub fn open(files: &[PathBuf]) -> Result<SafeFiles> {
        let mut index = HashMap::new();
        for (fi, path) in files.iter().enumerate() {
            let io = |source| Error::ModelIo {
                path: path.clone(),
                source,
            };
            let mut f = File::open(path).map_err(io)?;
            let len = f.metadata().map_err(io)?.len();
            let mut n = [0u8; 8];
            f.read_exact(&mut n).map_err(|_| {
                invalid(path, "not a safetensors file (shorter than 8 bytes)".into())
            })?;
            let n = u64::from_le_bytes(n);
            if n > MAX_HEADER || n > len.saturating_sub(8) {
                return Err(invalid(
                    path,
                    format!("safetensors header of {n} bytes in a file of {len} bytes"),
                ));
            }
            let mut header = vec![0u8; n as usize];
            f.read_exact(&mut header).map_err(io)?;
            let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
                .map_err(|e| invalid(path, format!("malformed safetensors header: {e}")))?;
            let data_start = 8 + n;
            for (name, v) in header {
                if name == "__metadata__" {
                    continue;
                }
                let shown = name.escape_debug().to_string();
                let info: TensorInfo = serde_json::from_value(v)
                    .map_err(|e| invalid(path, format!("tensor {shown}: malformed entry: {e}")))?;
                let (a, b) = info.data_offsets;
                let elems = info
                    .shape
                    .iter()
                    .try_fold(1usize, |acc, &d| acc.checked_mul(d));
                let want = elems.and_then(|e| e.checked_mul(info.dtype.bitsize()).map(|b| b / 8));
                if b < a || Some(b - a) != want {
                    return Err(invalid(
                        path,
                        format!(
                            "tensor {shown}: {} bytes for shape {:?} of {:?}",
                            b.saturating_sub(a),
                            info.shape,
                            info.dtype
                        ),
                    ));
                }
                if data_start.saturating_add(b as u64) > len {
                    return Err(invalid(
                        path,
                        format!(
                            "truncated: tensor {shown} ends at byte {} but the file has {len}",
                            data_start.saturating_add(b as u64)
                        ),
                    ));
                }
                index.insert(name, (fi, data_start + a as u64, info));
            }
        }
        Ok(SafeFiles {
            index,
            files: files.to_vec(),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of weights in all files.
    pub fn parameters(&self) -> u64 {
        self.index
            .values()
            .map(|(_, _, i)| i.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// A tensor in its stored dtype on `device`.
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let Some((fi, start, info)) = self.index.get(name) else {
            return Err(invalid(
                &self.files[0],
                format!("tensor {} is missing", name.escape_debug()),
            ));
        };
        let path = &self.files[*fi];
        let dtype = dtype_of(info.dtype).ok_or_else(|| Error::UnsupportedModel {
            path: path.clone(),
            message: format!("tensor {name}: dtype {:?} is not supported", info.dtype),
        })?;
        let io = |source| Error::ModelIo {
            path: path.clone(),
            source,
        };
        let mut f = File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(*start)).map_err(io)?;
        let mut bytes = vec![0u8; info.data_offsets.1 - info.data_offsets.0];
        f.read_exact(&mut bytes).map_err(io)?;
        Tensor::from_raw_buffer(&bytes, dtype, &info.shape, device).map_err(|e| {
            invalid(
                path,
                format!(
                    "tensor {}: {}",
                    name.escape_debug(),
                    crate::error::plain(&e)
                ),
            )
        })
    }
}
