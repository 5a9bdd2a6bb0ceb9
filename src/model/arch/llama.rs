//! Llama (and SmolLM2, which is Llama-shaped): pre-norm decoder, RMS norm, rotary
//! embeddings, grouped-query attention, SwiGLU MLP.
//!
//! The same network serves Hugging Face `llama`, `qwen2` (q/k/v biases) and `mistral`
//! (sliding-window attention) checkpoints.
//!
//! GGUF `llama` q/k weights were permuted by llama.cpp's converter so that rotary pairs are
//! adjacent: the rotation applied to GGUF weights is the interleaved one; Hugging Face
//! weights use the half-split rotation.

use crate::error::Result;
use crate::model::gguf::Gguf;
use crate::model::layers::{packed_attention, Linear, RmsNorm, RopeStyle, Rotary};
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
    /// Sliding-window attention (Mistral): keys per query, itself included.
    pub sliding_window: Option<usize>,
    pub rope_style: RopeStyle,
}

/// The fields of a Hugging Face `config.json` this architecture reads.
#[derive(Debug, serde::Deserialize)]
pub struct HfConfig {
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f64>,
    pub rope_parameters: Option<RopeParameters>,
    pub rope_scaling: Option<serde_json::Value>,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub attention_bias: bool,
    pub hidden_act: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    pub rope_type: Option<String>,
}

impl HfConfig {
    fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Checks what this implementation supports and derives the network's shape.
    pub fn to_config(&self) -> std::result::Result<Config, String> {
        let rope_type = self
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.as_deref());
        if rope_type.is_some_and(|t| t != "default")
            || self.rope_scaling.as_ref().is_some_and(|v| !v.is_null())
        {
            return Err("RoPE scaling is not supported yet".into());
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(format!("hidden_act {act} is not supported (expected silu)"));
            }
        }
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(format!("{heads} heads cannot share {kv_heads} kv heads"));
        }
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / heads);
        // Qwen2 applies the window only with use_sliding_window; Mistral whenever it is set.
        let sliding_window = match self.model_type.as_str() {
            "qwen2" if self.use_sliding_window != Some(true) => None,
            "qwen2" => {
                return Err("qwen2 with use_sliding_window = true is not supported yet".into())
            }
            _ => self.sliding_window,
        };
        Ok(Config {
            layers: self.num_hidden_layers,
            hidden: self.hidden_size,
            ffn: self.intermediate_size,
            heads,
            kv_heads,
            head_dim,
            rope_dim: head_dim,
            rope_base: self.rope_theta(),
            rms_eps: self.rms_norm_eps,
            context_length: self.max_position_embeddings,
            vocab: self.vocab_size,
            sliding_window,
            rope_style: RopeStyle::Halves,
        })
    }
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let p = "llama";
        let key = |k: &str| format!("{p}.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g.usize_or(&key("attention.head_count_kv"), heads)?;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || hidden % heads != 0 {
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
            sliding_window: None,
            rope_style: RopeStyle::Interleaved,
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
    arch: String,
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
        let rotary = Rotary::new(cfg.rope_dim, cfg.rope_base, cfg.rope_style);
        Ok(Llama {
            arch: "llama".into(),
            embed: candle_nn::Embedding::new(embed_w, h),
            blocks,
            norm,
            head,
            rotary,
            device: device.clone(),
            cfg,
        })
    }

    /// Loads Hugging Face weights (`model.layers.N.self_attn.q_proj.weight`, …). Qwen2 has
    /// q/k/v biases; Llama has them when `attention_bias` is set.
    pub fn load_hf(
        arch: &str,
        cfg: Config,
        biases: bool,
        tied: bool,
        vb: candle_nn::VarBuilder,
    ) -> candle_core::Result<Llama> {
        let (h, qd, kvd) = (
            cfg.hidden,
            cfg.heads * cfg.head_dim,
            cfg.kv_heads * cfg.head_dim,
        );
        let m = vb.pp("model");
        let embed_w = m.get((cfg.vocab, h), "embed_tokens.weight")?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let f = l.pp("mlp");
            blocks.push(Block {
                attn_norm: RmsNorm::new(l.get(h, "input_layernorm.weight")?, cfg.rms_eps),
                q: Linear::load(&a.pp("q_proj"), h, qd, biases)?,
                k: Linear::load(&a.pp("k_proj"), h, kvd, biases)?,
                v: Linear::load(&a.pp("v_proj"), h, kvd, biases)?,
                o: Linear::load(&a.pp("o_proj"), qd, h, false)?,
                ffn_norm: RmsNorm::new(l.get(h, "post_attention_layernorm.weight")?, cfg.rms_eps),
                gate: Linear::load(&f.pp("gate_proj"), h, cfg.ffn, false)?,
                up: Linear::load(&f.pp("up_proj"), h, cfg.ffn, false)?,
                down: Linear::load(&f.pp("down_proj"), cfg.ffn, h, false)?,
            });
        }
        let norm = RmsNorm::new(m.get(h, "norm.weight")?, cfg.rms_eps);
        let head = if tied && !vb.contains_tensor("lm_head.weight") {
            embed_w.clone()
        } else {
            vb.get((cfg.vocab, h), "lm_head.weight")?
        };
        Ok(Llama {
            arch: arch.into(),
            embed: candle_nn::Embedding::new(embed_w, h),
            blocks,
            norm,
            head,
            rotary: Rotary::new(cfg.rope_dim, cfg.rope_base, cfg.rope_style),
            device: vb.device().clone(),
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
        let attn = packed_attention(&q, &k, &v, &batch.spans, scale, c.sliding_window)?;
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

    fn describe(&self) -> ArchInfo {
        let c = &self.cfg;
        ArchInfo {
            architecture: self.arch.clone(),
            layers: c.layers,
            hidden: c.hidden,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab: c.vocab,
            context_length: c.context_length,
            sliding_window: c.sliding_window,
        }
    }
}
