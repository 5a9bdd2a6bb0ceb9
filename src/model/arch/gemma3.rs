//! Gemma 3 as llama.cpp's GGUF stores it: embeddings scaled by `sqrt(hidden)`, RMS norms
//! before and after both attention and MLP, q/k RMS norms per head, GELU-tanh gated MLP,
//! grouped-query attention with `1/sqrt(head_dim)` scaling, and sliding-window layers (window
//! from the metadata) interleaved with global layers: every sixth layer is global.
//!
//! Norm weights: Hugging Face's Gemma RMSNorm multiplies by `1 + w`; llama.cpp's converter
//! stores `w + 1`, so the stored weight is used as the multiplier directly.
//! RoPE: half-split pairs (the converter does not permute Gemma's q/k); base
//! `rope.freq_base` (1e6) on global layers and 10,000 on sliding layers (as llama.cpp and
//! transformers; the GGUF has no key for the latter). The tables cover only the positions in
//! the batch.

use crate::error::Result;
use crate::model::gguf::Gguf;
use crate::model::layers::{packed_attention, Linear, RmsNorm, RopeStyle, Rotary};
use crate::model::{ArchInfo, Batch, CausalLm};
use candle_core::{Device, Module, Tensor};

/// Every `SLIDING_PATTERN`-th layer (1-based) attends globally; the rest use the window.
const SLIDING_PATTERN: usize = 6;
/// RoPE base of the sliding-window layers (not stored in GGUF).
const LOCAL_ROPE_BASE: f64 = 10_000.0;

#[derive(Debug, Clone)]
pub struct Config {
    pub layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_base: f64,
    pub rms_eps: f64,
    pub sliding_window: usize,
    pub context_length: usize,
    pub vocab: usize,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let key = |k: &str| format!("gemma3.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g.usize_or(&key("attention.head_count_kv"), heads)?;
        let head_dim = g.usize_or(&key("attention.key_length"), hidden / heads.max(1))?;
        let v_dim = g.usize_or(&key("attention.value_length"), head_dim)?;
        if heads == 0
            || kv_heads == 0
            || heads % kv_heads != 0
            || v_dim != head_dim
            || head_dim % 2 != 0
        {
            return Err(g.invalid(format!(
                "inconsistent attention shape: {heads} heads, {kv_heads} kv heads, key {head_dim}, value {v_dim}"
            )));
        }
        if let Some(kind) = g.str_opt(&key("rope.scaling.type"))? {
            if kind != "none" {
                return Err(g.unsupported(format!("RoPE scaling '{kind}' is not supported yet")));
            }
        }
        if g.has(&key("final_logit_softcapping")) || g.has(&key("attn_logit_softcapping")) {
            return Err(
                g.unsupported("logit soft-capping in a gemma3 file is not supported".into())
            );
        }
        let sliding_window = g.usize(&key("attention.sliding_window"))?;
        if sliding_window == 0 {
            return Err(g.invalid("attention.sliding_window is 0".into()));
        }
        Ok(Config {
            layers: g.usize(&key("block_count"))?,
            hidden,
            ffn: g.usize(&key("feed_forward_length"))?,
            heads,
            kv_heads,
            head_dim,
            rope_base: g.f64_or(&key("rope.freq_base"), 1_000_000.0)?,
            rms_eps: g.f64_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)?,
            sliding_window,
            context_length: g.usize(&key("context_length"))?,
            vocab: g.tensor_shape("token_embd.weight")?[0],
        })
    }

    /// Whether layer `i` (0-based) is a sliding-window layer.
    pub fn is_sliding(&self, i: usize) -> bool {
        !(i + 1).is_multiple_of(SLIDING_PATTERN)
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    o: Linear,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: RmsNorm,
    window: Option<usize>,
}

#[derive(Debug)]
pub struct Gemma3 {
    cfg: Config,
    embed: candle_nn::Embedding,
    embed_scale: f64,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Tensor,
    global_rope: Rotary,
    local_rope: Rotary,
    device: Device,
}

