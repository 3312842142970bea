//! Pictures in and out: decoding photos, squashing them to a network's input, colormaps, grids of
//! tiles, heatmap overlays and PNG encoding. Pure CPU, no tensors beyond the input conversion.

pub mod colormap;
pub mod grid;
pub mod photo;

pub use colormap::Colormap;
pub use grid::{animated_gif, Rgba};
pub use photo::{decode, planes, squash, to_pixels, Photo};
