//! Class activation maps from gradients: Grad-CAM (Selvaraju et al. 2017, in Chollet's 5.4.3
//! form), Grad-CAM++ (Chattopadhyay et al. 2018) and LayerCAM (Jiang et al. 2021), with the weight
//! formulas of pytorch-grad-cam. One forward to the layer, one backward from the class score; the
//! three methods differ only in how they weigh the same activation and gradient.

use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::backend::read_f32;
use crate::choice::{self, ValueEnum};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::picture::{planes, squash, to_pixels, Colormap, Photo, Rgba};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
pub enum CamMethod {
    #[value(name = "gradcam", alias = "grad-cam")]
    GradCam,
    #[value(name = "gradcam++", aliases = ["grad-cam++", "gradcampp"])]
    GradCamPlusPlus,
    #[value(name = "layercam")]
    LayerCam,
}

impl CamMethod {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("method", name)
    }
}

/// Which class score is differentiated: the softmax probability (the book) or the logit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
pub enum Score {
    #[value(name = "prob")]
    Probability,
    Logit,
}

/// A class activation map for one photo.
#[derive(Debug, Clone, Serialize)]
pub struct Cam {
    pub layer: String,
    pub class: usize,
    pub label: String,
    /// Probability of `class` for this photo.
    pub prob: f32,
    /// Map height and width (the layer's resolution).
    pub height: usize,
    pub width: usize,
    /// The map after ReLU, divided by its max (all zeros stays zeros), row-major.
    pub map: Vec<f32>,
}

/// The activation [C, H*W] and gradient of the score w.r.t. it, on the host, plus the class.
struct LayerGradient {
    activation: Vec<f32>,
    gradient: Vec<f32>,
    channels: usize,
    class: usize,
    prob: f32,
}

/// One forward pass of a photo with `layer`'s output as a gradient leaf: the class
/// probabilities, and the graph for one backward from a class score to the layer. The page's
/// predictions run it at the Grad-CAM layer, so the map that follows them costs a backward, not
/// a second forward pass (VGG16 in the browser: ~0.8 s).
pub struct TappedPass {
    layer: String,
    activation: Tensor<4>,
    logits: Tensor<2>,
    probs: Tensor<2>,
    prob_values: Vec<f32>,
}

impl TappedPass {
    /// The pass of `photo` (squashed to the network's input) tapped at `layer`.
    pub async fn of_photo(net: &Network, photo: &Photo, layer: &str) -> Result<Self> {
        Self::run(net, to_pixels(&[squash(photo, net.input_hw())], net.device())?, layer).await
    }

    /// Runs the pixels [1, 3, H, W] to `layer`, then from there to the class scores.
    async fn run(net: &Network, pixels: Tensor<4>, layer: &str) -> Result<Self> {
        let info = net.layer(layer)?;
        if !info.has_map() {
            return Err(Error::Layer(format!(
                "'{layer}' is a {} layer without a spatial map: Grad-CAM needs a layer such as '{}'",
                info.kind.name(),
                net.default_cam_layer()
            )));
        }
        // The layer's output becomes a leaf, so the backward stops there (no gradient through the body).
        let (activation, logits) = net.forward_tapped(pixels, layer)?;
        let probs = net.probabilities(logits.clone());
        let prob_values = read_f32(probs.clone()).await?;
        Ok(Self { layer: info.name.clone(), activation, logits, probs, prob_values })
    }

    /// The layer it is tapped at.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The softmax over the classes.
    pub fn probabilities(&self) -> &[f32] {
        &self.prob_values
    }

    /// Differentiates `class`'s score (None: the top class) w.r.t. the layer; spends the graph.
    async fn gradient(self, net: &Network, class: Option<usize>, score: Score) -> Result<LayerGradient> {
        let classes = self.prob_values.len();
        if let Some(c) = class.filter(|c| *c >= classes) {
            return Err(Error::invalid(format!("class {c} does not exist: {} has classes 0..{}", net.name, classes - 1)));
        }
        let class = class.unwrap_or_else(|| (0..classes).max_by(|&a, &b| self.prob_values[a].total_cmp(&self.prob_values[b])).unwrap_or(0));
        let scores = match score {
            Score::Probability => self.probs,
            Score::Logit => self.logits,
        };
        let target = scores.narrow(1, class, 1).sum();
        let grads = target.backward();
        let gradient = self.activation.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the layer".into()))?;
        Ok(LayerGradient {
            activation: read_f32(self.activation.inner()).await?,
            gradient: read_f32(gradient).await?,
            channels: net.layer(&self.layer)?.shape[0],
            class,
            prob: self.prob_values[class],
        })
    }
}

/// RGB planes (0–255) at the network's input size as a [1, 3, H, W] tensor.
fn photo_tensor(net: &Network, planes: Vec<f32>) -> Tensor<4> {
    let [height, width] = net.input_hw();
    Tensor::<4>::from_data(TensorData::new(planes, [1, 3, height, width]), net.device())
}