impl Gemma3 {
    pub fn load_gguf(g: &mut Gguf, device: &Device) -> Result<Gemma3> {
        let cfg = Config::from_gguf(g)?;
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let (qd, kvd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let eps = cfg.rms_eps;
        let embed_w = g.tensor("token_embd.weight", &[cfg.vocab, h], device)?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let mut t =
                |n: &str, shape: &[usize]| g.tensor(&format!("blk.{i}.{n}.weight"), shape, device);
            blocks.push(Block {
                attn_norm: RmsNorm::new(t("attn_norm", &[h])?, eps),
                q: Linear::new(t("attn_q", &[qd, h])?),
                k: Linear::new(t("attn_k", &[kvd, h])?),
                v: Linear::new(t("attn_v", &[kvd, h])?),
                q_norm: RmsNorm::new(t("attn_q_norm", &[hd])?, eps),
                k_norm: RmsNorm::new(t("attn_k_norm", &[hd])?, eps),
                o: Linear::new(t("attn_output", &[h, qd])?),
                post_attn_norm: RmsNorm::new(t("post_attention_norm", &[h])?, eps),
                ffn_norm: RmsNorm::new(t("ffn_norm", &[h])?, eps),
                gate: Linear::new(t("ffn_gate", &[cfg.ffn, h])?),
                up: Linear::new(t("ffn_up", &[cfg.ffn, h])?),
                down: Linear::new(t("ffn_down", &[h, cfg.ffn])?),
                post_ffn_norm: RmsNorm::new(t("post_ffw_norm", &[h])?, eps),
                window: cfg.is_sliding(i).then_some(cfg.sliding_window),
            });
        }
        let norm = RmsNorm::new(g.tensor("output_norm.weight", &[h], device)?, eps);
        let head = if g.has_tensor("output.weight") {
            g.tensor("output.weight", &[cfg.vocab, h], device)?
        } else {
            embed_w.clone()
        };
        Ok(Gemma3 {
            embed: candle_nn::Embedding::new(embed_w, h),
            // transformers keeps the scale in the weights' dtype: sqrt(hidden) rounded to f32
            embed_scale: (h as f32).sqrt() as f64,
            blocks,
            norm,
            head,
            global_rope: Rotary::new(hd, cfg.rope_base, RopeStyle::Halves),
            local_rope: Rotary::new(hd, LOCAL_ROPE_BASE, RopeStyle::Halves),
            device: device.clone(),
            cfg,
        })
    }

    fn block_forward(
        &self,
        b: &Block,
        x: &Tensor,
        batch: &Batch,
        rope: (&Rotary, &Tensor, &Tensor),
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let t = x.dim(0)?;
        let h = b.attn_norm.forward(x)?;
        // [T, n*hd] → per-head RMS norm → [1, n, T, hd]
        let heads = |y: Tensor, n: usize, norm: Option<&RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((t, n, c.head_dim))?;
            let y = match norm {
                Some(norm) => norm.forward(&y)?,
                None => y,
            };
            Ok(y.transpose(0, 1)?.contiguous()?.unsqueeze(0)?)
        };
        let (rotary, cos, sin) = rope;
        let q = heads(b.q.forward(&h)?, c.heads, Some(&b.q_norm))?;
        let k = heads(b.k.forward(&h)?, c.kv_heads, Some(&b.k_norm))?;
        let v = heads(b.v.forward(&h)?, c.kv_heads, None)?.squeeze(0)?;
        let q = rotary.apply(&q, cos, sin)?.squeeze(0)?;
        let k = rotary.apply(&k, cos, sin)?.squeeze(0)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let attn = packed_attention(&q, &k, &v, &batch.spans, scale, b.window)?;
        let x = (x + b.post_attn_norm.forward(&b.o.forward(&attn)?)?)?;
        let h = b.ffn_norm.forward(&x)?;
        let mlp = b
            .down
            .forward(&(b.gate.forward(&h)?.gelu()? * b.up.forward(&h)?)?)?;
        Ok((x + b.post_ffn_norm.forward(&mlp)?)?)
    }
}

impl CausalLm for Gemma3 {
    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let ids = Tensor::new(batch.ids.as_slice(), &self.device)?;
        let mut x = (self.embed.forward(&ids)? * self.embed_scale)?;
        let (gcos, gsin) = self.global_rope.tables(&batch.positions, &self.device)?;
        let (lcos, lsin) = self.local_rope.tables(&batch.positions, &self.device)?;
        for b in &self.blocks {
            let rope = match b.window {
                Some(_) => (&self.local_rope, &lcos, &lsin),
                None => (&self.global_rope, &gcos, &gsin),
            };
            x = self.block_forward(b, &x, batch, rope)?;
        }
        self.norm.forward(&x)
    }

    fn lm_head(&self) -> &Tensor {
        &self.head
    }

    fn describe(&self) -> ArchInfo {
        let c = &self.cfg;
        ArchInfo {
            architecture: "gemma3".into(),
            layers: c.layers,
            hidden: c.hidden,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab: c.vocab,
            context_length: c.context_length,
            sliding_window: Some(c.sliding_window),
        }
    }
}
