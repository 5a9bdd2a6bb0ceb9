//! GPT-NeoX (Pythia): LayerNorms with biases, fused q/k/v laid out per head as
//! `[heads, 3, head_dim]`, rotary embedding (half-split) on the first `rotary_pct` of each
//! head only, exact-erf GELU, parallel residual (`x + attn(ln1 x) + mlp(ln2 x)`) when
//! `use_parallel_residual`, untied `embed_out` head.

use crate::error::Result;
use crate::model::decoder::{HfWeights, Weights};
use crate::model::layers::{packed_attention, LayerNorm, Linear, RopeStyle, Rotary};
use crate::model::weight::Weight;
use crate::model::{ArchInfo, Batch, CausalLm};
use candle_core::{Device, Tensor};

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    pub layer_norm_eps: f64,
    pub rotary_pct: Option<f64>,
    pub rotary_emb_base: Option<f64>,
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "yes")]
    pub use_parallel_residual: bool,
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    pub partial_rotary_factor: Option<f64>,
    pub rope_type: Option<String>,
}

fn yes() -> bool {
    true
}

impl Config {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.num_hidden_layers > super::config::MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers = {} is out of range",
                self.num_hidden_layers
            ));
        }
        match self.hidden_act.as_deref() {
            None | Some("gelu") => {}
            Some(a) => return Err(format!("hidden_act {a} is not supported (expected gelu)")),
        }
        if self
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.as_deref())
            .is_some_and(|t| t != "default")
        {
            return Err("RoPE scaling is not supported yet".into());
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err("hidden_size is not divisible by num_attention_heads".into());
        }
        let pct = self.rotary_fraction();
        let fits = pct > 0.0 && pct <= 1.0 && self.rotary_dim().is_multiple_of(2);
        if !fits || self.rotary_dim() == 0 {
            return Err(format!("rotary fraction {pct} is out of range (0, 1]"));
        }
        let base = self.rope_base();
        if !(base.is_finite() && base > 1.0 && base <= 1e12) {
            return Err(format!("rope base {base} is out of range (1, 1e12]"));
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The rotated fraction of each head (`partial_rotary_factor`, or the older `rotary_pct`).
    fn rotary_fraction(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.partial_rotary_factor)
            .or(self.rotary_pct)
            .unwrap_or(1.0)
    }

    fn rotary_dim(&self) -> usize {
        (self.head_dim() as f64 * self.rotary_fraction()) as usize
    }

    fn rope_base(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(self.rotary_emb_base)
            .unwrap_or(10_000.0)
    }
}

#[derive(Debug)]
struct Block {
    ln1: LayerNorm,
    ln2: LayerNorm,
    qkv: Linear,
    dense: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Debug)]
pub struct GptNeox {
    cfg: Config,
    embed: Weight,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Weight,
    rotary: Rotary,
    device: Device,
}

impl GptNeox {
    pub fn load_hf(cfg: Config, w: &mut HfWeights) -> Result<GptNeox> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let norm = |w: &mut HfWeights, name: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(
                w.get(&format!("{name}.weight"), &[h])?,
                w.get(&format!("{name}.bias"), &[h])?,
                eps,
            ))
        };
        let linear = |w: &mut HfWeights, name: &str, inp: usize, out: usize| -> Result<Linear> {
            Ok(Linear::from_weight(
                w.weight(&format!("{name}.weight"), &[out, inp])?,
                Some(w.get(&format!("{name}.bias"), &[out])?),
            ))
        };
        let embed = w.weight("gpt_neox.embed_in.weight", &[cfg.vocab_size, h])?;
        let ffn = cfg.intermediate_size;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("gpt_neox.layers.{i}");
            blocks.push(Block {
                ln1: norm(w, &format!("{l}.input_layernorm"))?,
                ln2: norm(w, &format!("{l}.post_attention_layernorm"))?,
                qkv: linear(w, &format!("{l}.attention.query_key_value"), h, 3 * h)?,
                dense: linear(w, &format!("{l}.attention.dense"), h, h)?,
                up: linear(w, &format!("{l}.mlp.dense_h_to_4h"), h, ffn)?,
                down: linear(w, &format!("{l}.mlp.dense_4h_to_h"), ffn, h)?,
            });
        }
        let ln_f = norm(w, "gpt_neox.final_layer_norm")?;
        let head = if cfg.tie_word_embeddings && !w.has("embed_out.weight") {
            embed.clone()
        } else {
            w.weight("embed_out.weight", &[cfg.vocab_size, h])?
        };
        Ok(GptNeox {
            rotary: Rotary::new(cfg.rotary_dim(), cfg.rope_base(), RopeStyle::Halves),
            embed,
            blocks,
            ln_f,
            head,
            device: w.device().clone(),
            cfg,
        })
    }

    fn attention(
        &self,
        b: &Block,
        x: &Tensor,
        batch: &Batch,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let (t, nh, hd) = (x.dim(0)?, self.cfg.num_attention_heads, self.cfg.head_dim());
        // [T, 3H] → [T, heads, 3, hd]
        let qkv = b.qkv.forward(x)?.reshape((t, nh, 3, hd))?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = self
            .rotary
            .apply(&part(0)?.unsqueeze(0)?, cos, sin)?
            .squeeze(0)?;
        let k = self
            .rotary
            .apply(&part(1)?.unsqueeze(0)?, cos, sin)?
            .squeeze(0)?;
        let v = part(2)?;
        let scale = 1.0 / (hd as f64).sqrt();
        b.dense
            .forward(&packed_attention(&q, &k, &v, &batch.spans, scale, None)?)
    }
}

impl CausalLm for GptNeox {
    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let ids = Tensor::new(batch.ids.as_slice(), &self.device)?;
        let mut x = self.embed.gather(&ids)?;
        let (cos, sin) = self.rotary.tables(&batch.positions, &self.device)?;
        for b in &self.blocks {
            let attn = self.attention(b, &b.ln1.forward(&x)?, batch, &cos, &sin)?;
            x = if self.cfg.use_parallel_residual {
                let mlp = b
                    .down
                    .forward(&b.up.forward(&b.ln2.forward(&x)?)?.gelu_erf()?)?;
                ((x + attn)? + mlp)?
            } else {
                let x = (x + attn)?;
                let mlp = b
                    .down
                    .forward(&b.up.forward(&b.ln2.forward(&x)?)?.gelu_erf()?)?;
                (x + mlp)?
            };
        }
        self.ln_f.forward(&x)
    }

    fn lm_head(&self) -> &Weight {
        &self.head
    }

    fn describe(&self) -> ArchInfo {
        let c = &self.cfg;
        ArchInfo {
            architecture: "gpt_neox".into(),
            layers: c.num_hidden_layers,
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            kv_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            ffn: c.intermediate_size,
            gated_ffn: false,
            vocab: c.vocab_size,
            context_length: c.max_position_embeddings,
            sliding_window: None,
        }
    }
}

/// Registry entry: the network from a checkpoint folder's config.json and weights.
pub fn load(c: &super::config::HfConfig, w: &mut HfWeights) -> Result<Box<dyn CausalLm>> {
    super::config::load_own(c, w, Config::check, GptNeox::load_hf)
}
