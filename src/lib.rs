//! ConvLens: see what a convolutional network learns. The core (models, weights, visualizations,
//! pictures) is shared by the native CLI and the WebAssembly page.

pub mod backend;
pub mod error;
pub mod models;
pub mod picture;
pub mod predict;
pub mod viz;
pub mod weights;

#[cfg(target_family = "wasm")]
pub mod web;

pub use error::{Error, Result};
pub use models::{LayerInfo, LayerKind, ModelKind, Network};
pub use weights::WeightSet;
