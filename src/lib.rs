//! ConvLens: see what a convolutional network learns. The core is shared by the native CLI and the
//! WebAssembly page; data flows one way: bytes (`formats`) → a graph (`graph`, built from the
//! file's own architecture or a `models` catalogue entry) → a `Network` → the visualizations
//! (`viz`) → pictures (`picture`).

pub mod backend;
pub mod choice;
pub mod error;
pub mod formats;
pub mod graph;
pub mod models;
pub mod network;
pub mod open;
pub mod picture;
pub mod predict;
pub mod preprocess;
pub mod random;
pub mod viz;

#[cfg(all(target_family = "wasm", feature = "threads"))]
pub mod thread_pool;
#[cfg(target_family = "wasm")]
pub mod web;

pub use error::{Error, Result};
pub use formats::WeightSet;
pub use graph::LayerKind;
pub use network::{LayerInfo, Network};
pub use open::{open, OpenOptions};
