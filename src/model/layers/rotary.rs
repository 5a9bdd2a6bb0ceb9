//! Rotary position embeddings (interleaved and half-split pairs), with cached cos/sin tables.

use crate::error::Result;
use crate::kernels::rows::{cpu_rows, rows_written};
use crate::kernels::simd as kernel;
use candle_core::{Device, Tensor, D};
use std::mem::MaybeUninit;
use std::sync::{Arc, RwLock};

/// How rotary pairs are laid out inside a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs are adjacent `(x0, x1), (x2, x3)…`: GGUF `llama` weights, whose q/k rows
    /// llama.cpp's converter permuted.
    Interleaved,
    /// Pairs are `(x_i, x_{i+d/2})`: Hugging Face llama/qwen2/mistral, GPT-NeoX, Gemma.
    Halves,
}

/// Rotary position embedding over the first `dim` features of each head.
///
/// The cos/sin tables are built once per length (grown to the next power of two when a
/// longer position comes) and, off the CPU, uploaded once per device: a forward only looks
/// rows up.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
    style: RopeStyle,
    tables: Arc<RwLock<RotaryTables>>,
}

/// Cached tables: `cos`, `sin` `[len, dim/2]` on the host, and their copy on a device.
#[derive(Debug, Default)]
struct RotaryTables {
    len: usize,
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    device: Option<(Tensor, Tensor)>,
}

impl Rotary {
    /// Frequencies as transformers computes them, in f32 (`1 / base^(2i/dim)`), so that angles
    /// round the same way as the reference.
    pub fn new(dim: usize, base: f64, style: RopeStyle) -> Self {
        let base = base as f32;
        let inv_freq = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        Rotary {
            inv_freq,
            style,
            tables: Arc::default(),
        }
    }

    /// Divides each frequency by its factor (Llama 3.1's long-context scaling, which GGUF
    /// files carry as the `rope_freqs` tensor).
    pub fn with_factors(mut self, factors: &[f32]) -> Self {
        for (f, k) in self.inv_freq.iter_mut().zip(factors) {
            *f /= *k;
        }
        self.tables = Arc::default();
        self
    }

