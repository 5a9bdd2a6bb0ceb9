//! GPT-2: learned position embeddings, pre-LayerNorm blocks with biases, fused q/k/v,
//! GELU (tanh approximation, `gelu_new`), LM head tied to the token embeddings. Hugging Face
//! stores its projections as `Conv1D` with weights `[in, out]`: transposed once at load.

use crate::error::Result;
use crate::model::layers::{packed_attention, LayerNorm, Linear};
use crate::model::{ArchInfo, Batch, CausalLm};
use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;

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
        if self.n_layer > super::MAX_LAYERS {
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
    wte: candle_nn::Embedding,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: crate::model::weight::Weight,
    device: Device,
}

/// A `Conv1D` (`[in, out]` weight) as a [`Linear`] (`[out, in]`).
fn conv1d(vb: &VarBuilder, inp: usize, out: usize) -> candle_core::Result<Linear> {
    let w = vb.get((inp, out), "weight")?.t()?.contiguous()?;
    Ok(Linear::with_bias(w, Some(vb.get(out, "bias")?)))
}

impl Gpt2 {
    pub fn load_hf(cfg: Config, vb: VarBuilder) -> candle_core::Result<Gpt2> {
        let h = cfg.n_embd;
        let inner = cfg.n_inner.unwrap_or(4 * h);
        // checkpoints saved from GPT2LMHeadModel prefix with `transformer.`, GPT2Model without
        let t = if vb.contains_tensor("transformer.wte.weight") {
            vb.pp("transformer")
        } else {
            vb.clone()
        };
        let wte = t.get((cfg.vocab_size, h), "wte.weight")?;
        let wpe = t.get((cfg.n_positions, h), "wpe.weight")?;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let b = t.pp(format!("h.{i}"));
            blocks.push(Block {
                ln_1: LayerNorm::load(&b.pp("ln_1"), h, cfg.layer_norm_epsilon)?,
                c_attn: conv1d(&b.pp("attn.c_attn"), h, 3 * h)?,
                c_proj: conv1d(&b.pp("attn.c_proj"), h, h)?,
                ln_2: LayerNorm::load(&b.pp("ln_2"), h, cfg.layer_norm_epsilon)?,
                c_fc: conv1d(&b.pp("mlp.c_fc"), h, inner)?,
                mlp_proj: conv1d(&b.pp("mlp.c_proj"), inner, h)?,
            });
        }
        let ln_f = LayerNorm::load(&t.pp("ln_f"), h, cfg.layer_norm_epsilon)?;
        let head = if vb.contains_tensor("lm_head.weight") {
            vb.get((cfg.vocab_size, h), "lm_head.weight")?
        } else {
            wte.clone()
        };
        Ok(Gpt2 {
            wte: candle_nn::Embedding::new(wte, h),
            wpe,
            blocks,
            ln_f,
            head: crate::model::weight::Weight::Dense(head),
            device: vb.device().clone(),
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
        let mut x = (self.wte.forward(&ids)? + self.wpe.index_select(&pos, 0)?)?;
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

    fn lm_head(&self) -> &crate::model::weight::Weight {
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
pub fn load(c: &super::HfConfig, vb: VarBuilder) -> crate::error::Result<Box<dyn CausalLm>> {
    super::load_own(c, vb, Config::check, Gpt2::load_hf)
}
