//! Filter patterns by gradient ascent in input space (Chollet 5.4.2): find the image that makes a
//! filter respond most. The classic mode is the book's algorithm exactly; all requested filters are
//! optimized together as one batch (each image's loss is its own filter's mean activation and its
//! gradient is normalized per image), so 64 filters cost about one forward/backward of batch 64.
//! The regularized mode adds the image priors of Yosinski et al. 2015 and Lucid (Olah et al. 2017):
//! random jitter each step, periodic Gaussian blur and decay toward gray, which remove the
//! high-frequency noise that dominates the naive patterns. The lucid mode is Lucid's own recipe
//! (Olah et al. 2017): a decorrelated Fourier parameterization of the image, Adam, and a random
//! similarity transform each step (`lucid`), giving images whose objects can be named.
//! Several images of one filter can be pushed apart by Lucid's diversity term.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use crate::backend::read_f32;
use crate::choice::{self, ValueEnum};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::picture::grid::tile;
use crate::picture::Rgba;
use crate::random::SplitMix;
use crate::viz::lucid::{robust_transform, Adam, FourierImage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AscentMode {
    /// The book: 40 steps of x += grads / rms(grads) from gray noise.
    Classic,
    /// Jitter + blur + decay (Yosinski 2015 / Lucid).
    Regularized,
    /// Fourier parameterization, colour decorrelation, Adam and transformation robustness (Olah
    /// et al. 2017 / Lucid); `step_size` is Adam's learning rate.
    Lucid,
}

impl AscentMode {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("mode", name)
    }

    /// The step size a mode is meant to run with: the book's 1 pixel level per normalized step, or
    /// Lucid's Adam learning rate.
    pub fn default_step_size(self) -> f32 {
        match self {
            AscentMode::Classic | AscentMode::Regularized => 1.0,
            AscentMode::Lucid => 0.05,
        }
    }

    /// The steps a mode needs: the book's 40, or enough of Adam for the lucid image to settle.
    pub fn default_steps(self) -> usize {
        match self {
            AscentMode::Classic | AscentMode::Regularized => 40,
            AscentMode::Lucid => LUCID_STEPS,
        }
    }
}

/// The diversity weight the CLI and the page use: Lucid's tutorial weight, 1e2.
pub const DEFAULT_DIVERSITY: f32 = 100.0;

/// Lucid's own default is 512 steps at 128 px; see `default_steps`.
const LUCID_STEPS: usize = 256;

/// What each image maximizes (Olah et al. 2017, "Feature Visualization": objectives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Objective {
    /// The mean activation of a channel of `layer` (the book).
    #[default]
    Channel,
    /// The activation of one unit: the centre position of a channel of `layer`.
    Neuron,
    /// A class's logit: what the network thinks the class looks like. The "filters" are class
    /// indices and the layer is the output.
    Class,
}

impl Objective {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("objective", name)
    }
}

/// What to optimize and how.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub layer: String,
    /// First filter index and how many consecutive filters.
    pub first: usize,
    pub count: usize,
    /// Images per filter (the batch holds `count · variants`, each filter's images side by side).
    pub variants: usize,
    /// Weight of Lucid's diversity term, which pushes a filter's `variants` images apart (the
    /// cosine similarity of their Gram matrices at `layer`, or for classes at the model's filter
    /// layer, subtracted from the objective).
    pub diversity: f32,
    /// Side of the square images, in pixels (the book: 150; its grid: 64).
    pub size: usize,
    pub steps: usize,
    pub step_size: f32,
    pub seed: u64,
    pub mode: AscentMode,
    pub objective: Objective,
    /// Hand back the current images every this many steps (0: never).
    pub preview_every: usize,
}

impl FilterOptions {
    /// The book's settings for a layer: 40 steps of size 1, 64×64 images, filters 0..64.
    pub fn book(layer: &str) -> Self {
        Self {
            layer: layer.to_string(),
            first: 0,
            count: 64,
            variants: 1,
            diversity: 0.0,
            size: 64,
            steps: 40,
            step_size: 1.0,
            seed: 0,
            mode: AscentMode::Classic,
            objective: Objective::Channel,
            preview_every: 0,
        }
    }
}

/// Reported after each step. `images` is present every `preview_every` steps.
pub struct Progress<'a> {
    pub step: usize,
    pub steps: usize,
    /// Mean over the batch of each filter's mean activation (the book's `loss_value`).
    pub loss: f32,
    pub images: Option<&'a [Rgba]>,
}

