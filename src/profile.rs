//! Where a run's time goes, phase by phase, when `MIASCAN_PROFILE=1` is set: the scoring
//! thread's wall-clock time split into tokenisation, the parts of the forward, the LM head and
//! the statistics, printed on stderr at the end of `score`, `scan` and `calibrate`.
//!
//! Why wall-clock spans rather than a sampling profiler: the work runs on rayon's and gemm's
//! worker threads, whose stacks do not lead back to the phase that asked for it, while every
//! CPU operation is synchronous on the thread that called it, so a span around the call is
//! exact. (On a GPU the spans would time kernel launches: the profile is a CPU tool.) When the
//! variable is unset a span costs one relaxed atomic load.
//!
//! Beside each phase's wall time the report gives the process CPU time spent meanwhile,
//! divided by the wall time: how many cores the phase kept busy on average (where the OS
//! tells it). A phase below the thread count is where parallelism is lost: serial code,
//! uneven splits, waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The phases, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Tokenising passages (on the reader thread, overlapped with the forward).
    Tokenize,
    /// Embedding lookup.
    Embed,
    /// RMS / layer norms.
    Norm,
    /// Query, key and value projections.
    Qkv,
    /// Rotary tables and rotation.
    Rotary,
    /// Attention scores, soft-max and weighted sum.
    Attention,
    /// Attention output projection.
    OutProj,
    /// Feed-forward matmuls (gate, up, down).
    FfnMatmul,
    /// Feed-forward activation and gating product.
    Activation,
    /// Residual additions.
    Residual,
    /// LM head matmuls (with the head's per-block expansion).
    LmHead,
    /// The soft-max statistics over the vocabulary.
    Statistics,
}

const PHASES: [(Phase, &str); 12] = [
    (Phase::Tokenize, "tokenise (reader thread, overlapped)"),
    (Phase::Embed, "embedding"),
    (
        Phase::Norm,
        "norms (and residual additions fused with them)",
    ),
    (Phase::Qkv, "q/k/v projections"),
    (Phase::Rotary, "rotary"),
    (Phase::Attention, "attention (scores, soft-max, ·V)"),
    (Phase::OutProj, "attention output projection"),
    (Phase::FfnMatmul, "feed-forward matmuls"),
    (Phase::Activation, "activation and gating"),
    (Phase::Residual, "residual additions"),
    (Phase::LmHead, "LM head matmuls"),
    (Phase::Statistics, "soft-max statistics"),
];

static TOTALS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
static CALLS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
static CPU: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
static ON: AtomicBool = AtomicBool::new(false);
static INIT: OnceLock<()> = OnceLock::new();

fn on() -> bool {
    INIT.get_or_init(|| {
        let set = std::env::var_os("MIASCAN_PROFILE").is_some_and(|v| !v.is_empty() && v != "0");
        ON.store(set, Ordering::Relaxed);
    });
    ON.load(Ordering::Relaxed)
}

/// Whether profiling is on (`MIASCAN_PROFILE` set and not `0`).
pub fn enabled() -> bool {
    on()
}

/// CPU time of the whole process so far (every thread), in nanoseconds, where the OS
/// tells it.
fn process_cpu_ns() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid place for the result.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
        }
    }
    None
}

/// Times its lifetime into `phase`.
pub struct Span(Option<(Phase, Instant, Option<u64>)>);

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((p, t, cpu)) = self.0 {
            let i = PHASES.iter().position(|(q, _)| *q == p).expect("phase");
            TOTALS[i].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            CALLS[i].fetch_add(1, Ordering::Relaxed);
            if let (Some(a), Some(b)) = (cpu, process_cpu_ns()) {
                CPU[i].fetch_add(b.saturating_sub(a), Ordering::Relaxed);
            }
        }
    }
}

/// Starts timing `phase` (spans must not nest: each measures exclusive time).
pub fn span(phase: Phase) -> Span {
    Span(on().then(|| (phase, Instant::now(), process_cpu_ns())))
}

/// Runs `f` inside a span of `phase`.
pub fn time<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    let _s = span(phase);
    f()
}

/// The split as text: one line per phase with its seconds and share of `total_s` (the
/// run's wall time), then what no phase covered (loading, scores, output).
pub fn report(total_s: f64) -> String {
    let mut out = format!(
        "profile (wall clock, scoring thread; total {total_s:.2} s; cores: process CPU time / wall time)\n"
    );
    let mut covered = 0.0;
    for (i, (p, name)) in PHASES.iter().enumerate() {
        let s = TOTALS[i].load(Ordering::Relaxed) as f64 * 1e-9;
        if *p != Phase::Tokenize {
            covered += s;
        }
        let cpu = CPU[i].load(Ordering::Relaxed) as f64 * 1e-9;
        let cores = if s > 0.0 && cpu > 0.0 {
            format!("{:4.2} cores", cpu / s)
        } else {
            String::new()
        };
        out += &format!(
            "  {name:<40} {s:8.2} s {:5.1}%  ({} calls)  {cores}\n",
            100.0 * s / total_s,
            CALLS[i].load(Ordering::Relaxed)
        );
    }
    let rest = total_s - covered;
    out += &format!(
        "  {:<40} {rest:8.2} s {:5.1}%\n",
        "rest (load, batching, scores, output)",
        100.0 * rest / total_s
    );
    out
}
