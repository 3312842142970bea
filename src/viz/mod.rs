//! The three visualizations, built only from `forward_until` / `forward_from`: intermediate
//! activations, filter patterns (gradient ascent) and class activation maps (Grad-CAM family).

pub mod activations;
pub mod filters;
pub mod gradcam;