/// Channel weights and per-pixel weighting of each method, summed over the channels (or, with
/// `eigen_smooth`, their first principal component), then ReLU and max-normalization.
fn combine(method: CamMethod, g: &LayerGradient, eigen_smooth: bool) -> Vec<f32> {
    let weighted = weighted_activations(method, g);
    let pixels = weighted.len() / g.channels;
    let sum: Vec<f32> = (0..pixels).map(|p| (0..g.channels).map(|c| weighted[c * pixels + p]).sum()).collect();
    if !eigen_smooth {
        return normalize(sum);
    }
    let mut projection = eigen_projection(&weighted, g.channels);
    // A principal component's sign is arbitrary (pytorch-grad-cam keeps whatever its SVD gives):
    // turn it to agree with the plain map, so the ReLU keeps the evidence and not its opposite.
    if projection.iter().zip(&sum).map(|(a, b)| a * b).sum::<f32>() < 0.0 {
        projection.iter_mut().for_each(|v| *v = -*v);
    }
    normalize(projection)
}

/// Each channel's activation times its weight (Grad-CAM, Grad-CAM++) or its positive gradient
/// at each pixel (LayerCAM), [C, H*W].
fn weighted_activations(method: CamMethod, g: &LayerGradient) -> Vec<f32> {
    let pixels = g.activation.len() / g.channels;
    let mut out = Vec::with_capacity(g.activation.len());
    for c in 0..g.channels {
        let a = &g.activation[c * pixels..(c + 1) * pixels];
        let d = &g.gradient[c * pixels..(c + 1) * pixels];
        match method {
            CamMethod::GradCam => {
                // Chollet averages over channels; the 1/C factor vanishes in the max-normalization.
                let weight = d.iter().sum::<f32>() / pixels as f32 / g.channels as f32;
                out.extend(a.iter().map(|a| weight * a));
            }
            CamMethod::GradCamPlusPlus => {
                let sum_a: f32 = a.iter().sum();
                let weight: f32 = d
                    .iter()
                    .map(|&d| {
                        let (d2, d3) = (d * d, d * d * d);
                        let alpha = if d != 0.0 { d2 / (2.0 * d2 + sum_a * d3 + 1e-7) } else { 0.0 };
                        d.max(0.0) * alpha
                    })
                    .sum();
                out.extend(a.iter().map(|a| weight * a));
            }
            CamMethod::LayerCam => out.extend(a.iter().zip(d).map(|(a, d)| d.max(0.0) * a)),
        }
    }
    out
}

/// pytorch-grad-cam's `get_2d_projection`: the [C, P] values seen as P points in C dimensions,
/// centred, projected on their first principal direction. Computed through the P×P Gram matrix
/// (P = H·W is small at the layers CAMs use; C can be thousands): for its top eigenvector u with
/// eigenvalue σ², the projection is σ·u. The sign is arbitrary.
pub fn eigen_projection(values: &[f32], channels: usize) -> Vec<f32> {
    let pixels = values.len() / channels;
    // Each channel centred over the pixels (the mean point subtracted; NaN counts as 0, as there).
    let mut centred: Vec<f64> = values.iter().map(|&v| if v.is_finite() { v as f64 } else { 0.0 }).collect();
    for row in centred.chunks_mut(pixels) {
        let mean = row.iter().sum::<f64>() / pixels as f64;
        row.iter_mut().for_each(|v| *v -= mean);
    }
    let mut gram = vec![0f64; pixels * pixels];
    for row in centred.chunks(pixels) {
        for (i, gram_row) in gram.chunks_mut(pixels).enumerate() {
            gram_row.iter_mut().zip(row).for_each(|(g, r)| *g += row[i] * r);
        }
    }
    // Power iteration from a fixed start; the Gram matrix is symmetric positive semi-definite.
    let mut u: Vec<f64> = (0..pixels).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    let mut eigenvalue = 0.0;
    for _ in 0..1000 {
        let next: Vec<f64> = gram.chunks(pixels).map(|row| row.iter().zip(&u).map(|(g, u)| g * u).sum()).collect();
        let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            return vec![0.0; pixels];
        }
        let next: Vec<f64> = next.iter().map(|v| v / norm).collect();
        let change: f64 = next.iter().zip(&u).map(|(a, b)| (a - b).abs()).sum();
        u = next;
        eigenvalue = norm;
        if change < 1e-12 {
            break;
        }
    }
    u.iter().map(|v| (v * eigenvalue.sqrt()) as f32).collect()
}

/// ReLU, then divide by the max; an all-zero map stays all zeros (never NaN).
fn normalize(mut map: Vec<f32>) -> Vec<f32> {
    map.iter_mut().for_each(|v| *v = v.max(0.0));
    let max = map.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        map.iter_mut().for_each(|v| *v /= max);
    }
    map
}

/// pytorch-grad-cam's two smoothing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Smoothing {
    /// The first principal component of the weighted activations instead of their sum: the
    /// dominant pattern, less noise (`eigen_smooth`).
    pub eigen: bool,
    /// The mean map of six versions of the photo, mirrored or not, times 0.9, 1 or 1.1 in the
    /// preprocessed space, each map mirrored back (`aug_smooth`, ttach's transforms); renormalized.
    pub augment: bool,
}

