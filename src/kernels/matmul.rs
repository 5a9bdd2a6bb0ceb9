//! `x · wᵀ`, the product behind every projection and LM-head block: `x` `[T, k]`
//! activations, `w` `[n, k]` a weight matrix as checkpoints store it.
//!
//! On the CPU in f32 this calls the same `gemm` routine as candle's matmul, with two
//! differences that leave every bit of the result as it was: the output is not zero-filled
//! first (candle allocates `vec![0; T·n]` for a result the product then overwrites
//! completely, a `memset` of every projection output: 2% of a SmolLM2 forward, `perf`),
//! and the output's columns are split between the threads by [`column_parts`] rather than
//! by gemm. Other devices and dtypes go through candle.

use super::rows::cpu_rows;
use crate::error::Result;
use candle_core::{DType, Tensor};

/// `x` `[T, k]` times the transpose of `w` `[n, k]` → `[T, n]`.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    matmul_t_on(x, w, candle_core::utils::get_num_threads())
}

/// [`matmul_t`] with the host product split between `threads` threads.
fn matmul_t_on(x: &Tensor, w: &Tensor, threads: usize) -> Result<Tensor> {
    let host_f32 = x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2;
    if !host_f32 || x.dim(1)? != w.dim(1)? {
        // candle reports any shape mismatch
        return Ok(x.matmul(&w.t()?)?);
    }
    let x = unit_columns(x)?;
    let w = unit_columns(w)?;
    let (t, k) = x.dims2()?;
    let n = w.dim(0)?;
    if k == 0 {
        return Ok(Tensor::zeros((t, n), DType::F32, x.device())?);
    }
    let (xr, wr) = (cpu_rows(&x)?, cpu_rows(&w)?);
    let mut out: Vec<f32> = Vec::with_capacity(t * n);
    if t > 0 && n > 0 {
        let parts = column_parts(t, n, threads);
        let (dst, lhs, rhs) = (
            out.as_mut_ptr() as usize,
            xr.data()[xr.offset..].as_ptr() as usize,
            wr.data()[wr.offset..].as_ptr() as usize,
        );
        let (x_rs, w_rs) = (xr.row_stride, wr.row_stride);
        // columns j0..j1 of the output: rows j0..j1 of w, one single-threaded gemm
        let part = |j0: usize, j1: usize| {
            // SAFETY: `out` has room for `t · n` floats, written row-major (row stride n),
            // columns j0..j1 only, by this call alone (the parts are disjoint); the lhs is
            // row `r`, column `c` of x at `offset + r · row_stride + c`, and the rhs element
            // (c, j) is w's row j0 + j, column c, both inside their guarded storages (c < k,
            // r < t, j0 + j < n).
            unsafe {
                gemm_rows(
                    (t, j1 - j0, k),
                    ((dst as *mut f32).add(j0), n),
                    (lhs as *const f32, x_rs),
                    ((rhs as *const f32).add(j0 * w_rs), 1, w_rs),
                    1.0,
                )
            }
        };
        if parts.len() == 2 {
            part(parts[0], parts[1]);
        } else {
            rayon::scope(|s| {
                for w in parts.windows(2).skip(1) {
                    let (j0, j1) = (w[0], w[1]);
                    s.spawn(move |_| part(j0, j1));
                }
                part(parts[0], parts[1]);
            });
        }
        // SAFETY: the parts cover columns 0..n of every row: all `t · n` floats are written.
        unsafe { out.set_len(t * n) };
    }
    Ok(Tensor::from_vec(out, (t, n), x.device())?)
}

