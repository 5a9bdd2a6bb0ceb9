//! The forward's parts at SmolLM2-135M and Gemma 3 270M shapes, on random numbers (the
//! arithmetic does not depend on the values): the LM head with the soft-max statistics
//! (both backends), attention (both backends), the gated feed-forward block, the expansion
//! of a quantised weight (candle's against the parallel one), and a whole
//! forward of the real model when `scripts/fetch/fetch-models.sh` has put it in the cache.
//!
//! `cargo bench --bench forward` (`scripts/bench/bench.sh` compares against the peers; these
//! benches say which part moved).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use miascan::kernels::attention::{self, Backend, Heads, Mask, Order};
use miascan::model::layers::{Activation, Linear, Mlp, Stacked};
use miascan::model::weight::{Compute, Weight};
use miascan::model::{ArchInfo, Batch, CausalLm, Model};
use miascan::stats::{token_stats_with, StatsBackend};

/// Tokens per forward (`--batch-tokens`' default) and passage length (WikiMIA-256-like).
const TOKENS: usize = 2048;
const PASSAGE: usize = 364;

struct Shape {
    name: &'static str,
    hidden: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    window: Option<usize>,
    act: Activation,
    file: &'static str,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "smollm2",
        hidden: 576,
        ffn: 1536,
        heads: 9,
        kv_heads: 3,
        head_dim: 64,
        vocab: 49152,
        window: None,
        act: Activation::Silu,
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    Shape {
        name: "gemma3",
        hidden: 640,
        ffn: 2048,
        heads: 4,
        kv_heads: 1,
        head_dim: 256,
        vocab: 262144,
        window: Some(512),
        act: Activation::GeluTanh,
        file: "gemma-3-270m-q4_k_m.gguf",
    },
];

fn randn(shape: (usize, usize)) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

fn spans() -> Vec<(usize, usize)> {
    (0..TOKENS)
        .step_by(PASSAGE)
        .map(|s| (s, PASSAGE.min(TOKENS - s)))
        .collect()
}

/// Just an LM head, for the statistics bench.
struct Head(Weight);

impl CausalLm for Head {
    fn forward(&self, _: &Batch) -> miascan::Result<Tensor> {
        unreachable!("the bench calls only the head")
    }
    fn lm_head(&self) -> &Weight {
        &self.0
    }
    fn describe(&self) -> ArchInfo {
        unreachable!("the bench calls only the head")
    }
}

fn lm_head_statistics(c: &mut Criterion) {
    let mut g = c.benchmark_group("lm_head_statistics");
    g.sample_size(10);
    for s in &SHAPES {
        let head = Head(Weight::Dense((randn((s.vocab, s.hidden)) * 0.05).unwrap()));
        let rows = 512;
        let hidden = randn((rows, s.hidden));
        let idx: Vec<u32> = (0..rows as u32).collect();
        let targets: Vec<u32> = (0..rows as u32).map(|i| i * 97 % s.vocab as u32).collect();
        g.throughput(Throughput::Elements(rows as u64));
        for backend in [StatsBackend::Kernel, StatsBackend::Tensor] {
            g.bench_function(format!("{}/{backend:?}/{rows} rows", s.name), |b| {
                b.iter(|| token_stats_with(backend, &head, &hidden, &idx, &targets).unwrap())
            });
        }
    }
}

fn attention_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TOKENS as u64));
    let spans = spans();
    for s in &SHAPES {
        let (qd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        let (q, k, v) = (
            randn((TOKENS, qd)),
            randn((TOKENS, kvd)),
            randn((TOKENS, kvd)),
        );
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        for backend in [Backend::Kernel, Backend::Tensor] {
            g.bench_function(format!("{}/{backend:?}", s.name), |b| {
                let hd = |x, heads| Heads {
                    x,
                    order: Order::TokenMajor,
                    heads,
                };
                b.iter(|| {
                    attention::packed(
                        backend,
                        hd(&q, s.heads),
                        hd(&k, s.kv_heads),
                        hd(&v, s.kv_heads),
                        Mask {
                            spans: &spans,
                            window: s.window,
                        },
                        scale,
                        None,
                    )
                    .unwrap()
                })
            });
        }
    }
}