/// Deterministic uniform noise on the host, so a seed gives the same pixels on every backend.
fn uniform_noise(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = SplitMix(seed ^ 0x9E37_79B9_7F4A_7C15);
    (0..len).map(|_| rng.uniform()).collect()
}

/// A random shift of −8 to 8 pixels from a uniform value in [0, 1): the jitter each step.
pub(crate) fn jitter_offset(uniform: f32) -> i64 {
    (uniform * 17.0) as i64 - 8
}

/// The gradient scaled to unit RMS per image (the book's `grads /= sqrt(mean(grads²)) + eps`).
pub(crate) fn unit_rms(grad: Tensor<4>, eps: f32) -> Tensor<4> {
    let rms = grad.clone().square().mean_dims(&[1, 2, 3]).sqrt().add_scalar(eps);
    grad / rms
}

/// The book's `deprocess_image` (pytorch-grad-cam's too), per image [3, H, W]: −mean,
/// /(std + 1e-5), ×0.1, +0.5, clip 0–1, ×255.
pub fn deprocess(values: &[f32], width: usize, height: usize) -> Rgba {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
    let level = |v: f32| (((v - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0) * 255.0) as u8;
    let plane = width * height;
    Rgba::from_fn(width, height, |x, y| {
        let i = y * width + x;
        [level(values[i]), level(values[plane + i]), level(values[2 * plane + i])]
    })
}

/// The book's 8-per-row grid with 5-pixel margins; with several images per filter, a filter's
/// images stay together on one row.
pub fn pattern_grid(patterns: &[Rgba], variants: usize) -> Rgba {
    let variants = variants.max(1);
    tile(patterns, variants * (8 / variants).max(1), 5, [0, 0, 0])
}

fn check(net: &Network, o: &FilterOptions) -> Result<usize> {
    let (channels, what) = match o.objective {
        Objective::Class => (net.logit_count(), format!("{} has classes", net.name)),
        _ => (net.layer(&o.layer)?.shape[0], format!("layer '{}' has filters", o.layer)),
    };
    if o.count == 0 {
        return Err(Error::invalid("ask for at least one filter"));
    }
    if o.first + o.count > channels {
        return Err(Error::invalid(format!("{what} 0..{}; {}..{} is out of range", channels - 1, o.first, o.first + o.count - 1)));
    }
    if !o.count.checked_mul(o.variants).is_some_and(|n| (1..=512).contains(&n)) {
        return Err(Error::invalid(format!("{} filters × {} images each is not 1 to 512 images", o.count, o.variants)));
    }
    if !o.diversity.is_finite() || !o.step_size.is_finite() || o.step_size <= 0.0 {
        return Err(Error::invalid("the step size must be a positive number and the diversity weight a number"));
    }
    if o.steps == 0 {
        return Err(Error::invalid("steps must be at least 1"));
    }
    if !(8..=512).contains(&o.size) {
        return Err(Error::invalid(format!("size {} is out of range: choose 8 to 512 pixels", o.size)));
    }
    let last = net.layers().last().map(|l| l.name.clone()).unwrap_or_default();
    net.check_input_size([o.size, o.size], if o.objective == Objective::Class { &last } else { &o.layer })?;
    Ok(channels)
}

/// 5×5 Gaussian (σ = 1) applied per channel, reflect-padded.
fn blur(x: Tensor<4>) -> Tensor<4> {
    let g: Vec<f32> = (-2..=2).map(|i: i32| (-(i * i) as f32 / 2.0).exp()).collect();
    let sum: f32 = g.iter().sum();
    let kernel: Vec<f32> = (0..3).flat_map(|_| g.iter().flat_map(|a| g.iter().map(move |b| a * b / (sum * sum)))).collect();
    let kernel = Tensor::<4>::from_data(TensorData::new(kernel, [3, 1, 5, 5]), &x.device());
    conv2d(x.pad((2, 2, 2, 2), PadMode::Reflect), kernel, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 3))
}

/// The image being optimized: pixels moved directly (classic, regularized) or a spectrum moved
/// by Adam (lucid).
enum Canvas {
    Pixels(Tensor<4>),
    Spectrum { image: Box<FourierImage>, spectrum: Tensor<2>, adam: Box<Adam> },
}

impl Canvas {
    fn parameter(&self) -> Tensor<2> {
        match self {
            Canvas::Pixels(x) => x.clone().reshape([1, x.shape().num_elements()]),
            Canvas::Spectrum { spectrum, .. } => spectrum.clone(),
        }
    }

