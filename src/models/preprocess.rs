//! Input preprocessing, which belongs to the weights (how they were trained), not to the network.
//! Every variant is a per-channel affine map of 0–255 RGB pixels, optionally reordered to BGR, so
//! gradients flow through it back to pixel space (the filter-pattern ascent needs that).

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};

/// How a network wants its 0–255 RGB input transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocessing {
    /// Keras "caffe" (VGG16 from Keras): RGB→BGR, minus the ImageNet BGR means, 0–255 scale.
    Caffe,
    /// torchvision: x/255, minus mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225).
    Torch,
    /// EfficientNet-Lite (TF-Lite export): (x − 127) / 128.
    Centered127,
    /// The book's small convnet: x / 255.
    Unit,
}

impl Preprocessing {
    pub const ALL: [Preprocessing; 4] = [Self::Caffe, Self::Torch, Self::Centered127, Self::Unit];

    /// The name stored in weights metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Caffe => "caffe",
            Self::Torch => "torch",
            Self::Centered127 => "centered127",
            Self::Unit => "unit",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::weights(format!("unknown preprocessing '{name}' in the metadata (known: caffe, torch, centered127, unit)")))
    }

    /// Per output channel: (source RGB channel, scale, shift): out_c = x[src] * scale + shift.
    fn affine(self) -> [(usize, f32, f32); 3] {
        match self {
            Self::Caffe => [(2, 1.0, -103.939), (1, 1.0, -116.779), (0, 1.0, -123.68)],
            Self::Torch => {
                let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
                [0, 1, 2].map(|c| (c, 1.0 / (255.0 * std[c]), -mean[c] / std[c]))
            }
            Self::Centered127 => [0, 1, 2].map(|c| (c, 1.0 / 128.0, -127.0 / 128.0)),
            Self::Unit => [0, 1, 2].map(|c| (c, 1.0 / 255.0, 0.0)),
        }
    }

    /// [N, 3, H, W] RGB pixels 0–255 -> the network's input.
    pub fn apply(self, pixels: Tensor<4>, device: &Device) -> Tensor<4> {
        let affine = self.affine();
        let reordered = if affine.iter().enumerate().all(|(c, a)| a.0 == c) {
            pixels
        } else {
            Tensor::cat(affine.iter().map(|a| pixels.clone().narrow(1, a.0, 1)).collect(), 1)
        };
        let scale = Tensor::<4>::from_data(TensorData::new(affine.map(|a| a.1).to_vec(), [1, 3, 1, 1]), device);
        let shift = Tensor::<4>::from_data(TensorData::new(affine.map(|a| a.2).to_vec(), [1, 3, 1, 1]), device);
        reordered * scale + shift
    }
}
