//! Intermediate activations (Chollet 5.4.1): the raw tensor of a layer for one photo, the book's
//! picture of it (each channel standardized: −mean, /std, ×64, +128, clipped to 0–255; tiled 16
//! per row) and the numbers behind the book's observations (deeper layers are sparser).

use serde::Serialize;

use crate::backend::read_f32;
use crate::error::{Error, Result};
use crate::models::{LayerInfo, Network};
use crate::picture::grid::{tile, upscale_nearest};
use crate::picture::{squash, to_pixels, Colormap, Photo, Rgba};

/// Channels per row in the grid, as the book's `images_per_row`.
pub const CHANNELS_PER_ROW: usize = 16;

/// One layer's activation for one photo.
#[derive(Debug, Clone, Serialize)]
pub struct LayerActivation {
    pub layer: String,
    /// [C, H, W]
    pub shape: [usize; 3],
    /// C*H*W values, channel-major.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    pub stats: LayerStats,
}

/// Summary numbers of an activation.
#[derive(Debug, Clone, Serialize)]
pub struct LayerStats {
    /// Fraction of values exactly zero (ReLU's silence).
    pub sparsity: f32,
    pub mean: f32,
    pub max: f32,
    pub channel_means: Vec<f32>,
    pub channel_maxes: Vec<f32>,
}

impl LayerStats {
    fn of(values: &[f32], channels: usize) -> Self {
        let per = values.len() / channels.max(1);
        let chunks = || values.chunks(per.max(1));
        Self {
            sparsity: values.iter().filter(|v| **v == 0.0).count() as f32 / values.len().max(1) as f32,
            mean: values.iter().sum::<f32>() / values.len().max(1) as f32,
            max: values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            channel_means: chunks().map(|c| c.iter().sum::<f32>() / c.len() as f32).collect(),
            channel_maxes: chunks().map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max)).collect(),
        }
    }
}

impl LayerActivation {
    /// The values of channel `c` (H*W, row-major).
    pub fn channel(&self, c: usize) -> Option<&[f32]> {
        let [_, h, w] = self.shape;
        self.values.as_ref()?.get(c * h * w..(c + 1) * h * w)
    }
}

/// The book's standardization of one channel to 0–255 gray levels. A constant channel (std 0)
/// becomes flat mid-gray instead of the book's NaN.
pub fn standardize_channel(values: &[f32]) -> Vec<u8> {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
    values
        .iter()
        .map(|v| {
            let z = if std > 0.0 { (v - mean) / std } else { 0.0 };
            (z * 64.0 + 128.0).clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// One channel as a colour picture.
pub fn channel_picture(values: &[f32], height: usize, width: usize, colormap: Colormap) -> Rgba {
    let levels = standardize_channel(values);
    Rgba::from_fn(width, height, |x, y| colormap.rgb(levels[y * width + x] as f32 / 255.0))
}

/// Every channel of a layer, standardized, tiled 16 per row; tiles smaller than 32 px are
/// enlarged (nearest neighbour) so deep 7×7 maps stay visible.
pub fn layer_grid(activation: &LayerActivation, colormap: Colormap) -> Result<Rgba> {
    let [c, h, w] = activation.shape;
    if h * w <= 1 {
        return Err(Error::Layer(format!("'{}' is a dense layer: it has no spatial map to show", activation.layer)));
    }
    let factor = (32 / h.max(w)).max(1);
    let tiles = (0..c)
        .map(|i| activation.channel(i).map(|v| upscale_nearest(&channel_picture(v, h, w, colormap), factor)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::invalid("the activation has no values to draw"))?;
    Ok(tile(&tiles, CHANNELS_PER_ROW, 1, [24, 24, 28]))
}

/// The layers whose activations are worth showing: every conv, pool and block layer.
pub fn spatial_layers(net: &Network) -> Vec<&LayerInfo> {
    net.layers().iter().filter(|l| l.kind.is_spatial() && l.shape[1] * l.shape[2] > 1).collect()
}

/// Activations of `layers` (names) for one photo, from a single forward pass. `keep_values`
/// false keeps only the statistics (for the sparsity chart over all layers).
pub async fn activations(net: &Network, photo: &Photo, layers: &[&str], keep_values: bool) -> Result<Vec<LayerActivation>> {
    let pixels = to_pixels(&[squash(photo, net.input_size() as u32)], net.device())?;
    let outputs = net.forward_many(pixels, layers)?;
    let mut result = Vec::with_capacity(layers.len());
    for (name, tensor) in layers.iter().zip(outputs) {
        let info = net.layer(name)?;
        let values = read_f32(tensor).await?;
        result.push(LayerActivation {
            layer: info.name.clone(),
            shape: info.shape,
            stats: LayerStats::of(&values, info.shape[0]),
            values: keep_values.then_some(values),
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_channel_is_flat_gray() {
        assert_eq!(standardize_channel(&[3.0; 9]), vec![128; 9]);
    }

    #[test]
    fn standardization_matches_the_book() {
        // mean 2, std sqrt(2/3): z = ±1.2247 -> 128 ± 78.4
        assert_eq!(standardize_channel(&[1.0, 2.0, 3.0]), vec![49, 128, 206]);
    }

    #[test]
    fn stats_count_exact_zeros() {
        let s = LayerStats::of(&[0.0, 1.0, 0.0, 3.0], 2);
        assert_eq!(s.sparsity, 0.5);
        assert_eq!(s.channel_means, vec![0.5, 1.5]);
        assert_eq!(s.channel_maxes, vec![1.0, 3.0]);
    }
}
