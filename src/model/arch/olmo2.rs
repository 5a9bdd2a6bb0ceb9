//! OLMo 2: norms after attention and after the MLP only (none before), and q/k RMS norms over
//! all heads' features at once. Half-split rotation in both formats.

use super::config::{base_gguf, base_hf, HfConfig};
use crate::error::Result;
use crate::model::decoder::{Norms, QkNormKind, Spec};
use crate::model::gguf::Gguf;

pub fn gguf(g: &Gguf) -> Result<Spec> {
    Ok(Spec {
        norms: Norms::Post,
        qk_norm: QkNormKind::Whole,
        ..base_gguf(g, "olmo2")?
    })
}

pub fn hf(c: &HfConfig) -> std::result::Result<Spec, String> {
    if c.usize_opt("sliding_window")?.is_some() {
        return Err("olmo2 with a sliding window (OLMo 3) is not supported yet".into());
    }
    Ok(Spec {
        norms: Norms::Post,
        qk_norm: QkNormKind::Whole,
        ..base_hf(c)?
    })
}
