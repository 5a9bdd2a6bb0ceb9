//! The decoder-only transformer every RoPE architecture here is an instance of (Llama,
//! Mistral, Qwen 2/3, Gemma 3, OLMo 2, Phi-3), written once. An architecture file only
//! states a [`Spec`]: its hyper-parameters and what differs (norm placement, q/k norms,
//! biases, fused projections, activation, embedding scale, sliding-window layers). The same
//! loader reads GGUF files and Hugging Face checkpoints through [`Weights`].

use super::layers::{
    Activation, Attention, KvPrefix, Linear, Mlp, QkNorm, RmsNorm, RopeStyle, Rotary, Stacked,
};
use super::safetensors::SafeFiles;
use super::weight::{Residency, Weight};
use super::{ArchInfo, Batch, CausalLm, Prefix};
use crate::error::{Error, Result};
use crate::profile::{self, Phase};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

/// Where the norms sit in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norms {
    /// Before attention and before the MLP (Llama, Qwen, Mistral, Phi-3).
    Pre,
    /// Before and after both (Gemma 3).
    PreAndPost,
    /// After both only (OLMo 2).
    Post,
}

/// Which q/k norm an architecture has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNormKind {
    None,
    PerHead,
    Whole,
}

/// Everything that defines one architecture's network, from the file's own metadata.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name shown by `inspect` (`llama`, `qwen3`, …).
    pub arch: String,
    pub layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Rotated features per head (≤ head_dim).
    pub rope_dim: usize,
    pub rope_base: f64,
    /// RoPE base of sliding-window layers, where it differs (Gemma 3).
    pub local_rope_base: Option<f64>,
    pub rope_style: RopeStyle,
    /// Per-frequency divisors (Llama 3.1 scaling), `rope_dim / 2` of them.
    pub rope_factors: Option<Vec<f32>>,
    pub rms_eps: f64,
    pub context_length: usize,
    pub vocab: usize,
    pub norms: Norms,
    pub qk_norm: QkNormKind,
    /// q/k/v biases (Qwen 2).
    pub qkv_bias: bool,
    /// One `[q; k; v]` projection in the file (Phi-3).
    pub fused_qkv: bool,
    /// One `[gate; up]` projection in the file (Phi-3).
    pub fused_gate_up: bool,
    pub act: Activation,
    /// Embeddings multiplied by this (Gemma: sqrt(hidden)).
    pub embed_scale: Option<f64>,
    pub attn_scale: f64,
    /// Sliding window (keys per query, itself included) and which layers use it.
    pub window: Option<usize>,
    pub sliding_layers: Vec<bool>,
    /// Added to every RMS-norm weight at load (Hugging Face Gemma stores `w` for `1 + w`).
    pub norm_offset: f64,
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
}

impl Spec {
    /// Refuses shapes and values no network can have, naming the offending field: a
    /// corrupted file must fail here, not produce NaN scores.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let pos = |name: &str, v: usize| {
            if v == 0 {
                Err(format!("{name} is 0"))
            } else {
                Ok(())
            }
        };
        pos("layer count", self.layers)?;
        pos("hidden size", self.hidden)?;
        pos("feed-forward size", self.ffn)?;
        pos("head count", self.heads)?;
        pos("kv head count", self.kv_heads)?;
        pos("head dim", self.head_dim)?;
        pos("vocabulary", self.vocab)?;
        pos("context length", self.context_length)?;
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} heads cannot share {} kv heads",
                self.heads, self.kv_heads
            ));
        }
        if self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) || self.rope_dim == 0 {
            return Err(format!(
                "rotary dimension {} does not fit head dim {}",
                self.rope_dim, self.head_dim
            ));
        }
        let finite_pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} = {v} (must be finite and positive)"))
            }
        };
        finite_pos("rope base", self.rope_base)?;
        if self.rope_base <= 1.0 || self.rope_base > 1e12 {
            return Err(format!(
                "rope base = {} is out of range (1, 1e12]",
                self.rope_base
            ));
        }
        for (name, v, max) in [
            ("layer count", self.layers, 1 << 12),
            ("hidden size", self.hidden, 1 << 18),
            ("feed-forward size", self.ffn, 1 << 20),
            ("head count", self.heads, 1 << 12),
            ("head dim", self.head_dim, 1 << 12),
            ("vocabulary", self.vocab, 1 << 24),
            ("context length", self.context_length, 1 << 26),
        ] {
            if v > max {
                return Err(format!("{name} = {v} is out of range (at most {max})"));
            }
        }
        if let Some(b) = self.local_rope_base {
            finite_pos("sliding-window rope base", b)?;
        }
        finite_pos("norm epsilon", self.rms_eps)?;
        if self.rms_eps > 0.1 {
            return Err(format!("norm epsilon = {} is out of range", self.rms_eps));
        }
        finite_pos("attention scale", self.attn_scale)?;
        if let Some(s) = self.embed_scale {
            finite_pos("embedding scale", s)?;
        }
        for c in [self.attn_softcap, self.final_softcap]
            .into_iter()
            .flatten()
        {
            finite_pos("soft-cap", c)?;
        }
        if let Some(f) = &self.rope_factors {
            if f.len() != self.rope_dim / 2 || f.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(format!(
                    "rope frequency factors: {} values, expected {} finite positive ones",
                    f.len(),
                    self.rope_dim / 2
                ));
            }
        }
        if self.window == Some(0) {
            return Err("sliding window is 0".into());
        }
        if self.sliding_layers.len() != self.layers {
            return Err("sliding-window layer list does not match the layer count".into());
        }
        Ok(())
    }
}

