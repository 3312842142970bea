//! DeepDream (Mordvintsev et al. 2015; Chollet, *Deep Learning with Python*, 8.2): gradient ascent
//! on the user's photo itself, maximizing the mean square of a layer's activation, so the photo
//! grows the patterns that layer sees in it. One scale, with random jitter each step (so the
//! network's stride grid leaves no marks), the book's normalized steps, pixels kept in 0–255.

use burn::tensor::{Tensor, TensorData};

use crate::backend::read_f32;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::picture::{planes, squash, Photo, Rgba};
use crate::random::SplitMix;
use crate::viz::filters::{jitter_offset, unit_rms};

/// How long and how hard to dream.
#[derive(Debug, Clone)]
pub struct DreamOptions {
    pub layer: String,
    pub steps: usize,
    /// Pixel levels per step, after the gradient is normalized to unit RMS.
    pub step_size: f32,
    pub seed: u64,
}

/// The photo (squashed to the network's input size) after `steps` of ascent on `layer`'s mean
/// square activation; `progress(step, steps, objective)` after each step, false cancels.
pub async fn deep_dream(net: &Network, photo: &Photo, o: &DreamOptions, mut progress: impl FnMut(usize, usize, f32) -> bool) -> Result<Rgba> {
    if o.steps == 0 || o.steps > 1000 {
        return Err(Error::invalid(format!("DeepDream takes 1 to 1000 steps, not {}", o.steps)));
    }
    let info = net.layer(&o.layer)?;
    if !info.has_map() {
        return Err(Error::Layer(format!("'{}' has no spatial map to dream with: choose a conv or block layer", o.layer)));
    }
    let [height, width] = net.input_hw();
    let mut x = Tensor::<4>::from_data(TensorData::new(planes(&squash(photo, [height, width])), [1, 3, height, width]), net.device());
    let mut rng = SplitMix(o.seed);
    for step in 1..=o.steps {
        let leaf = x.clone().detach().require_grad();
        let mut shift = || jitter_offset(rng.uniform());
        let (dy, dx) = (shift(), shift());
        let activation = net.forward_until(leaf.clone().roll(&[dy, dx], &[2, 3]), &o.layer)?;
        let objective = activation.square().mean();
        let grads = objective.clone().backward();
        let grad = leaf.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the photo".into()))?;
        x = (x + unit_rms(grad, 1e-8).mul_scalar(o.step_size)).clamp(0.0, 255.0).detach();
        let value = read_f32(objective.inner()).await?.first().copied().unwrap_or(0.0);
        if !progress(step, o.steps, value) {
            return Err(Error::Cancelled);
        }
        crate::backend::yield_now().await;
    }
    Ok(Rgba::from_planes(&read_f32(x.inner()).await?, width, height))
}
