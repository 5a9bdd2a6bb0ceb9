//! GPT-2: learned position embeddings, pre-LayerNorm blocks with biases, fused q/k/v,
//! GELU (tanh approximation, `gelu_new`), LM head tied to the token embeddings. Hugging Face
//! stores its projections as `Conv1D` with weights `[in, out]`: transposed once at load, in
//! their stored dtype, and kept as stored like every other architecture's (`--weights`).

use crate::error::Result;
use crate::model::decoder::{HfWeights, Weights};
use crate::model::layers::{packed_attention, LayerNorm, Linear};
use crate::model::weight::Weight;
use crate::model::{ArchInfo, Batch, CausalLm};
use candle_core::{Device, Tensor};

/// The fields of config.json this architecture reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub n_positions: usize,
    pub n_inner: Option<usize>,
    pub vocab_size: usize,
    pub layer_norm_epsilon: f64,
    pub activation_function: Option<String>,
    pub scale_attn_weights: Option<bool>,
    pub scale_attn_by_inverse_layer_idx: Option<bool>,
    pub reorder_and_upcast_attn: Option<bool>,
}

impl Config {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.n_layer > super::config::MAX_LAYERS {
            return Err(format!("n_layer = {} is out of range", self.n_layer));
        }
        match self.activation_function.as_deref() {
            None | Some("gelu_new") | Some("gelu_pytorch_tanh") => {}
            Some(a) => return Err(format!("activation_function {a} is not supported")),
        }
        if self.scale_attn_weights == Some(false)
            || self.scale_attn_by_inverse_layer_idx == Some(true)
        {
            return Err("non-standard attention scaling is not supported".into());
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

#[derive(Debug)]
pub struct Gpt2 {
    cfg: Config,
    wte: Weight,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Weight,
    device: Device,
}

/// A `Conv1D` (`[in, out]` weight) as a [`Linear`] (`[out, in]`), kept as stored.
fn conv1d(w: &mut HfWeights, name: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = w.weight_transposed(&format!("{name}.weight"), &[inp, out])?;
    Ok(Linear::from_weight(
        weight,
        Some(w.get(&format!("{name}.bias"), &[out])?),
    ))
}

fn layer_norm(w: &mut HfWeights, name: &str, n: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.get(&format!("{name}.weight"), &[n])?,
        w.get(&format!("{name}.bias"), &[n])?,
        eps,
    ))
}

impl Gpt2 {
    pub fn load_hf(cfg: Config, w: &mut HfWeights) -> Result<Gpt2> {
        let h = cfg.n_embd;
        let inner = cfg.n_inner.unwrap_or(4 * h);
        let eps = cfg.layer_norm_epsilon;
        // checkpoints saved from GPT2LMHeadModel prefix with `transformer.`, GPT2Model without
        let t = if w.has("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let wte = w.weight(&format!("{t}wte.weight"), &[cfg.vocab_size, h])?;
        let wpe = w.get(&format!("{t}wpe.weight"), &[cfg.n_positions, h])?;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let b = format!("{t}h.{i}");
            blocks.push(Block {
                ln_1: layer_norm(w, &format!("{b}.ln_1"), h, eps)?,
                c_attn: conv1d(w, &format!("{b}.attn.c_attn"), h, 3 * h)?,
                c_proj: conv1d(w, &format!("{b}.attn.c_proj"), h, h)?,
                ln_2: layer_norm(w, &format!("{b}.ln_2"), h, eps)?,
                c_fc: conv1d(w, &format!("{b}.mlp.c_fc"), h, inner)?,
                mlp_proj: conv1d(w, &format!("{b}.mlp.c_proj"), inner, h)?,
            });
        }
        let ln_f = layer_norm(w, &format!("{t}ln_f"), h, eps)?;
        let head = if w.has("lm_head.weight") {
            w.weight("lm_head.weight", &[cfg.vocab_size, h])?
        } else {
            wte.clone()
        };
        Ok(Gpt2 {
            wte,
            wpe,
            blocks,
            ln_f,
            head,
            device: w.device().clone(),
            cfg,
        })
    }
}

impl CausalLm for Gpt2 {
    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let c = &self.cfg;
        let (t, h) = (batch.len(), c.n_embd);
        let hd = h / c.n_head;
        let ids = Tensor::new(batch.ids.as_slice(), &self.device)?;
        let pos = Tensor::new(batch.positions.as_slice(), &self.device)?;
        let mut x = (self.wte.gather(&ids)? + self.wpe.index_select(&pos, 0)?)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for b in &self.blocks {
            let qkv = b.c_attn.forward(&b.ln_1.forward(&x)?)?;
            let split = |i: usize| -> Result<Tensor> {
                Ok(qkv
                    .narrow(1, i * h, h)?
                    .reshape((t, c.n_head, hd))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let attn = packed_attention(&q, &k, &v, &batch.spans, scale, None)?;
            x = (x + b.c_proj.forward(&attn)?)?;
            let m = b
                .mlp_proj
                .forward(&b.c_fc.forward(&b.ln_2.forward(&x)?)?.gelu()?)?;
            x = (x + m)?;
        }
        self.ln_f.forward(&x)
    }

    fn lm_head(&self) -> &Weight {
        &self.head
    }

    fn describe(&self) -> ArchInfo {
        let c = &self.cfg;
        ArchInfo {
            architecture: "gpt2".into(),
            layers: c.n_layer,
            hidden: c.n_embd,
            heads: c.n_head,
            kv_heads: c.n_head,
            head_dim: c.n_embd / c.n_head,
            ffn: c.n_inner.unwrap_or(4 * c.n_embd),
            gated_ffn: false,
            vocab: c.vocab_size,
            context_length: c.n_positions,
            sliding_window: None,
        }
    }
}

/// Registry entry: the network from a checkpoint folder's config.json and weights.
pub fn load(c: &super::config::HfConfig, w: &mut HfWeights) -> Result<Box<dyn CausalLm>> {
    super::config::load_own(c, w, Config::check, Gpt2::load_hf)
}