/// One tensor of a block, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    AttnNorm,
    Q,
    K,
    V,
    Qkv,
    O,
    QNorm,
    KNorm,
    PostAttnNorm,
    FfnNorm,
    Gate,
    Up,
    GateUp,
    Down,
    PostFfnNorm,
}

/// A model file's tensors by role: GGUF names (`blk.N.attn_q`) or Hugging Face names
/// (`model.layers.N.self_attn.q_proj`).
pub trait Weights {
    /// `NAME.weight` (or `.bias`) with the given shape, in f32 on the model's device.
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor>;
    /// A weight matrix, kept as the file stores it (see [`Weight`]).
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Weight>;
    fn has(&self, name: &str) -> bool;
    /// The file's name of a block tensor (without `.weight`).
    fn block(&self, layer: usize, role: Role, norms: Norms) -> String;
    fn embed(&self) -> &'static str;
    fn final_norm(&self) -> &'static str;
    fn output(&self) -> &'static str;
    fn device(&self) -> &Device;
}

/// GGUF tensor names, as llama.cpp's converter writes them.
pub fn gguf_name(layer: usize, role: Role) -> String {
    let n = match role {
        Role::AttnNorm => "attn_norm",
        Role::Q => "attn_q",
        Role::K => "attn_k",
        Role::V => "attn_v",
        Role::Qkv => "attn_qkv",
        Role::O => "attn_output",
        Role::QNorm => "attn_q_norm",
        Role::KNorm => "attn_k_norm",
        Role::PostAttnNorm => "post_attention_norm",
        Role::FfnNorm => "ffn_norm",
        Role::Gate => "ffn_gate",
        Role::Up | Role::GateUp => "ffn_up",
        Role::Down => "ffn_down",
        Role::PostFfnNorm => "post_ffw_norm",
    };
    format!("blk.{layer}.{n}")
}

/// Hugging Face tensor names; the norms' names depend on where the norms sit.
pub fn hf_name(layer: usize, role: Role, norms: Norms) -> String {
    let n = match (role, norms) {
        (Role::AttnNorm, _) => "input_layernorm",
        (Role::Q, _) => "self_attn.q_proj",
        (Role::K, _) => "self_attn.k_proj",
        (Role::V, _) => "self_attn.v_proj",
        (Role::Qkv, _) => "self_attn.qkv_proj",
        (Role::O, _) => "self_attn.o_proj",
        (Role::QNorm, _) => "self_attn.q_norm",
        (Role::KNorm, _) => "self_attn.k_norm",
        (Role::PostAttnNorm, _) => "post_attention_layernorm",
        (Role::FfnNorm, Norms::Pre) => "post_attention_layernorm",
        (Role::FfnNorm, _) => "pre_feedforward_layernorm",
        (Role::Gate, _) => "mlp.gate_proj",
        (Role::Up, _) => "mlp.up_proj",
        (Role::GateUp, _) => "mlp.gate_up_proj",
        (Role::Down, _) => "mlp.down_proj",
        (Role::PostFfnNorm, _) => "post_feedforward_layernorm",
    };
    format!("model.layers.{layer}.{n}")
}