    /// Host tables covering positions `0..len` at least: `(cos, sin)`, `[len', dim/2]`.
    fn host(&self, len: usize) -> (Arc<Vec<f32>>, Arc<Vec<f32>>) {
        {
            let t = self.tables.read().expect("rotary tables");
            if t.len >= len {
                return (t.cos.clone(), t.sin.clone());
            }
        }
        let mut t = self.tables.write().expect("rotary tables");
        if t.len < len {
            let n = len.next_power_of_two();
            let half = self.inv_freq.len();
            let mut cos = Vec::with_capacity(n * half);
            let mut sin = Vec::with_capacity(n * half);
            for p in 0..n {
                for &f in &self.inv_freq {
                    let angle = (p as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
            *t = RotaryTables {
                len: n,
                cos: Arc::new(cos),
                sin: Arc::new(sin),
                device: None,
            };
        }
        (t.cos.clone(), t.sin.clone())
    }

    /// cos and sin tables `[T, dim/2]` for the given positions, looked up in the cached tables
    /// (on `device`, where they are uploaded once).
    pub fn tables(&self, positions: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let len = positions.iter().max().map_or(0, |&p| p as usize + 1);
        let (cos, sin) = self.host(len);
        if device.is_cpu() {
            let pick = |table: &[f32]| -> Vec<f32> {
                positions
                    .iter()
                    .flat_map(|&p| &table[p as usize * half..(p as usize + 1) * half])
                    .copied()
                    .collect()
            };
            let shape = (positions.len(), half);
            return Ok((
                Tensor::from_vec(pick(&cos), shape, device)?,
                Tensor::from_vec(pick(&sin), shape, device)?,
            ));
        }
        let full = {
            let mut t = self.tables.write().expect("rotary tables");
            let n = t.len;
            let stale = match &t.device {
                Some((c, _)) => !c.device().same_device(device) || c.dim(0)? != n,
                None => true,
            };
            if stale {
                t.device = Some((
                    Tensor::from_slice(&t.cos, (n, half), device)?,
                    Tensor::from_slice(&t.sin, (n, half), device)?,
                ));
            }
            t.device.clone().expect("uploaded")
        };
        let idx = Tensor::new(positions, device)?;
        Ok((full.0.index_select(&idx, 0)?, full.1.index_select(&idx, 0)?))
    }

    /// Rotates `x` `[T, heads · head_dim]` (token-major, unit column stride; any row stride)
    /// for the given positions on the CPU in f32, into a new contiguous `[T, heads · head_dim]`
    /// tensor: one pass, straight from the cached tables. Features past the rotary dimension
    /// are copied.
    pub fn rotate_rows_cpu(
        &self,
        x: &Tensor,
        heads: usize,
        head_dim: usize,
        positions: &[u32],
    ) -> Result<Tensor> {
        let half = self.inv_freq.len();
        let rot = 2 * half;
        let len = positions.iter().max().map_or(0, |&p| p as usize + 1);
        let (cos, sin) = self.host(len);
        let view = cpu_rows(x)?;
        let width = heads * head_dim;
        let style = self.style;
        let write = |t: usize, o: &mut [MaybeUninit<f32>]| {
            let src = view.row(t, width);
            let p = positions[t] as usize;
            let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
            for h in 0..heads {
                let xi = &src[h * head_dim..(h + 1) * head_dim];
                let oi = &mut o[h * head_dim..(h + 1) * head_dim];
                match style {
                    RopeStyle::Interleaved => {
                        for i in 0..half {
                            let (a, b) = (xi[2 * i], xi[2 * i + 1]);
                            oi[2 * i].write(a * c[i] - b * s[i]);
                            oi[2 * i + 1].write(a * s[i] + b * c[i]);
                        }
                    }
                    RopeStyle::Halves => {
                        for i in 0..half {
                            let (a, b) = (xi[i], xi[i + half]);
                            oi[i].write(a * c[i] - b * s[i]);
                            oi[i + half].write(b * c[i] + a * s[i]);
                        }
                    }
                }
                kernel::write_slice(&mut oi[rot..], &xi[rot..]);
            }
        };
        // SAFETY: each row's heads cover its `width` features, every one of them written:
        // the `rot` rotated ones (pairs 0..half) and the rest copied.
        let out = unsafe { rows_written(positions.len() * width, width, write) };
        Ok(Tensor::from_vec(out, (positions.len(), width), x.device())?)
    }

    /// Applies the rotation to `x`: `[1, heads, T, head_dim]`, contiguous. When the rotary
    /// dimension is smaller than the head, only the leading features rotate.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let rot = 2 * self.inv_freq.len();
        let head_dim = x.dim(D::Minus1)?;
        let (xr, rest) = if rot < head_dim {
            (
                x.narrow(D::Minus1, 0, rot)?.contiguous()?,
                Some(x.narrow(D::Minus1, rot, head_dim - rot)?),
            )
        } else {
            (x.clone(), None)
        };
        let (cos, sin) = (&cos.to_dtype(x.dtype())?, &sin.to_dtype(x.dtype())?);
        let y = match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&xr, cos, sin)?,
            RopeStyle::Halves => candle_nn::rotary_emb::rope(&xr, cos, sin)?,
        };
        Ok(match rest {
            Some(rest) => Tensor::cat(&[&y, &rest], D::Minus1)?,
            None => y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotates `x` (one head, one position `pos`) and returns the result.
    fn rotate(r: &Rotary, pos: u32, x: Vec<f32>) -> Vec<f32> {
        let (c, s) = r.tables(&[pos], &Device::Cpu).unwrap();
        let n = x.len();
        let x = Tensor::from_vec(x, (1, 1, 1, n), &Device::Cpu).unwrap();
        r.apply(&x, &c, &s)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn rotary_halves_and_interleaved_rotate_the_right_pairs() {
        // position 1, one frequency (dim 2): rotation by exactly 1 radian
        let y = rotate(
            &Rotary::new(2, 10_000.0, RopeStyle::Interleaved),
            1,
            vec![1.0, 0.0],
        );
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        // halves with dim 4: pairs (0,2) and (1,3)
        let y = rotate(
            &Rotary::new(4, 10_000.0, RopeStyle::Halves),
            1,
            vec![1.0, 0.0, 0.0, 0.0],
        );
        assert!(
            (y[0] - 1f32.cos()).abs() < 1e-6 && (y[2] - 1f32.sin()).abs() < 1e-6,
            "{y:?}"
        );
    }
}
