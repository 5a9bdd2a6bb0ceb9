//! Pretrains a small Llama from scratch on the member half of the shift-free benchmark's
//! passages (scripts/bench/shift-free/make-corpus.sh): the one benchmark where members and
//! non-members differ by nothing but training. A byte-level BPE tokenizer (1,024 tokens) is
//! trained on the reference corpus first; the model is written as a Hugging Face checkpoint
//! after 1 epoch (each member seen once, as in real pretraining) and after 4.
//!
//! The forward here is candle's autograd over plain tensor ops, written for training; miascan
//! scores the checkpoints with its own forward. `train-check.json` records this forward's
//! loss on the first 32 members and 32 held-out passages, so a test can check that miascan
//! reads the checkpoint as it was trained (tests/it/shift_free.rs).
//!
//! usage: cargo run --release --example pretrain_shift_free -- DATA_DIR OUT_DIR
//! (the committed fixture keeps each `model.safetensors` gzipped: `gzip -9n OUT_DIR/*/model.safetensors`)
//! (DATA_DIR holds passages.jsonl and reference.jsonl; OUT_DIR gets tokenizer.json,
//! epoch-1/ and epoch-4/.) With a third argument `reference`: a reference model, the same
//! architecture and tokenizer (OUT_DIR/tokenizer.json) trained 1 epoch on the reference
//! corpus only, into OUT_DIR/reference/ (for the `ref` scores). Seeded: the same machine gives the same weights. ~4 min on 2 cores.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

const VOCAB: usize = 1024;
const DIM: usize = 128;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const FFN: usize = 352;
const EPS: f64 = 1e-5;
const THETA: f64 = 10000.0;
const CONTEXT: usize = 256;
const BATCH: usize = 16;
const LR: f64 = 3e-3;
const WARMUP: usize = 30;
const EPOCHS: usize = 4;
const SEED: u64 = 20261207;

type R<T> = anyhow::Result<T>;

fn jsonl(path: &Path) -> R<Vec<serde_json::Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// A byte-level BPE of `VOCAB` tokens over the reference corpus, `<|endoftext|>` id 0.
fn train_tokenizer(texts: &[String], out: &Path) -> R<Tokenizer> {
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(VOCAB)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tok.train(&mut trainer, texts.iter().cloned())
        .map_err(anyhow::Error::msg)?;
    tok.save(out, true).map_err(anyhow::Error::msg)?;
    Ok(tok)
}

/// The Llama of the checkpoint, its weights named as Hugging Face's `LlamaForCausalLM`
/// (linear weights `[out, in]`, rotary embeddings on halves, the LM head tied to the
/// embeddings): a decoder miascan reads after a prefix (ReCaLL, Con-ReCall).
struct Llama {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
}