/// A Hugging Face checkpoint's tensors.
pub struct HfWeights<'a> {
    pub files: &'a SafeFiles,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    pub dir: PathBuf,
}

impl HfWeights<'_> {
    /// A `Conv1D` weight (stored `[in, out]`, GPT-2) as a `[out, in]` matrix, transposed in
    /// its stored dtype and kept as stored (see [`Weight::from_tensor`]).
    pub fn weight_transposed(&mut self, name: &str, stored_shape: &[usize]) -> Result<Weight> {
        let t = self.stored(name, stored_shape)?.t()?.contiguous()?;
        Weight::from_tensor(t, self.dtype, self.residency)
    }

    /// The checkpoint's folder, for messages.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn stored(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.files.load(name, &self.device)?;
        if t.dims() != shape {
            return Err(Error::InvalidModel {
                path: self.dir.clone(),
                message: format!(
                    "weights do not match config.json: {name} has shape {:?}, expected {shape:?}",
                    t.dims()
                ),
            });
        }
        Ok(t)
    }
}

impl Weights for HfWeights<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.stored(name, shape)?.to_dtype(self.dtype)?)
    }
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        Weight::from_tensor(self.stored(name, shape)?, self.dtype, self.residency)
    }
    fn has(&self, name: &str) -> bool {
        self.files.contains(name)
    }
    fn block(&self, layer: usize, role: Role, norms: Norms) -> String {
        hf_name(layer, role, norms)
    }
    fn embed(&self) -> &'static str {
        "model.embed_tokens"
    }
    fn final_norm(&self) -> &'static str {
        "model.norm"
    }
    fn output(&self) -> &'static str {
        "lm_head"
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

/// A GGUF file's tensors (dequantised on reading).
pub struct GgufWeights<'a> {
    pub g: &'a mut super::gguf::Gguf,
    pub device: Device,
}

impl Weights for GgufWeights<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.g.tensor(name, shape, &self.device)
    }
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        self.g.weight(name, shape, &self.device)
    }
    fn has(&self, name: &str) -> bool {
        self.g.has_tensor(name)
    }
    fn block(&self, layer: usize, role: Role, _: Norms) -> String {
        gguf_name(layer, role)
    }
    fn embed(&self) -> &'static str {
        "token_embd"
    }
    fn final_norm(&self) -> &'static str {
        "output_norm"
    }
    fn output(&self) -> &'static str {
        "output"
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: Option<RmsNorm>,
    attn: Attention,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: Option<RmsNorm>,
    mlp: Mlp,
    post_ffn_norm: Option<RmsNorm>,
    sliding: bool,
}

/// The network.
#[derive(Debug)]
pub struct Decoder {
    spec: Spec,
    embed: Weight,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Weight,
    global_rope: Rotary,
    local_rope: Rotary,
    device: Device,
}

