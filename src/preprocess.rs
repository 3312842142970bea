//! Input preprocessing that a weights file implies but does not compute itself (how the weights
//! were trained). Models that carry it as layers (Keras Rescaling / Normalization) use `Raw` and
//! do it in the graph. Every variant is a per-channel affine map of 0–255 RGB pixels, optionally
//! reordered to BGR, so gradients flow through it back to pixel space (the filter ascent needs it;
//! `Network::preprocess` applies it). No tensor code here: weights metadata names it.

use crate::choice::{self, ValueEnum};
use crate::error::Result;

/// How a network wants its 0–255 RGB input transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preprocessing {
    /// Keras "caffe" (VGG16 from Keras): RGB→BGR, minus the ImageNet BGR means, 0–255 scale.
    Caffe,
    /// torchvision: x/255, minus mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225).
    Torch,
    /// EfficientNet-Lite (TF-Lite export): (x − 127) / 128.
    #[value(name = "centered127")]
    Centered127,
    /// The book's small convnet: x / 255 (`0..1`).
    #[value(alias = "0..1")]
    Unit,
    /// TensorFlow / Keras applications "tf": x / 127.5 − 1 (±1).
    Tf,
    /// The pixels as they are, 0–255 (models that preprocess in their own layers).
    Raw,
}

impl Preprocessing {
    /// The name stored in weights metadata.
    pub fn name(self) -> String {
        choice::name(&self)
    }

    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("preprocessing", name)
    }

    /// Per source RGB channel, the (scale, shift) of the output channel that reads it.
    pub fn affine_by_source(self) -> [(f32, f32); 3] {
        let mut out = [(1.0, 0.0); 3];
        for (src, scale, shift) in self.affine() {
            out[src] = (scale, shift);
        }
        out
    }

    /// Pixels (channel-major [3][plane]) whose preprocessed values are the originals' times
    /// `factor(i)` at pixel i, as pytorch-grad-cam multiplies its input tensor:
    /// (p·s + t)·m = p'·s + t  ⇒  p' = p·m + (t/s)(m − 1).
    pub fn times(self, pixels: &[f32], factor: impl Fn(usize) -> f32) -> Vec<f32> {
        let plane = pixels.len() / 3;
        let affine = self.affine_by_source();
        let mut out = pixels.to_vec();
        for (c, &(scale, shift)) in affine.iter().enumerate() {
            for (i, v) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
                let m = factor(i);
                *v = *v * m + shift / scale * (m - 1.0);
            }
        }
        out
    }

    /// Per output channel: (source RGB channel, scale, shift): out_c = x[src] * scale + shift.
    pub fn affine(self) -> [(usize, f32, f32); 3] {
        match self {
            Self::Caffe => [(2, 1.0, -103.939), (1, 1.0, -116.779), (0, 1.0, -123.68)],
            Self::Torch => {
                let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
                [0, 1, 2].map(|c| (c, 1.0 / (255.0 * std[c]), -mean[c] / std[c]))
            }
            Self::Centered127 => [0, 1, 2].map(|c| (c, 1.0 / 128.0, -127.0 / 128.0)),
            Self::Unit => [0, 1, 2].map(|c| (c, 1.0 / 255.0, 0.0)),
            Self::Tf => [0, 1, 2].map(|c| (c, 1.0 / 127.5, -1.0)),
            Self::Raw => [0, 1, 2].map(|c| (c, 1.0, 0.0)),
        }
    }
}