    /// What the user sees: the book's `deprocess_image` of the pixels, or the lucid image as is.
    async fn patterns(&self, b: usize, s: usize) -> Result<Vec<Rgba>> {
        match self {
            Canvas::Pixels(x) => {
                let values = read_f32(x.clone().inner()).await?;
                Ok((0..b).map(|i| deprocess(&values[i * 3 * s * s..(i + 1) * 3 * s * s], s, s)).collect())
            }
            Canvas::Spectrum { image, spectrum, .. } => {
                let values = read_f32(image.pixels(spectrum.clone()).inner()).await?;
                Ok(values.chunks(3 * s * s).map(|one| Rgba::from_planes(one, s, s)).collect())
            }
        }
    }
}

/// One-hot [B, C, 1, 1] selecting each image's own filter (or class) out of `channels`.
fn own_filters(o: &FilterOptions, channels: usize, device: &Device) -> Tensor<4> {
    let b = o.count * o.variants;
    let mut select = vec![0f32; b * channels];
    (0..b).for_each(|i| select[i * channels + o.first + i / o.variants] = 1.0);
    Tensor::from_data(TensorData::new(select, [b, channels, 1, 1]), device)
}

/// Runs gradient ascent for filters `first..first+count` of `layer`, all in one batch.
/// `progress` is called after every step; returning false cancels (the result is `Err(Cancelled)`).
pub async fn filter_patterns(net: &Network, o: &FilterOptions, mut progress: impl FnMut(Progress<'_>) -> bool) -> Result<Vec<Rgba>> {
    let channels = check(net, o)?;
    let (b, s) = (o.count * o.variants, o.size);
    let device = net.device();
    let mut canvas = match o.mode {
        AscentMode::Lucid => {
            let image = FourierImage::new(b, s, device);
            Canvas::Spectrum { spectrum: image.initial(o.seed, device), image: Box::new(image), adam: Box::new(Adam::new(o.step_size)) }
        }
        _ => {
            let noise: Vec<f32> = uniform_noise(o.seed, b * 3 * s * s).into_iter().map(|u| u * 20.0 + 128.0).collect();
            Canvas::Pixels(Tensor::<4>::from_data(TensorData::new(noise, [b, 3, s, s]), device))
        }
    };
    let select = own_filters(o, channels, device);
    let mut rng = SplitMix(o.seed.wrapping_add(1) ^ 0x9E37_79B9_7F4A_7C15);
    for step in 1..=o.steps {
        let leaf = canvas.parameter().detach().require_grad();
        let input = match &canvas {
            Canvas::Pixels(_) if o.mode == AscentMode::Classic => leaf.clone().reshape([b, 3, s, s]),
            Canvas::Pixels(_) => {
                let mut shift = || jitter_offset(rng.uniform());
                let (dx, dy) = (shift(), shift());
                leaf.clone().reshape([b, 3, s, s]).roll(&[dy, dx], &[2, 3])
            }
            Canvas::Spectrum { image, .. } => robust_transform(image.pixels(leaf.clone()), &mut rng),
        };
        let (per_image, diversity) = objective_values(net, o, input, &select)?;
        let loss = match diversity {
            Some(d) => per_image.clone().sum() - d.mul_scalar(o.diversity),
            None => per_image.clone().sum(),
        };
        let grads = loss.backward();
        let grad = leaf.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the input".into()))?;
        canvas = match canvas {
            Canvas::Pixels(x) => {
                let mut next = x + unit_rms(grad.reshape([b, 3, s, s]), 1e-5).mul_scalar(o.step_size);
                if o.mode == AscentMode::Regularized {
                    next = (next.sub_scalar(128.0)).mul_scalar(0.995).add_scalar(128.0);
                    if step % 4 == 0 && step < o.steps {
                        next = blur(next);
                    }
                }
                Canvas::Pixels(next.detach())
            }
            Canvas::Spectrum { image, spectrum, mut adam } => Canvas::Spectrum { spectrum: adam.ascend(spectrum, grad).detach(), image, adam },
        };
        let loss_value = read_f32(per_image.inner()).await?.iter().sum::<f32>() / b as f32;
        let preview = o.preview_every > 0 && step % o.preview_every == 0 && step < o.steps;
        let images = if preview { Some(canvas.patterns(b, s).await?) } else { None };
        if !progress(Progress { step, steps: o.steps, loss: loss_value, images: images.as_deref() }) {
            return Err(Error::Cancelled);
        }
        crate::backend::yield_now().await;
    }
    canvas.patterns(b, s).await
}

/// How strongly each pattern drives the objective it was made for when seen slightly moved,
/// scaled and turned (Lucid's random transforms, `draws` of them, the same for every pattern):
/// the mean objective over the draws. This is the robustness the eye relies on; a pattern that
/// only works pixel-exactly scores low. `patterns` as `filter_patterns` returned them for `o`.
pub async fn robust_objective(net: &Network, o: &FilterOptions, patterns: &[Rgba], draws: usize, seed: u64) -> Result<Vec<f32>> {
    let channels = check(net, o)?;
    let (b, s) = (o.count * o.variants, o.size);
    if patterns.len() != b || patterns.iter().any(|p| (p.width, p.height) != (s, s)) {
        return Err(Error::invalid(format!("expected {b} patterns of {s}×{s} pixels")));
    }
    let device = net.device();
    let mut pixels = vec![0f32; b * 3 * s * s];
    for (i, p) in patterns.iter().enumerate() {
        for (j, rgba) in p.data.chunks(4).enumerate() {
            (0..3).for_each(|c| pixels[(i * 3 + c) * s * s + j] = rgba[c] as f32);
        }
    }
    let pixels = Tensor::<4>::from_data(TensorData::new(pixels, [b, 3, s, s]), device);
    let select = own_filters(o, channels, device);
    let mut rng = SplitMix(seed);
    let mut total = vec![0f32; b];
    // Each image scored on its own objective, without the diversity term.
    let plain = FilterOptions { diversity: 0.0, ..o.clone() };
    for _ in 0..draws {
        let (values, _) = objective_values(net, &plain, robust_transform(pixels.clone(), &mut rng), &select)?;
        total.iter_mut().zip(read_f32(values.inner()).await?).for_each(|(t, v)| *t += v / draws as f32);
    }
    Ok(total)
}

/// Each image's objective [B, 1, 1, 1]: its own channel's mean (or centre unit) at `o.layer`, or
/// its own class's logit. `select` is one-hot [B, C, 1, 1] over channels or classes. With several
/// variants per filter and a diversity weight, also Lucid's diversity of each filter's images.
fn objective_values(net: &Network, o: &FilterOptions, input: Tensor<4>, select: &Tensor<4>) -> Result<(Tensor<4>, Option<Tensor<1>>)> {
    let diverse = o.variants > 1 && o.diversity != 0.0;
    let activation = match o.objective {
        Objective::Class => {
            // A class's images are made diverse at the model's usual filter layer.
            let (logits, diversity) = match diverse {
                true => {
                    let (activation, logits) = net.forward_with(input, net.default_filter_layer())?;
                    (logits, Some(diversity(activation, o.variants)))
                }
                false => (net.forward(input)?, None),
            };
            let [b, c] = logits.dims();
            return Ok(((logits.reshape([b, c, 1, 1]) * select.clone()).sum_dims(&[1, 2, 3]), diversity));
        }
        _ => net.forward_until(input, &o.layer)?,
    };
    let [_, _, h, w] = activation.dims();
    let diversity = diverse.then(|| diversity(activation.clone(), o.variants));
    let values = match o.objective {
        Objective::Neuron => (activation.narrow(2, h / 2, 1).narrow(3, w / 2, 1) * select.clone()).sum_dims(&[1, 2, 3]),
        _ => (activation * select.clone()).sum_dims(&[1, 2, 3]).div_scalar((h * w) as f32),
    };
    Ok((values, diversity))
}

/// Lucid's `diversity` objective, summed over groups of `variants` consecutive images: for each
/// pair of a group's images, the cosine similarity of their Gram matrices (style) at the layer,
/// divided by the group size. Subtracting it pushes a filter's images towards different styles.
fn diversity(activation: Tensor<4>, variants: usize) -> Tensor<1> {
    let [b, c, h, w] = activation.dims();
    let features = activation.reshape([b, c, h * w]);
    let grams = features.clone().matmul(features.swap_dims(1, 2)).reshape([b, c * c]);
    let norms = grams.clone().square().sum_dim(1).sqrt().add_scalar(1e-8);
    let unit = (grams / norms).reshape([b / variants, variants, c * c]);
    let similarity = unit.clone().matmul(unit.swap_dims(1, 2));
    // Each image's similarity to itself is 1: a constant, left in.
    similarity.sum().sub_scalar(b as f32).div_scalar(variants as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_uniform() {
        let a = uniform_noise(7, 10_000);
        assert_eq!(a, uniform_noise(7, 10_000));
        assert_ne!(a, uniform_noise(8, 10_000));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 0.5).abs() < 0.02 && a.iter().all(|v| (0.0..1.0).contains(v)));
    }

    #[test]
    fn deprocess_of_constant_is_mid_gray() {
        let img = deprocess(&[5.0; 3 * 4], 2, 2);
        assert_eq!(img.pixel(1, 1), [127, 127, 127]);
    }
}
