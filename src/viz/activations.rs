//! Intermediate activations (Chollet 5.4.1): the raw tensor of a layer for one photo, the book's
//! picture of it (each channel standardized: −mean, /std, ×64, +128, clipped to 0–255; tiled 16
//! per row) and the numbers behind the book's observations (deeper layers are sparser).

use std::collections::HashMap;
use std::rc::Rc;

use burn::tensor::Tensor;
use serde::Serialize;

use crate::backend::read_f32;
use crate::error::{Error, Result};
use crate::graph::Run;
use crate::network::{LayerInfo, Network};
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
        let per = (values.len() / channels.max(1)).max(1);
        let summaries: Vec<Summary> = values.chunks(per).map(Summary::of).collect();
        let n = values.len().max(1) as f32;
        Self {
            sparsity: summaries.iter().map(|s| s.zeros).sum::<usize>() as f32 / n,
            mean: summaries.iter().map(|s| s.sum).sum::<f32>() / n,
            max: summaries.iter().map(|s| s.max).fold(f32::NEG_INFINITY, f32::max),
            channel_means: summaries.iter().zip(values.chunks(per)).map(|(s, c)| s.sum / c.len() as f32).collect(),
            channel_maxes: summaries.iter().map(|s| s.max).collect(),
        }
    }
}

/// Sum, largest value (NaN ignored) and count of exact zeros of one channel, in one pass.
struct Summary {
    sum: f32,
    max: f32,
    zeros: usize,
}

impl Summary {
    /// Eight running lanes, so the compiler vectorizes the pass (wasm SIMD included); a
    /// value-by-value fold is a chain of dependent adds, and `f32::max` a libm call in wasm.
    fn of(values: &[f32]) -> Self {
        let (mut sum, mut max, mut zeros) = ([0f32; 8], [f32::NEG_INFINITY; 8], [0u32; 8]);
        let lanes = values.chunks_exact(8);
        let rest = lanes.remainder();
        for chunk in lanes {
            for i in 0..8 {
                sum[i] += chunk[i];
                max[i] = if chunk[i] > max[i] { chunk[i] } else { max[i] };
                zeros[i] += (chunk[i] == 0.0) as u32;
            }
        }
        for (i, &v) in rest.iter().enumerate() {
            sum[i] += v;
            max[i] = if v > max[i] { v } else { max[i] };
            zeros[i] += (v == 0.0) as u32;
        }
        Self {
            sum: sum.iter().sum(),
            max: max.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a }),
            zeros: zeros.iter().map(|&z| z as usize).sum(),
        }
    }
}