impl Decoder {
    /// Builds the network `spec` describes from `w`'s tensors.
    pub fn load(spec: Spec, w: &mut dyn Weights) -> Result<Decoder> {
        let s = &spec;
        let (h, hd) = (s.hidden, s.head_dim);
        let (qd, kvd) = (s.heads * hd, s.kv_heads * hd);
        let off = s.norm_offset;
        let norm = |w: &mut dyn Weights, name: &str, n: usize| -> Result<RmsNorm> {
            let t = w.get(&format!("{name}.weight"), &[n])?;
            let t = if off != 0.0 { (t + off)? } else { t };
            Ok(RmsNorm::new(t, s.rms_eps))
        };
        let lin = |w: &mut dyn Weights, name: &str, out: usize, inp: usize, bias: bool| {
            let weight = w.weight(&format!("{name}.weight"), &[out, inp])?;
            let b = if bias {
                Some(w.get(&format!("{name}.bias"), &[out])?)
            } else {
                None
            };
            Ok::<_, Error>(Linear::from_weight(weight, b))
        };
        let embed_name = format!("{}.weight", w.embed());
        let embed_w = w.weight(&embed_name, &[s.vocab, h])?;
        let mut blocks = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let name = |w: &dyn Weights, r: Role| w.block(i, r, s.norms);
            let bnorm = |w: &mut dyn Weights, r: Role, n: usize| {
                let nm = name(w, r);
                norm(w, &nm, n)
            };
            let blin = |w: &mut dyn Weights, r: Role, out: usize, inp: usize, bias: bool| {
                let nm = name(w, r);
                lin(w, &nm, out, inp, bias)
            };
            let qkv = if s.fused_qkv {
                let n = name(w, Role::Qkv);
                let qkv = w.weight(&format!("{n}.weight"), &[qd + 2 * kvd, h])?;
                Stacked::Fused {
                    lin: Linear::from_weight(qkv, None),
                    widths: vec![qd, kvd, kvd],
                }
            } else {
                Stacked::new(vec![
                    blin(w, Role::Q, qd, h, s.qkv_bias)?,
                    blin(w, Role::K, kvd, h, s.qkv_bias)?,
                    blin(w, Role::V, kvd, h, s.qkv_bias)?,
                ])?
            };
            let qk_norm = match s.qk_norm {
                QkNormKind::None => None,
                QkNormKind::PerHead => Some(QkNorm::PerHead(
                    bnorm(w, Role::QNorm, hd)?,
                    bnorm(w, Role::KNorm, hd)?,
                )),
                QkNormKind::Whole => Some(QkNorm::Whole(
                    bnorm(w, Role::QNorm, qd)?,
                    bnorm(w, Role::KNorm, kvd)?,
                )),
            };
            let sliding = s.sliding_layers[i];
            let attn = Attention {
                qkv,
                o: blin(w, Role::O, h, qd, false)?,
                qk_norm,
                heads: s.heads,
                kv_heads: s.kv_heads,
                head_dim: hd,
                scale: s.attn_scale,
                window: if sliding { s.window } else { None },
                softcap: s.attn_softcap,
            };
            let gate_up = if s.fused_gate_up {
                let n = name(w, Role::GateUp);
                let gu = w.weight(&format!("{n}.weight"), &[2 * s.ffn, h])?;
                Stacked::Fused {
                    lin: Linear::from_weight(gu, None),
                    widths: vec![s.ffn, s.ffn],
                }
            } else {
                Stacked::new(vec![
                    blin(w, Role::Gate, s.ffn, h, false)?,
                    blin(w, Role::Up, s.ffn, h, false)?,
                ])?
            };
            let mlp = Mlp {
                gate_up,
                down: blin(w, Role::Down, h, s.ffn, false)?,
                act: s.act,
            };
            let pre = s.norms != Norms::Post;
            let post = s.norms != Norms::Pre;
            blocks.push(Block {
                attn_norm: pre.then(|| bnorm(w, Role::AttnNorm, h)).transpose()?,
                attn,
                post_attn_norm: post.then(|| bnorm(w, Role::PostAttnNorm, h)).transpose()?,
                ffn_norm: pre.then(|| bnorm(w, Role::FfnNorm, h)).transpose()?,
                mlp,
                post_ffn_norm: post.then(|| bnorm(w, Role::PostFfnNorm, h)).transpose()?,
                sliding,
            });
        }
        let final_norm = w.final_norm();
        let out_norm = norm(w, final_norm, h)?;
        let output = format!("{}.weight", w.output());
        let head = if w.has(&output) {
            w.weight(&output, &[s.vocab, h])?
        } else {
            embed_w.clone() // tied embeddings
        };
        let mut global_rope = Rotary::new(s.rope_dim, s.rope_base, s.rope_style);
        if let Some(f) = &s.rope_factors {
            global_rope = global_rope.with_factors(f);
        }
        let local_rope = Rotary::new(
            s.rope_dim,
            s.local_rope_base.unwrap_or(s.rope_base),
            s.rope_style,
        );
        Ok(Decoder {
            embed: embed_w,
            blocks,
            norm: out_norm,
            head,
            global_rope,
            local_rope,
            device: w.device().clone(),
            spec,
        })
    }

    /// The forward: every sequence of the batch conditioned on `prefix` if given (one
    /// [`KvPrefix`] per layer; the batch's positions must start after the prefix), and
    /// each layer's rotated keys and values pushed to `capture` if given (what
    /// [`CausalLm::prefix`] keeps).
    fn run(
        &self,
        batch: &Batch,
        prefix: Option<&[KvPrefix]>,
        mut capture: Option<&mut Vec<KvPrefix>>,
    ) -> Result<Tensor> {
        let span = profile::span(Phase::Embed);
        let ids = Tensor::new(batch.ids.as_slice(), &self.device)?;
        let mut x = self.embed.gather(&ids)?;
        if let Some(s) = self.spec.embed_scale {
            x = (x * s)?;
        }
        drop(span);
        let norm = |n: &RmsNorm, x: &Tensor| profile::time(Phase::Norm, || n.forward(x));
        // `(x + a, n(x + a))`: each residual addition is fused with the norm that reads it
        // (the next sub-block's input norm, or the final norm)
        let add_norm = |x: &Tensor, a: &Tensor, n: Option<&RmsNorm>| match n {
            Some(n) => profile::time(Phase::Norm, || n.add_forward(x, a)),
            None => profile::time(Phase::Residual, || {
                let s = (x + a)?;
                Ok::<_, Error>((s.clone(), s))
            }),
        };
        // the norm that reads block `i`'s input: its own, or the final one after the last
        let input_norm = |i: usize| match self.blocks.get(i) {
            Some(b) => b.attn_norm.as_ref(),
            None => Some(&self.norm),
        };
        // the first block's input; later ones come with the addition before them
        let mut h = match input_norm(0) {
            Some(n) => norm(n, &x)?,
            None => x.clone(),
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let rope = if b.sliding && self.spec.local_rope_base.is_some() {
                (&self.local_rope, batch.positions.as_slice())
            } else {
                (&self.global_rope, batch.positions.as_slice())
            };
            if let Some(c) = capture.as_deref_mut() {
                let (_, k, v) = b.attn.project_heads(&h, rope.0, rope.1)?;
                c.push(KvPrefix { k, v });
            }
            let p = prefix.map(|p| &p[i]);
            let mut a = b.attn.forward(&h, &batch.spans, rope, p)?;
            if let Some(n) = &b.post_attn_norm {
                a = norm(n, &a)?;
            }
            let (x1, h1) = add_norm(&x, &a, b.ffn_norm.as_ref())?;
            let mut m = b.mlp.forward(&h1)?;
            if let Some(n) = &b.post_ffn_norm {
                m = norm(n, &m)?;
            }
            (x, h) = add_norm(&x1, &m, input_norm(i + 1))?;
        }
        Ok(h)
    }
}

