//! The three visualizations, built only from `forward_until` / `forward_from`: intermediate
//! activations, filter patterns (gradient ascent) and class activation maps (Grad-CAM family),
//! with metrics of how faithful a map is (`faithfulness`).

pub mod activations;
pub mod dream;
pub mod faithfulness;
pub mod filters;
pub mod gradcam;
pub mod guided;
pub(crate) mod lucid;