/// Σ f(v) over `values` in eight running lanes (see `Summary::of`).
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for i in 0..8 {
            lanes[i] += f(chunk[i]);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

impl LayerActivation {
    /// Reads `layer`'s output back from the device and summarizes it; `keep_values` false keeps
    /// only the statistics.
    async fn read(layer: &LayerInfo, output: Tensor<4>, keep_values: bool) -> Result<Self> {
        let values = read_f32(output).await?;
        let stats = LayerStats::of(&values, layer.shape[0]);
        Ok(Self { layer: layer.name.clone(), shape: layer.shape, stats, values: keep_values.then_some(values) })
    }

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
    let mean = lane_sum(values, |v| v) / n;
    let std = (lane_sum(values, |v| (v - mean) * (v - mean)) / n).sqrt();
    if std.is_nan() || std <= 0.0 {
        return vec![128; values.len()];
    }
    let scale = 64.0 / std;
    // `as u8` saturates to 0–255 (NaN to 0): the book's clip without a per-value clamp.
    values.iter().map(|v| ((v - mean) * scale + 128.0) as u8).collect()
}

/// One channel as a colour picture.
pub fn channel_picture(values: &[f32], height: usize, width: usize, colormap: Colormap) -> Rgba {
    let mut picture = Rgba::filled(width, height, [0, 0, 0]);
    draw_channel(&mut picture, values, width, 1, (0, 0), &colormap.levels());
    picture
}

/// Every channel of a layer, standardized, tiled 16 per row, 1 px apart; tiles smaller than
/// 32 px are enlarged (nearest neighbour) so deep 7×7 maps stay visible. Each channel is drawn
/// straight into the grid: VGG16's 18 layers are 17 M pixels.
pub fn layer_grid(activation: &LayerActivation, colormap: Colormap) -> Result<Rgba> {
    let [c, h, w] = activation.shape;
    if h * w <= 1 {
        return Err(Error::Layer(format!("'{}' is a dense layer: it has no spatial map to show", activation.layer)));
    }
    if activation.values.as_ref().is_none_or(|v| v.len() != c * h * w) {
        return Err(Error::invalid("the activation has no values to draw"));
    }
    let factor = (32 / h.max(w)).max(1);
    let (tile_w, tile_h) = (w * factor, h * factor);
    let cols = CHANNELS_PER_ROW.clamp(1, c.max(1));
    let rows = c.div_ceil(cols);
    let mut grid = Rgba::filled(cols * tile_w + cols + 1, rows * tile_h + rows + 1, [24, 24, 28]);
    let colors = colormap.levels();
    for i in 0..c {
        let values = activation.channel(i).ok_or_else(|| Error::invalid("the activation has no values to draw"))?;
        let corner = (1 + (i % cols) * (tile_w + 1), 1 + (i / cols) * (tile_h + 1));
        draw_channel(&mut grid, values, w, factor, corner, &colors);
    }
    Ok(grid)
}

/// Draws one channel (`width` values per row) standardized, coloured and enlarged `factor` times,
/// with its top-left corner at `corner`.
fn draw_channel(canvas: &mut Rgba, values: &[f32], width: usize, factor: usize, corner: (usize, usize), colors: &[[u8; 3]; 256]) {
    let span = width * factor * 4;
    for (row, levels) in standardize_channel(values).chunks(width).enumerate() {
        let start = ((corner.1 + row * factor) * canvas.width + corner.0) * 4;
        for (pixels, &level) in canvas.data[start..start + span].chunks_exact_mut(4 * factor).zip(levels) {
            let [r, g, b] = colors[level as usize];
            pixels.chunks_exact_mut(4).for_each(|p| p.copy_from_slice(&[r, g, b, 255]));
        }
        for copy in 1..factor {
            canvas.data.copy_within(start..start + span, start + copy * canvas.width * 4);
        }
    }
}

/// The layers whose activations are worth showing: every layer with a spatial map.
pub fn spatial_layers(net: &Network) -> Vec<&LayerInfo> {
    net.layers().iter().filter(|l| l.has_map()).collect()
}

/// Activations of `layers` (names) for one photo, from a single forward pass. `keep_values`
/// false keeps only the statistics (for the sparsity chart over all layers).
pub async fn activations(net: &Network, photo: &Photo, layers: &[&str], keep_values: bool) -> Result<Vec<LayerActivation>> {
    let pixels = to_pixels(&[squash(photo, net.input_hw())], net.device())?;
    let outputs = net.forward_many(pixels, layers)?;
    let mut result = Vec::with_capacity(layers.len());
    for (name, tensor) in layers.iter().zip(outputs) {
        result.push(LayerActivation::read(net.layer(name)?, tensor, keep_values).await?);
    }
    Ok(result)
}

/// One photo's activations, computed as they are asked for: a layer runs the network on from the
/// deepest layer computed so far, and keeps every spatial layer it passes, so looking through all
/// the layers one by one (as the page does) costs one forward pass in all.
pub struct ActivationWalk {
    pixels: Tensor<4>,
    /// The forward pass so far: it resumes where it stopped (the values later layers need are
    /// still on the device), so skip connections stay right.
    run: Option<Run>,
    seen: HashMap<String, Rc<LayerActivation>>,
}

impl ActivationWalk {
    pub fn new(net: &Network, photo: &Photo) -> Result<Self> {
        Ok(Self { pixels: to_pixels(&[squash(photo, net.input_hw())], net.device())?, run: None, seen: HashMap::new() })
    }

    /// The activation of `layer` (with its values).
    pub async fn get(&mut self, net: &Network, layer: &str) -> Result<Rc<LayerActivation>> {
        let index = net.layer_index(layer)?;
        if let Some(found) = self.seen.get(&net.layers()[index].name) {
            return Ok(found.clone());
        }
        // Layers are nodes 1.. of the run; a layer already passed but not kept needs a new pass.
        let mut run = match self.run.take() {
            Some(run) if run.done() <= index + 1 => run,
            _ => net.start(self.pixels.clone(), None)?,
        };
        let keep: Vec<bool> = net.layers().iter().enumerate().map(|(i, l)| i == index || l.has_map()).collect();
        let mut outputs = Vec::new();
        net.advance(&mut run, index, |i, out| {
            if keep[i] {
                outputs.push((i, out.clone()));
            }
        })?;
        self.run = Some(run);
        for (i, tensor) in outputs {
            let act = LayerActivation::read(&net.layers()[i], tensor, true).await?;
            self.seen.insert(act.layer.clone(), Rc::new(act));
        }
        self.seen.get(&net.layers()[index].name).cloned().ok_or_else(|| Error::Layer(format!("layer '{layer}' was not reached")))
    }
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
    fn grid_places_enlarged_channels() {
        // 17 channels of 2×2: enlarged 16×, 16 per row, 1 px apart on the background.
        let values: Vec<f32> = (0..17 * 4).map(|i| (i % 4) as f32).collect();
        let act = LayerActivation { layer: "x".into(), shape: [17, 2, 2], stats: LayerStats::of(&values, 17), values: Some(values) };
        let grid = layer_grid(&act, Colormap::Gray).unwrap();
        assert_eq!((grid.width, grid.height), (16 * 32 + 17, 2 * 32 + 3));
        let levels = standardize_channel(&[0.0, 1.0, 2.0, 3.0]);
        let gray = |l: u8| [l, l, l];
        assert_eq!(grid.pixel(0, 0), [24, 24, 28]);
        assert_eq!(grid.pixel(1, 1), gray(levels[0]));
        assert_eq!(grid.pixel(16, 16), gray(levels[0]));
        assert_eq!(grid.pixel(17, 16), gray(levels[1]));
        assert_eq!(grid.pixel(33, 33), [24, 24, 28]);
        assert_eq!(grid.pixel(34 + 20, 1 + 20), gray(levels[3]));
        assert_eq!(grid.pixel(1, 34 + 31), gray(levels[2]));
        assert_eq!(grid.pixel(34, 34), [24, 24, 28]);
    }

    #[test]
    fn stats_count_exact_zeros() {
        let s = LayerStats::of(&[0.0, 1.0, 0.0, 3.0], 2);
        assert_eq!(s.sparsity, 0.5);
        assert_eq!(s.channel_means, vec![0.5, 1.5]);
        assert_eq!(s.channel_maxes, vec![1.0, 3.0]);
    }

    #[test]
    fn stats_in_lanes_match_a_plain_pass() {
        // Two channels of 37 values: four full lanes of eight and a remainder; a NaN is no max.
        let values: Vec<f32> = (0..74).map(|i| if i % 5 == 0 { 0.0 } else { ((i * 7) % 23) as f32 - 4.0 }).collect();
        let mut with_nan = values.clone();
        with_nan[40] = f32::NAN;
        let s = LayerStats::of(&with_nan, 2);
        for (c, channel) in values.chunks(37).enumerate() {
            let plain_max = channel.iter().enumerate().filter(|(i, _)| c * 37 + i != 40).map(|(_, v)| *v).fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(s.channel_maxes[c], plain_max);
        }
        let s = LayerStats::of(&values, 2);
        assert_eq!(s.sparsity, values.iter().filter(|v| **v == 0.0).count() as f32 / 74.0);
        for (c, channel) in values.chunks(37).enumerate() {
            assert!((s.channel_means[c] - channel.iter().sum::<f32>() / 37.0).abs() < 1e-5);
        }
        assert!((s.mean - values.iter().sum::<f32>() / 74.0).abs() < 1e-5);
        assert_eq!(s.max, 18.0);
    }
}
