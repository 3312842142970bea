//! Filter patterns by gradient ascent in input space (Chollet 5.4.2): find the image that makes a
//! filter respond most. The classic mode is the book's algorithm exactly; all requested filters are
//! optimized together as one batch (each image's loss is its own filter's mean activation and its
//! gradient is normalized per image), so 64 filters cost about one forward/backward of batch 64.
//! The regularized mode adds the image priors of Yosinski et al. 2015 and Lucid (Olah et al. 2017):
//! random jitter each step, periodic Gaussian blur and decay toward gray, which remove the
//! high-frequency noise that dominates the naive patterns.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Tensor, TensorData};

use crate::backend::read_f32;
use crate::choice::{self, ValueEnum};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::picture::grid::tile;
use crate::picture::Rgba;
use crate::random::SplitMix;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AscentMode {
    /// The book: 40 steps of x += grads / rms(grads) from gray noise.
    Classic,
    /// Jitter + blur + decay (Yosinski 2015 / Lucid).
    Regularized,
}

impl AscentMode {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("mode", name)
    }
}

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

/// The book's `deprocess_image`, per image: −mean, /(std + 1e-5), ×0.1, +0.5, clip 0–1, ×255.
pub fn deprocess(values: &[f32], size: usize) -> Rgba {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
    let level = |v: f32| (((v - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0) * 255.0) as u8;
    let plane = size * size;
    Rgba::from_fn(size, size, |x, y| {
        let i = y * size + x;
        [level(values[i]), level(values[plane + i]), level(values[2 * plane + i])]
    })
}

/// The book's 8-per-row grid with 5-pixel margins.
pub fn pattern_grid(patterns: &[Rgba]) -> Rgba {
    tile(patterns, 8, 5, [0, 0, 0])
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

/// Runs gradient ascent for filters `first..first+count` of `layer`, all in one batch.
/// `progress` is called after every step; returning false cancels (the result is `Err(Cancelled)`).
pub async fn filter_patterns(net: &Network, o: &FilterOptions, mut progress: impl FnMut(Progress<'_>) -> bool) -> Result<Vec<Rgba>> {
    let channels = check(net, o)?;
    let (b, s) = (o.count, o.size);
    let device = net.device();
    let noise: Vec<f32> = uniform_noise(o.seed, b * 3 * s * s).into_iter().map(|u| u * 20.0 + 128.0).collect();
    let mut x = Tensor::<4>::from_data(TensorData::new(noise, [b, 3, s, s]), device);
    // One-hot [B, C, 1, 1] selecting each image's own filter; dividing by H*W makes each term a mean.
    let mut select = vec![0f32; b * channels];
    (0..b).for_each(|i| select[i * channels + o.first + i] = 1.0);
    let select = Tensor::<4>::from_data(TensorData::new(select, [b, channels, 1, 1]), device);
    let mut jitter = uniform_noise(o.seed.wrapping_add(1), 2 * o.steps).into_iter();
    for step in 1..=o.steps {
        let leaf = x.clone().detach().require_grad();
        let (dx, dy) = match o.mode {
            AscentMode::Classic => (0, 0),
            AscentMode::Regularized => {
                let mut shift = || jitter_offset(jitter.next().unwrap_or(0.5));
                (shift(), shift())
            }
        };
        let input = if (dx, dy) == (0, 0) { leaf.clone() } else { leaf.clone().roll(&[dy, dx], &[2, 3]) };
        let per_image = objective_values(net, o, input, &select)?;
        let loss = per_image.clone().sum();
        let grads = loss.backward();
        let grad = leaf.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the input".into()))?;
        let mut next = x + unit_rms(grad, 1e-5).mul_scalar(o.step_size);
        if o.mode == AscentMode::Regularized {
            next = (next.sub_scalar(128.0)).mul_scalar(0.995).add_scalar(128.0);
            if step % 4 == 0 && step < o.steps {
                next = blur(next);
            }
        }
        x = next.detach();
        let loss_value = read_f32(per_image.inner()).await?.iter().sum::<f32>() / b as f32;
        let preview = o.preview_every > 0 && step % o.preview_every == 0 && step < o.steps;
        let images = if preview { Some(to_patterns(x.clone(), b, s).await?) } else { None };
        if !progress(Progress { step, steps: o.steps, loss: loss_value, images: images.as_deref() }) {
            return Err(Error::Cancelled);
        }
        crate::backend::yield_now().await;
    }
    to_patterns(x, b, s).await
}

/// Each image's objective [B, 1, 1, 1]: its own channel's mean (or centre unit) at `o.layer`, or
/// its own class's logit. `select` is one-hot [B, C, 1, 1] over channels or classes.
fn objective_values(net: &Network, o: &FilterOptions, input: Tensor<4>, select: &Tensor<4>) -> Result<Tensor<4>> {
    Ok(match o.objective {
        Objective::Channel => {
            let activation = net.forward_until(input, &o.layer)?;
            let [_, _, h, w] = activation.dims();
            (activation * select.clone()).sum_dims(&[1, 2, 3]).div_scalar((h * w) as f32)
        }
        Objective::Neuron => {
            let activation = net.forward_until(input, &o.layer)?;
            let [_, _, h, w] = activation.dims();
            (activation.narrow(2, h / 2, 1).narrow(3, w / 2, 1) * select.clone()).sum_dims(&[1, 2, 3])
        }
        Objective::Class => {
            let logits = net.forward(input)?;
            let [b, c] = logits.dims();
            (logits.reshape([b, c, 1, 1]) * select.clone()).sum_dims(&[1, 2, 3])
        }
    })
}

async fn to_patterns(x: Tensor<4>, b: usize, s: usize) -> Result<Vec<Rgba>> {
    let values = read_f32(x.inner()).await?;
    Ok((0..b).map(|i| deprocess(&values[i * 3 * s * s..(i + 1) * 3 * s * s], s)).collect())
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
        let img = deprocess(&[5.0; 3 * 4], 2);
        assert_eq!(img.pixel(1, 1), [127, 127, 127]);
    }
}
