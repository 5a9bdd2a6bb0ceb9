//! The CPU f32 view of a tensor that every kernel reads through, and the helper that fills
//! kernel outputs row by row without zero-filling them first. A leaf: it imports nothing of
//! the crate but the error type, so kernels and layers both stand above it.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A CPU f32 tensor: the kernels' domain.
pub fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// A CPU f32 matrix seen through its layout: row `t` starts at `offset + t · row_stride`
/// (unit column stride). Lets kernels read views (the q/k/v column ranges of a fused
/// projection) without copying them out.
pub struct CpuRows<'a> {
    _guard: candle_core::StorageRef<'a>,
    data: *const f32,
    len: usize,
    pub offset: usize,
    pub row_stride: usize,
}

// SAFETY: the pointer is into the storage the guard keeps borrowed (read-only).
unsafe impl Sync for CpuRows<'_> {}
unsafe impl Send for CpuRows<'_> {}

impl CpuRows<'_> {
    /// The whole storage (indices are `offset + t · row_stride + column`).
    pub fn data(&self) -> &[f32] {
        // SAFETY: `data`/`len` come from the guarded storage's slice.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    /// `n` values of row `t` from its first column.
    pub fn row(&self, t: usize, n: usize) -> &[f32] {
        let a = self.offset + t * self.row_stride;
        &self.data()[a..a + n]
    }
}

/// The CPU f32 view of a 2-D tensor with unit column stride (error otherwise: callers make
/// such tensors).
pub fn cpu_rows(x: &Tensor) -> Result<CpuRows<'_>> {
    let (_, cols) = x.dims2()?;
    let (guard, layout) = x.storage_and_layout();
    let stride = layout.stride();
    if cols > 1 && stride[1] != 1 {
        return Err(Error::Internal(
            "a kernel was handed a matrix with non-unit column stride".into(),
        ));
    }
    let (data, len) = match &*guard {
        candle_core::Storage::Cpu(c) => {
            let s = c.as_slice::<f32>()?;
            (s.as_ptr(), s.len())
        }
        _ => {
            return Err(Error::Internal(
                "a CPU kernel was handed a device tensor".into(),
            ))
        }
    };
    Ok(CpuRows {
        offset: layout.start_offset(),
        row_stride: stride[0],
        data,
        len,
        _guard: guard,
    })
}

/// `len` floats in rows of `n`, row `r` written by `write(r, row)` on rayon's pool, without
/// zero-filling them first (a `memset` of every norm and activation output, which the
/// kernels then overwrite).
///
/// # Safety
/// `write` must write every element of the row it is given.
pub unsafe fn rows_written(
    len: usize,
    n: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(r, o)| write(r, o));
    // SAFETY: the rows of `n` cover `len`, and the caller's `write` filled each.
    unsafe { out.set_len(len) };
    out
}
