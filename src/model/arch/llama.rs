//! Llama (and SmolLM2, which is Llama-shaped): pre-norm decoder, RMS norm, rotary
//! embeddings, grouped-query attention, SwiGLU MLP.
//!
//! GGUF `llama` q/k weights were permuted by llama.cpp's converter so that rotary pairs are
//! adjacent: the rotation applied here is the interleaved one.

use crate::error::Result;
use crate::model::gguf::Gguf;
use crate::model::layers::{attention, Linear, RmsNorm, RopeStyle, Rotary};
use crate::model::{ArchInfo, Batch, CausalLm};
use candle_core::{Device, Module, Tensor};

/// Hyper-parameters, read from the file's metadata (nothing hard-coded).
#[derive(Debug, Clone)]
pub struct Config {
    pub layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub rope_base: f64,
    pub rms_eps: f64,
    pub context_length: usize,
    pub vocab: usize,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let p = "llama";
        let key = |k: &str| format!("{p}.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g.usize_or(&key("attention.head_count_kv"), heads)?;
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || hidden % heads != 0 {
            return Err(g.invalid(format!(
                "inconsistent attention shape: hidden {hidden}, {heads} heads, {kv_heads} kv heads"
            )));
        }
        let head_dim = hidden / heads;
        let rope_dim = g.usize_or(&key("rope.dimension_count"), head_dim)?;
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(g.invalid(format!(
                "rope.dimension_count {rope_dim} does not fit head dim {head_dim}"
            )));
        }
        if let Some(kind) = g.str_opt(&key("rope.scaling.type"))? {
            if kind != "none" {
                return Err(g.unsupported(format!("RoPE scaling '{kind}' is not supported yet")));
            }
        }
        let vocab = g.tensor_shape("token_embd.weight")?[0];
        Ok(Config {
            layers: g.usize(&key("block_count"))?,
            hidden,
            ffn: g.usize(&key("feed_forward_length"))?,
            heads,
            kv_heads,
            head_dim,
            rope_dim,
            rope_base: g.f64_or(&key("rope.freq_base"), 10_000.0)?,
            rms_eps: g.f64(&key("attention.layer_norm_rms_epsilon"))?,
            context_length: g.usize(&key("context_length"))?,
            vocab,
        })
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The network.
#[derive(Debug)]
pub struct Llama {
    cfg: Config,
    embed: candle_nn::Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Tensor,
    rotary: Rotary,
    device: Device,
}

impl Llama {
    pub fn load_gguf(g: &mut Gguf, device: &Device) -> Result<Llama> {
        let cfg = Config::from_gguf(g)?;
        let (h, kvd) = (cfg.hidden, cfg.kv_heads * cfg.head_dim);
        let embed_w = g.tensor("token_embd.weight", &[cfg.vocab, h], device)?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let mut t =
                |n: &str, shape: &[usize]| g.tensor(&format!("blk.{i}.{n}.weight"), shape, device);
            blocks.push(Block {
                attn_norm: RmsNorm::new(t("attn_norm", &[h])?, cfg.rms_eps),
                q: Linear::new(t("attn_q", &[h, h])?),
                k: Linear::new(t("attn_k", &[kvd, h])?),
                v: Linear::new(t("attn_v", &[kvd, h])?),
                o: Linear::new(t("attn_output", &[h, h])?),
                ffn_norm: RmsNorm::new(t("ffn_norm", &[h])?, cfg.rms_eps),
                gate: Linear::new(t("ffn_gate", &[cfg.ffn, h])?),
                up: Linear::new(t("ffn_up", &[cfg.ffn, h])?),
                down: Linear::new(t("ffn_down", &[h, cfg.ffn])?),
            });
        }
        let norm = RmsNorm::new(g.tensor("output_norm.weight", &[h], device)?, cfg.rms_eps);
        let head = if g.has_tensor("output.weight") {
            g.tensor("output.weight", &[cfg.vocab, h], device)?
        } else {
            embed_w.clone() // tied embeddings
        };
        let rotary = Rotary::new(cfg.rope_dim, cfg.rope_base, RopeStyle::Interleaved);
        Ok(Llama {
            embed: candle_nn::Embedding::new(embed_w, h),
            blocks,
            norm,
            head,
            rotary,
            device: device.clone(),
            cfg,
        })
    }

    fn block_forward(
        &self,
        b: &Block,
        x: &Tensor,
        batch: &Batch,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let t = x.dim(0)?;
        let h = b.attn_norm.forward(x)?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((t, n, c.head_dim))?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)?)
        };
        let q = heads(b.q.forward(&h)?, c.heads)?;
        let k = heads(b.k.forward(&h)?, c.kv_heads)?;
        let v = heads(b.v.forward(&h)?, c.kv_heads)?.squeeze(0)?;
        let q = self.rotary.apply(&q, cos, sin)?.squeeze(0)?;
        let k = self.rotary.apply(&k, cos, sin)?.squeeze(0)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut outs = Vec::with_capacity(batch.spans.len());
        for &(s, n) in &batch.spans {
            outs.push(attention(
                &q.narrow(1, s, n)?,
                &k.narrow(1, s, n)?,
                &v.narrow(1, s, n)?,
                scale,
                None,
            )?);
        }
        let attn = if outs.len() == 1 {
            outs.pop().expect("one span")
        } else {
            Tensor::cat(&outs, 0)?
        };
        let x = (x + b.o.forward(&attn)?)?;
        let h = b.ffn_norm.forward(&x)?;
        let mlp = b
            .down
            .forward(&(candle_nn::ops::silu(&b.gate.forward(&h)?)? * b.up.forward(&h)?)?)?;
        Ok((x + mlp)?)
    }
}

impl CausalLm for Llama {
    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let ids = Tensor::new(batch.ids.as_slice(), &self.device)?;
        let mut x = self.embed.forward(&ids)?;
        let (cos, sin) = self.rotary.tables(&batch.positions, &self.device)?;
        for b in &self.blocks {
            x = self.block_forward(b, &x, batch, &cos, &sin)?;
        }
        self.norm.forward(&x)
    }

    fn lm_head(&self) -> &Tensor {
        &self.head
    }

    fn context_length(&self) -> usize {
        self.cfg.context_length
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn describe(&self) -> ArchInfo {
        let c = &self.cfg;
        ArchInfo {
            architecture: "llama".into(),
            layers: c.layers,
            hidden: c.hidden,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab: c.vocab,
            context_length: c.context_length,
            sliding_window: None,
        }
    }
}
