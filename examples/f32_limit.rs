//! The f32 arithmetic limit of this machine for one model: how many tokens per second a
//! forward plus LM head could score if nothing but its matmuls ran, at two ceilings:
//!
//! - **FMA peak**: independent fused multiply-adds in vector registers (AVX-512 where the
//!   CPU has it, else AVX2), on every thread: what the cores can do at all;
//! - **GEMM at the model's shapes**: candle's matmul (the one the forward uses) on the
//!   model's projection, feed-forward and LM-head shapes with `--tokens` rows, weighted by
//!   their FLOPs: what the matmul library reaches on this model.
//!
//! `scripts/bench/bench.sh` divides measured throughput by these figures.
//!
//! usage: cargo run --release --example f32_limit -- MODEL [--threads N] [--tokens T]
//!        [--context C]
//! (T: rows per matmul, default 2048 = `--batch-tokens`; C: average number of earlier
//! positions a token attends to, default 182.)
//! Prints a human-readable table on stderr and one JSON line on stdout.

use candle_core::{Device, Tensor};
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// FLOP/s of one thread issuing independent FMAs (12 accumulators hide the latency).
#[cfg(target_arch = "x86_64")]
fn fma_thread(iters: u64) -> (f64, &'static str) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx512f")]
    fn avx512(iters: u64) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }
    #[target_feature(enable = "avx2,fma")]
    fn avx2(iters: u64) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
    let t = Instant::now();
    let (sink, lanes, isa) = if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU was checked for AVX-512F just above.
        (unsafe { avx512(iters) }, 16.0, "AVX-512")
    } else if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was checked for AVX2 and FMA just above.
        (unsafe { avx2(iters) }, 8.0, "AVX2")
    } else {
        return (f64::NAN, "no FMA");
    };
    std::hint::black_box(sink);
    (
        iters as f64 * 12.0 * lanes * 2.0 / t.elapsed().as_secs_f64(),
        isa,
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_thread(_: u64) -> (f64, &'static str) {
    (f64::NAN, "not measured on this architecture")
}

/// Seconds per call of `x[T, k] · w[n, k]ᵀ`, best of a few runs.
fn gemm_seconds(t: usize, k: usize, n: usize) -> candle_core::Result<f64> {
    let x = Tensor::randn(0f32, 1.0, (t, k), &Device::Cpu)?;
    let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?;
    let wt = w.t()?;
    x.matmul(&wt)?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let s = Instant::now();
        std::hint::black_box(x.matmul(&wt)?);
        best = best.min(s.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // as the binary does: a matmul output is not a fresh mmap with a page fault per 4 KiB
    // (without it the large shapes, 32 MiB outputs, measured 25% below their rate)
    miascan::alloc::reuse_large_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first().filter(|a| !a.starts_with("--")) else {
        eprintln!("usage: f32_limit MODEL [--threads N] [--tokens T] [--context C]");
        std::process::exit(2);
    };
    let threads: usize = arg(&args, "--threads").map_or(Ok(2), |s| s.parse())?;
    let tokens: usize = arg(&args, "--tokens").map_or(Ok(2048), |s| s.parse())?;
    let context: f64 = arg(&args, "--context").map_or(Ok(182.0), |s| s.parse())?;
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;

    let m = miascan::model::Model::open(
        model,
        &miascan::model::LoadOptions {
            offline: true,
            ..Default::default()
        },
    )?;
    let a = m.lm.describe();
    let flops = a.flops_per_token(context);

    // FMA peak: one spinning thread per worker, all at once
    let iters = 100_000_000u64;
    let per_thread: Vec<(f64, &str)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || fma_thread(iters)))
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let peak: f64 = per_thread.iter().map(|p| p.0).sum();
    let isa = per_thread[0].1;

    // GEMM at the model's shapes (attention's small matmuls are left to the FMA ceiling)
    let (h, q, kv) = (a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim);
    let mut shapes = vec![(h, q + 2 * kv, "qkv"), (q, h, "o")];
    if a.gated_ffn {
        shapes.push((h, 2 * a.ffn, "gate+up"));
    } else {
        shapes.push((h, a.ffn, "up"));
    }
    shapes.push((a.ffn, h, "down"));
    let head_block = (8usize << 20).div_euclid(tokens).min(a.vocab).max(1024);
    shapes.push((h, head_block.min(a.vocab), "lm head block"));
    let mut total_flop = 0.0;
    let mut total_s = 0.0;
    eprintln!(
        "{} ({} threads), model {}",
        cpu_name(),
        threads,
        a.architecture
    );
    for &(k, n, name) in &shapes {
        let s = gemm_seconds(tokens, k, n)?;
        let f = 2.0 * (tokens * k * n) as f64;
        // weight: how often the shape occurs per token pass
        let times = match name {
            "lm head block" => a.vocab as f64 / n as f64,
            _ => a.layers as f64,
        };
        total_flop += f * times;
        total_s += s * times;
        eprintln!(
            "  gemm {name:>14} [{tokens}x{k}]·[{k}x{n}]: {:7.1} GFLOP/s",
            f / s / 1e9
        );
    }
    let gemm = total_flop / total_s;
    eprintln!("  FMA peak ({isa}): {:.1} GFLOP/s", peak / 1e9);
    eprintln!("  GEMM at the model's shapes: {:.1} GFLOP/s", gemm / 1e9);
    eprintln!(
        "  {:.3} GFLOP per token → limit {:.0} tokens/s at the GEMM rate, {:.0} at the FMA peak",
        flops / 1e9,
        gemm / flops,
        peak / flops
    );
    println!(
        "{}",
        serde_json::json!({
            "cpu": cpu_name(),
            "threads": threads,
            "isa": isa,
            "fma_peak_gflops": peak / 1e9,
            "gemm_gflops": gemm / 1e9,
            "gflop_per_token": flops / 1e9,
            "limit_tokens_per_s_gemm": gemm / flops,
            "limit_tokens_per_s_peak": peak / flops,
        })
    );
    Ok(())
}