impl CausalLm for Decoder {
    fn forward(&self, batch: &Batch) -> Result<Tensor> {
        self.run(batch, None, None)
    }

    fn prefix(&self, ids: &[u32]) -> Result<Prefix> {
        let mut b = Batch::default();
        b.push(ids);
        let mut layers = Vec::with_capacity(self.blocks.len());
        self.run(&b, None, Some(&mut layers))?;
        Ok(Prefix {
            len: ids.len(),
            layers,
        })
    }

    fn forward_after(&self, batch: &Batch, prefix: &Prefix) -> Result<Tensor> {
        for &(s, _) in &batch.spans {
            if batch
                .positions
                .get(s)
                .is_some_and(|&p| p as usize != prefix.len)
            {
                return Err(Error::Usage(format!(
                    "a sequence after a prefix of {} tokens starts at position {}",
                    prefix.len, batch.positions[s]
                )));
            }
        }
        self.run(batch, Some(&prefix.layers), None)
    }

    fn lm_head(&self) -> &Weight {
        &self.head
    }

    fn logit_softcap(&self) -> Option<f64> {
        self.spec.final_softcap
    }

    fn describe(&self) -> ArchInfo {
        let s = &self.spec;
        ArchInfo {
            architecture: s.arch.clone(),
            layers: s.layers,
            hidden: s.hidden,
            heads: s.heads,
            kv_heads: s.kv_heads,
            head_dim: s.head_dim,
            ffn: s.ffn,
            gated_ffn: true,
            vocab: s.vocab,
            context_length: s.context_length,
            sliding_window: s.window.filter(|_| s.sliding_layers.iter().any(|&x| x)),
        }
    }
}
