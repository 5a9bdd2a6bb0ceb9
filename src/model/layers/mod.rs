//! Building blocks every architecture shares, written once, one file a layer (as
//! text-embeddings-inference's `backends/candle/src/layers/`): linear maps, norms, rotary
//! position embeddings, attention, the feed-forward block. The numeric work under them is in
//! `crate::kernels`.

mod attention;
mod linear;
mod mlp;
mod norm;
mod rotary;

pub use attention::{attention, attention_after, packed_attention, Attention, KvPrefix, QkNorm};
pub use linear::{Linear, Stacked};
pub use mlp::{Activation, Mlp};
pub use norm::{LayerNorm, RmsNorm};
pub use rotary::{RopeStyle, Rotary};