fn mlp(c: &mut Criterion) {
    let mut g = c.benchmark_group("mlp");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TOKENS as u64));
    for s in &SHAPES {
        let lin = |o, i| Linear::new((randn((o, i)) * 0.05).unwrap());
        let m = Mlp {
            gate_up: Stacked::new(vec![lin(s.ffn, s.hidden), lin(s.ffn, s.hidden)]).unwrap(),
            down: lin(s.hidden, s.ffn),
            act: s.act,
        };
        let x = randn((TOKENS, s.hidden));
        g.bench_function(s.name, |b| b.iter(|| m.forward(&x).unwrap()));
    }
}

fn whole_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TOKENS as u64));
    let cache = std::env::var_os("MIASCAN_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/miascan/models")
        });
    for s in &SHAPES {
        let path = cache.join(s.file);
        let Ok(model) = Model::load_with(
            &path,
            &miascan::model::LoadOptions {
                dtype: DType::F32,
                ..Default::default()
            },
        ) else {
            eprintln!(
                "forward/{}: {} not in the cache, skipped",
                s.name,
                path.display()
            );
            continue;
        };
        let mut batch = Batch::default();
        for (_, n) in spans() {
            let ids: Vec<u32> = (0..n as u32).map(|i| 100 + i * 7 % 1000).collect();
            batch.push(&ids);
        }
        g.bench_function(s.name, |b| b.iter(|| model.lm.forward(&batch).unwrap()));
    }
}

/// Expanding a stored (quantised) gate/up weight to f32, as every forward does under
/// `--weights stored`: candle's one-thread `dequantize` against miascan's parallel one.
fn dequantize(c: &mut Criterion) {
    use candle_core::quantized::{GgmlDType, QTensor};
    // as the binary does (this group runs first, so every group after it benefits too):
    // each iteration's 7 MiB output is not a fresh mmap with a page fault per 4 KiB
    miascan::alloc::reuse_large_buffers();
    let mut g = c.benchmark_group("dequantize");
    g.sample_size(20);
    for s in &SHAPES {
        for dt in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&randn((2 * s.ffn, s.hidden)), dt).unwrap();
            g.throughput(Throughput::Elements((2 * s.ffn * s.hidden) as u64));
            g.bench_function(format!("{}/{dt:?}/candle", s.name), |b| {
                b.iter(|| q.dequantize(&Device::Cpu).unwrap())
            });
            let w = Weight::Quantized {
                q: std::sync::Arc::new(
                    QTensor::quantize(&randn((2 * s.ffn, s.hidden)), dt).unwrap(),
                ),
                dtype: DType::F32,
                compute: Compute::Exact,
            };
            g.bench_function(format!("{}/{dt:?}/miascan", s.name), |b| {
                b.iter(|| w.expand().unwrap())
            });
        }
    }
}

/// A gate/up projection of 512 positions on stored weights: `--compute exact` (blocks
/// expanded, f32 GEMM) against `--compute fast` (blocks as stored, 8-bit activations).
fn projection(c: &mut Criterion) {
    use candle_core::quantized::{GgmlDType, QTensor};
    miascan::alloc::reuse_large_buffers();
    let mut g = c.benchmark_group("projection");
    g.sample_size(10);
    let rows = 512;
    // the test models' shapes, and a 1B Llama's (hidden 2048, feed-forward 8192)
    let shapes = SHAPES
        .iter()
        .map(|s| (s.name, s.hidden, s.ffn))
        .chain([("llama-1b", 2048, 8192)]);
    for (name, hidden, ffn) in shapes {
        let x = randn((rows, hidden));
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4K] {
            if !hidden.is_multiple_of(dt.block_size()) {
                continue; // SmolLM2's 576 is not a whole number of K-quant blocks
            }
            let q = std::sync::Arc::new(QTensor::quantize(&randn((2 * ffn, hidden)), dt).unwrap());
            g.throughput(Throughput::Elements((rows * 2 * ffn * hidden) as u64));
            for compute in [Compute::Exact, Compute::Fast] {
                let w = Weight::Quantized {
                    q: q.clone(),
                    dtype: DType::F32,
                    compute,
                };
                g.bench_function(format!("{name}/{dt:?}/{}", compute.name()), |b| {
                    b.iter(|| w.matmul_t(&x).unwrap())
                });
            }
        }
    }
}

criterion_group!(
    benches,
    dequantize,
    projection,
    lm_head_statistics,
    attention_bench,
    mlp,
    whole_forward
);
criterion_main!(benches);