struct Layer {
    input_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    post_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

impl Llama {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let m = vb.pp("model");
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        // residual projections scaled by 1/sqrt(2·layers), as GPT-2 does
        let proj = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02 / ((2 * LAYERS) as f64).sqrt(),
        };
        let ones = candle_nn::Init::Const(1.0);
        let layers = (0..LAYERS)
            .map(|i| {
                let l = m.pp("layers").pp(i);
                let a = l.pp("self_attn");
                let f = l.pp("mlp");
                Ok(Layer {
                    input_norm: l.get_with_hints(DIM, "input_layernorm.weight", ones)?,
                    q: a.get_with_hints((DIM, DIM), "q_proj.weight", init)?,
                    k: a.get_with_hints((DIM, DIM), "k_proj.weight", init)?,
                    v: a.get_with_hints((DIM, DIM), "v_proj.weight", init)?,
                    o: a.get_with_hints((DIM, DIM), "o_proj.weight", proj)?,
                    post_norm: l.get_with_hints(DIM, "post_attention_layernorm.weight", ones)?,
                    gate: f.get_with_hints((FFN, DIM), "gate_proj.weight", init)?,
                    up: f.get_with_hints((FFN, DIM), "up_proj.weight", init)?,
                    down: f.get_with_hints((DIM, FFN), "down_proj.weight", proj)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Llama {
            embed: m.get_with_hints((VOCAB, DIM), "embed_tokens.weight", init)?,
            layers,
            norm: m.get_with_hints(DIM, "norm.weight", ones)?,
        })
    }

    /// Logits `[B, T, VOCAB]` of a batch of `[B, T]` ids.
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        let hd = DIM / HEADS;
        let rms = |x: &Tensor, w: &Tensor| {
            let r = (x.sqr()?.mean_keepdim(D::Minus1)? + EPS)?.sqrt()?;
            x.broadcast_div(&r)?.broadcast_mul(w)
        };
        let lin = |x: &Tensor, w: &Tensor| x.broadcast_matmul(&w.t()?);
        // rotary tables [T, hd]: frequencies 1/θ^(2j/hd), repeated over both halves
        let inv: Vec<f32> = (0..hd / 2)
            .map(|j| 1.0 / THETA.powf(2.0 * j as f64 / hd as f64) as f32)
            .collect();
        let angles: Vec<f32> = (0..t)
            .flat_map(|p| {
                (0..hd)
                    .map(|j| p as f32 * inv[j % (hd / 2)])
                    .collect::<Vec<_>>()
            })
            .collect();
        let angles = Tensor::from_vec(angles, (t, hd), dev)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let rope = |x: &Tensor| -> candle_core::Result<Tensor> {
            let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
            let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
        };
        let mask: Vec<f32> = (0..t * t)
            .map(|k| if k % t > k / t { -1e9 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?;
        let mut x = candle_nn::Embedding::new(self.embed.clone(), DIM).forward(ids)?;
        for l in &self.layers {
            let h = rms(&x, &l.input_norm)?;
            let heads = |w: &Tensor| {
                lin(&h, w)?
                    .reshape((b, t, HEADS, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (rope(&heads(&l.q)?)?, rope(&heads(&l.k)?)?, heads(&l.v)?);
            let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, t, DIM))?;
            x = (x + lin(&y, &l.o)?)?;
            let h = rms(&x, &l.post_norm)?;
            let f = (lin(&h, &l.gate)?.silu()? * lin(&h, &l.up)?)?;
            x = (x + lin(&f, &l.down)?)?;
        }
        rms(&x, &self.norm)?.broadcast_matmul(&self.embed.t()?)
    }

    /// Mean next-token loss over the real (not padded) positions of a batch; `ids` padded
    /// with 0 to the longest, `lens` the real lengths.
    fn loss(&self, ids: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let logits = self.forward(ids)?.reshape((b * t, VOCAB))?;
        let flat: Vec<u32> = ids.flatten_all()?.to_vec1()?;
        let (mut at, mut next) = (Vec::new(), Vec::new());
        for (r, &n) in lens.iter().enumerate() {
            for p in 0..n.saturating_sub(1) {
                at.push((r * t + p) as u32);
                next.push(flat[r * t + p + 1]);
            }
        }
        let at = Tensor::new(at, ids.device())?;
        let next = Tensor::new(next, ids.device())?;
        candle_nn::loss::cross_entropy(&logits.index_select(&at, 0)?, &next)
    }
}

/// A padded batch of token sequences.
fn batch(seqs: &[&Vec<u32>], dev: &Device) -> candle_core::Result<(Tensor, Vec<usize>)> {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1);
    let mut flat = vec![0u32; seqs.len() * t];
    for (r, s) in seqs.iter().enumerate() {
        flat[r * t..r * t + s.len()].copy_from_slice(s);
    }
    Ok((
        Tensor::from_vec(flat, (seqs.len(), t), dev)?,
        seqs.iter().map(|s| s.len()).collect(),
    ))
}

fn write_checkpoint(vars: &VarMap, tokenizer: &Path, dir: &Path) -> R<()> {
    std::fs::create_dir_all(dir)?;
    vars.save(dir.join("model.safetensors"))?;
    std::fs::copy(tokenizer, dir.join("tokenizer.json"))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "vocab_size": VOCAB,
        "hidden_size": DIM,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": DIM / HEADS,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": EPS,
        "rope_theta": THETA,
        "attention_bias": false,
        "mlp_bias": false,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "tie_word_embeddings": true,
        "dtype": "float32"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    Ok(())
}

fn main() -> R<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let (data, out, reference_model) = match args.as_slice() {
        [data, out] => (data, out, false),
        [data, out, mode] if mode.as_os_str() == "reference" => (data, out, true),
        _ => anyhow::bail!("usage: pretrain_shift_free DATA_DIR OUT_DIR [reference]"),
    };
    std::fs::create_dir_all(out)?;
    let dev = Device::Cpu;
    let reference: Vec<String> = jsonl(&data.join("reference.jsonl"))?
        .iter()
        .map(|r| r["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let tok_path = out.join("tokenizer.json");
    // the reference model shares the target's tokenizer (same vocabulary: token-level
    // comparisons)
    let tok = if reference_model {
        Tokenizer::from_file(&tok_path).map_err(anyhow::Error::msg)?
    } else {
        train_tokenizer(&reference, &tok_path)?
    };
    let rows = jsonl(&data.join("passages.jsonl"))?;
    let encode = |text: &str| -> R<Vec<u32>> {
        let mut ids = tok
            .encode(text, false)
            .map_err(anyhow::Error::msg)?
            .get_ids()
            .to_vec();
        ids.truncate(CONTEXT);
        Ok(ids)
    };
    let (mut members, mut held) = (Vec::new(), Vec::new());
    for r in &rows {
        let ids = encode(
            r["text"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("a passage without text"))?,
        )?;
        if r["member"].as_bool() == Some(true) {
            members.push(ids);
        } else {
            held.push(ids);
        }
    }
    if reference_model {
        // the reference model reads the reference corpus once: neither members nor held-out
        members = reference.iter().map(|t| encode(t)).collect::<R<Vec<_>>>()?;
    }
    let epochs = if reference_model { 1 } else { EPOCHS };
    let tokens: usize = members.iter().map(Vec::len).sum();
    eprintln!(
        "{} members ({tokens} tokens, {:.1} per passage), {} held out",
        members.len(),
        tokens as f64 / members.len() as f64,
        held.len()
    );
    let vars = VarMap::new();
    let model = Llama::new(VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: LR,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let mut step = 0usize;
    let started = std::time::Instant::now();
    for epoch in 1..=epochs {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(BATCH) {
            step += 1;
            opt.set_learning_rate(LR * (step as f64 / WARMUP as f64).min(1.0));
            let seqs: Vec<&Vec<u32>> = chunk.iter().map(|&i| &members[i]).collect();
            let (ids, lens) = batch(&seqs, &dev)?;
            let loss = model.loss(&ids, &lens)?;
            total += loss.to_scalar::<f32>()? as f64;
            opt.backward_step(&loss)?;
        }
        let steps = members.len().div_ceil(BATCH);
        eprintln!(
            "epoch {epoch}: mean training loss {:.4} ({:.0} s)",
            total / steps as f64,
            started.elapsed().as_secs_f64()
        );
        if epoch == 1 || epoch == epochs {
            let dir = if reference_model {
                out.join("reference")
            } else {
                out.join(format!("epoch-{epoch}"))
            };
            write_checkpoint(&vars, &tok_path, &dir)?;
            // this forward's loss per passage, for the reading check
            let mut check = Vec::new();
            for (set, name) in [(&members, "member"), (&held, "held_out")] {
                for (i, s) in set.iter().take(32).enumerate() {
                    let (ids, lens) = batch(&[s], &dev)?;
                    let l = model.loss(&ids, &lens)?.to_scalar::<f32>()?;
                    check.push(serde_json::json!({"set": name, "index": i, "ids": s, "loss": l}));
                }
            }
            std::fs::write(dir.join("train-check.json"), serde_json::to_string(&check)?)?;
        }
    }
    Ok(())
}