/// The class activation map of `photo` for `class` (None: the top class) at `layer`.
pub async fn class_activation_map(net: &Network, photo: &Photo, layer: &str, class: Option<usize>, method: CamMethod, score: Score) -> Result<Cam> {
    smoothed_class_activation_map(net, photo, layer, class, method, score, Smoothing::default()).await
}

/// `class_activation_map` with pytorch-grad-cam's smoothing options.
pub async fn smoothed_class_activation_map(
    net: &Network,
    photo: &Photo,
    layer: &str,
    class: Option<usize>,
    method: CamMethod,
    score: Score,
    smoothing: Smoothing,
) -> Result<Cam> {
    let pass = TappedPass::of_photo(net, photo, layer).await?;
    class_activation_map_of_pass(net, photo, pass, class, method, score, smoothing).await
}

/// `smoothed_class_activation_map` from a pass of `photo` already tapped at the layer.
pub async fn class_activation_map_of_pass(
    net: &Network,
    photo: &Photo,
    pass: TappedPass,
    class: Option<usize>,
    method: CamMethod,
    score: Score,
    smoothing: Smoothing,
) -> Result<Cam> {
    let layer = pass.layer.clone();
    let g = pass.gradient(net, class, score).await?;
    let [_, map_height, map_width] = net.layer(&layer)?.shape;
    let mut map = combine(method, &g, smoothing.eigen);
    if smoothing.augment {
        // The photo's pixels again (the pass squashed its own), only for the copies below.
        let pixels = planes(&squash(photo, net.input_hw()));
        let width = net.input_hw()[1];
        // The photo as it is (mirrored: no, ×1) is the map above; the other five copies join it.
        map.iter_mut().for_each(|v| *v /= 6.0);
        for (mirrored, factor) in [(false, 0.9f32), (false, 1.1), (true, 0.9), (true, 1.0), (true, 1.1)] {
            let source = if mirrored { mirror(&pixels, width) } else { pixels.clone() };
            let augmented = net.preprocessing.times(&source, |_| factor);
            let g = TappedPass::run(net, photo_tensor(net, augmented), &layer).await?.gradient(net, Some(g.class), score).await?;
            let one = combine(method, &g, smoothing.eigen);
            let one = if mirrored { mirror(&one, map_width) } else { one };
            map.iter_mut().zip(one).for_each(|(m, v)| *m += v / 6.0);
        }
        map = normalize(map);
    }
    Ok(Cam { layer, class: g.class, label: net.labels.get(g.class).cloned().unwrap_or_default(), prob: g.prob, height: map_height, width: map_width, map })
}

/// Rows of `width` values (one plane or several, channel after channel) mirrored left to right.
fn mirror(values: &[f32], width: usize) -> Vec<f32> {
    values.chunks(width).flat_map(|row| row.iter().rev().copied()).collect()
}

/// Bilinear upsampling of the map to `width`×`height` (pixel-centre aligned, as cv2.resize).
pub fn upsample(cam: &Cam, width: usize, height: usize) -> Vec<f32> {
    let (mw, mh) = (cam.width, cam.height);
    let at = |x: usize, y: usize| cam.map[y.min(mh - 1) * mw + x.min(mw - 1)];
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let fy = ((y as f32 + 0.5) * mh as f32 / height as f32 - 0.5).max(0.0);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        for x in 0..width {
            let fx = ((x as f32 + 0.5) * mw as f32 / width as f32 - 0.5).max(0.0);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
            let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// The heatmap alone at the photo's size, coloured.
pub fn heatmap(cam: &Cam, width: usize, height: usize, colormap: Colormap) -> Rgba {
    let up = upsample(cam, width, height);
    Rgba::from_fn(width, height, |x, y| colormap.rgb(up[y * width + x]))
}

/// The book's overlay: heat × `opacity` + photo, saturating (opacity 0.4 in the book).
pub fn overlay(cam: &Cam, photo: &Photo, colormap: Colormap, opacity: f32) -> Rgba {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let heat = heatmap(cam, w, h, colormap);
    Rgba::from_fn(w, h, |x, y| {
        let (p, q) = (photo.get_pixel(x as u32, y as u32), heat.pixel(x, y));
        [0, 1, 2].map(|c| (q[c] as f32 * opacity + p[c] as f32).clamp(0.0, 255.0) as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_map_stays_zero() {
        assert_eq!(normalize(vec![0.0, -1.0, 0.0]), vec![0.0, 0.0, 0.0]);
        assert_eq!(normalize(vec![1.0, -1.0, 2.0]), vec![0.5, 0.0, 1.0]);
    }

    #[test]
    fn upsample_of_constant_is_constant() {
        let cam = Cam { layer: "l".into(), class: 0, label: String::new(), prob: 1.0, height: 2, width: 2, map: vec![0.5; 4] };
        assert!(upsample(&cam, 5, 3).iter().all(|v| (v - 0.5).abs() < 1e-6));
    }
}