/// `dst = beta · lhs · rhs` for an `m × n` result with a `k`-long sum, single-threaded, the
/// one way miascan calls gemm: `dst` and `lhs` row-major with adjacent columns (`dst.1`,
/// `lhs.1`: their row strides), `rhs` element `(c, j)` at `rhs.0 + c · rhs.1 + j · rhs.2`;
/// `dst` is written, never read.
///
/// # Safety
/// Every element those strides address must lie inside a live allocation, and `dst`'s
/// elements must be writable by this call alone.
pub(crate) unsafe fn gemm_rows(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, usize),
    lhs: (*const f32, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            1,
            dst.1 as isize,
            false,
            lhs.0,
            1,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            0.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Where the output's columns are cut between `threads` threads: `0 = c0 < c1 < … = n`.
/// Splitting the columns (the weight's rows) gives each thread its own share of the weight
/// to pack and one single-threaded gemm, which keeps both cores busier than gemm's own rayon
/// split of the same product (`MIASCAN_PROFILE`'s cores column on Zen 4, SmolLM2: 1.86–1.93
/// against 1.73–1.78 in the projection phases).
///
/// The cuts fall on multiples of [`COLUMN_GRAIN`] as near to equal shares as that allows:
/// a thread that gets more columns keeps the other waiting at the end of every product.
///
/// The numbers stay bit-identical because each output element is still one dot product
/// whose sum over k is cut into the same blocks: gemm sizes those blocks from k alone,
/// except for small products (at most 64 × 64, at most 256 elements, or one row), which it
/// sends to other kernels. So a product is split only when it has more than
/// [`SMALL_ROWS`] rows, and into shares of at least [`MIN_PART`] columns (less at most half
/// a grain after rounding): then neither the whole nor any part is small.
fn column_parts(t: usize, n: usize, threads: usize) -> Vec<usize> {
    let parts = if t <= SMALL_ROWS {
        1
    } else {
        threads.min(n / MIN_PART).max(1)
    };
    let grains = n / COLUMN_GRAIN;
    // cut p at the grain nearest to p·n/parts; the last part takes the ragged remainder
    let mut cuts: Vec<usize> = (0..parts)
        .map(|p| (2 * p * n / parts + COLUMN_GRAIN) / (2 * COLUMN_GRAIN) * COLUMN_GRAIN)
        .map(|c| c.min(grains * COLUMN_GRAIN))
        .collect();
    cuts.push(n);
    cuts
}

/// The unit of a thread's share of columns. Fine enough that SmolLM2's 960 and 576 columns
/// split evenly between two threads (at 64 they split 448/512 and 256/320: the
/// projections ran on 1.80–1.84 cores against 1.91 for the evenly split ones).
const COLUMN_GRAIN: usize = 16;

/// The fewest columns a thread is given (see [`column_parts`]).
const MIN_PART: usize = 128;

/// Products with at most this many rows are not split (see [`column_parts`]).
const SMALL_ROWS: usize = 64;

/// `x` itself if its columns are adjacent, a contiguous copy otherwise.
fn unit_columns(x: &Tensor) -> Result<Tensor> {
    let (_, cols) = x.dims2()?;
    Ok(if cols <= 1 || x.stride()[1] == 1 {
        x.clone()
    } else {
        x.contiguous()?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Bit-identical to candle's matmul, including on column views and row-strided inputs.
    #[test]
    fn equals_candles_matmul_bit_for_bit() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (37, 70), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (45, 70), &dev).unwrap();
        let cases = [
            (x.clone(), w.clone()),
            (x.narrow(1, 3, 40).unwrap(), w.narrow(1, 10, 40).unwrap()),
            (x.narrow(0, 5, 20).unwrap(), w.narrow(0, 1, 33).unwrap()),
            (x.t().unwrap().contiguous().unwrap().t().unwrap(), w.clone()),
        ];
        for (x, w) in cases {
            let theirs = x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
            for threads in [1, 2, 3] {
                let ours = matmul_t_on(&x, &w, threads).unwrap();
                assert_eq!(ours.to_vec2::<f32>().unwrap(), theirs, "{threads} threads");
            }
        }
    }

    /// At a model's shapes (SmolLM2's and Gemma 3's projections, k above and below gemm's
    /// 512 block, ragged column counts, row counts either side of the small-product bound),
    /// every split between threads gives candle's numbers bit for bit: the split cuts
    /// columns, never the sum over k.
    #[test]
    fn splits_between_threads_change_no_bit() {
        let dev = Device::Cpu;
        for (t, k, n) in [
            (203, 576, 1536),
            (203, 1536, 576),
            (203, 576, 960),
            (65, 640, 1000),
            (65, 2048, 256),
            (64, 640, 1000),
            (5, 64, 130),
            (1, 576, 1536),
        ] {
            let x = Tensor::randn(0f32, 1.0, (t, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
            let theirs = x.matmul(&w.t().unwrap()).unwrap();
            let theirs = theirs.to_vec2::<f32>().unwrap();
            for threads in [1, 2, 4, 7] {
                let ours = matmul_t_on(&x, &w, threads).unwrap();
                assert_eq!(
                    ours.to_vec2::<f32>().unwrap(),
                    theirs,
                    "{t}x{k}x{n}, {threads}"
                );
            }
        }
    }

    #[test]
    fn column_parts_cover_the_columns_in_grains() {
        assert_eq!(column_parts(2048, 1536, 2), vec![0, 768, 1536]);
        assert_eq!(column_parts(2048, 1000, 2), vec![0, 496, 1000]);
        assert_eq!(column_parts(2048, 300, 4), vec![0, 144, 300]);
        // SmolLM2's q/k/v and its 576-wide outputs: equal halves
        assert_eq!(column_parts(2048, 960, 2), vec![0, 480, 960]);
        assert_eq!(column_parts(2048, 576, 2), vec![0, 288, 576]);
        assert_eq!(column_parts(2048, 576, 4), vec![0, 144, 288, 432, 576]);
        assert_eq!(column_parts(2048, 1000, 3), vec![0, 336, 672, 1000]);
        for n in 1..3000 {
            for threads in 1..9 {
                let cuts = column_parts(65, n, threads);
                assert_eq!((cuts[0], *cuts.last().unwrap()), (0, n));
                let shares: Vec<usize> = cuts.windows(2).map(|w| w[1] - w[0]).collect();
                let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(cuts[1..cuts.len() - 1]
                    .iter()
                    .all(|c| c % COLUMN_GRAIN == 0));
                if shares.len() > 1 {
                    assert!(
                        *lo >= MIN_PART - COLUMN_GRAIN / 2,
                        "{n} {threads}: {cuts:?}"
                    );
                    assert!(hi - lo <= COLUMN_GRAIN + n % COLUMN_GRAIN, "{n} {threads}");
                }
            }
        }
        assert_eq!(column_parts(2048, 255, 2), vec![0, 255]);
        assert_eq!(column_parts(64, 1536, 2), vec![0, 1536]);
        assert_eq!(column_parts(2048, 100, 1), vec![0, 100]);
    }

    #[test]
    fn empty_sides_and_mismatches() {
        let dev = Device::Cpu;
        let z = |r, c| Tensor::zeros((r, c), DType::F32, &dev).unwrap();
        assert_eq!(matmul_t(&z(0, 4), &z(3, 4)).unwrap().dims(), &[0, 3]);
        assert_eq!(matmul_t(&z(2, 4), &z(0, 4)).unwrap().dims(), &[2, 0]);
        let k0 = matmul_t(&z(2, 0), &z(3, 0)).unwrap();
        assert_eq!(k0.to_vec2::<f32>().unwrap(), vec![vec![0f32; 3]; 2]);
        assert!(matmul_t(&z(2, 4), &z(3, 5)).is_err());
    }
}
