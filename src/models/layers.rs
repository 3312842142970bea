//! The building blocks every network here is made of: convolution (with Keras "same"/"valid" and
//! TensorFlow "SAME" padding), dense layers split to respect WebGPU binding limits, batch-norm folding.
//! Weights are constants (ConvLens never trains), so layers hold plain tensors built from a weights file.

use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::weights::WeightSet;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding (Keras "valid").
    Valid,
    /// Symmetric k/2 padding, stride 1 (Keras "same" for odd kernels).
    Same,
    /// TensorFlow "SAME": total padding from the input size, the odd pixel after (stride-2 convs on
    /// even sizes pad 0 before and 1 after). EfficientNet-Lite checkpoints were trained this way.
    TfSame,
}

/// A 2-D convolution with optional bias. Weight: [out, in / groups, kh, kw].
#[derive(Debug, Clone)]
pub struct Conv {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: usize,
    pub groups: usize,
    pub padding: Padding,
}

impl Conv {
    /// Reads `<key>.weight` and, when `with_bias`, `<key>.bias`.
    pub fn load(w: &mut WeightSet, key: &str, stride: usize, groups: usize, padding: Padding, with_bias: bool, device: &Device) -> Result<Self> {
        let weight = w.take_tensor::<4>(&format!("{key}.weight"), device)?;
        let bias = if with_bias { Some(w.take_tensor::<1>(&format!("{key}.bias"), device)?) } else { None };
        Ok(Self { weight, bias, stride, groups, padding })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.groups
    }

    fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// Padding (before, after) for one spatial dimension of size `size`.
    fn pads(&self, size: usize) -> (usize, usize) {
        let k = self.kernel();
        match self.padding {
            Padding::Valid => (0, 0),
            Padding::Same => (k / 2, k / 2),
            Padding::TfSame => {
                let out = size.div_ceil(self.stride);
                let total = ((out - 1) * self.stride + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
        }
    }

    /// Output spatial size for an input of `size` pixels.
    pub fn out_size(&self, size: usize) -> usize {
        let (a, b) = self.pads(size);
        (size + a + b - self.kernel()) / self.stride + 1
    }

    /// [N, in, H, W] -> [N, out, H', W']
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let options = ConvOptions::new_with_padding([self.stride; 2], [self.pads(h), self.pads(w)], [1, 1], self.groups);
        conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }

    /// Reads a bias-free conv `<key>.weight` followed by an inference-mode batch norm `<bn_key>.*`,
    /// folded into one conv on the host: w' = w * gamma / sqrt(var + eps), b' = beta - mean * that
    /// scale. Exact up to float rounding, and one op less per layer on every backend.
    #[allow(clippy::too_many_arguments)]
    pub fn load_with_batch_norm(w: &mut WeightSet, key: &str, bn_key: &str, eps: f32, stride: usize, groups: usize, padding: Padding, device: &Device) -> Result<Self> {
        let name = format!("{key}.weight");
        let (shape, mut weight) = w.take(&name)?;
        if shape.len() != 4 {
            return Err(Error::weights(format!("'{name}' should have 4 dimensions, found shape {shape:?}")));
        }
        let channels = shape[0];
        let mut get = |field: &str| -> Result<Vec<f32>> {
            let (s, values) = w.take(&format!("{bn_key}.{field}"))?;
            if s != [channels] {
                return Err(Error::weights(format!("'{bn_key}.{field}' has shape {s:?}, expected [{channels}]")));
            }
            Ok(values)
        };
        let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
        let per_channel = weight.len() / channels.max(1);
        let mut bias = Vec::with_capacity(channels);
        for c in 0..channels {
            let scale = gamma[c] / (var[c] + eps).sqrt();
            weight[c * per_channel..(c + 1) * per_channel].iter_mut().for_each(|v| *v *= scale);
            bias.push(beta[c] - mean[c] * scale);
        }
        let weight = Tensor::from_data(TensorData::new(weight, [shape[0], shape[1], shape[2], shape[3]]), device);
        let bias = Some(Tensor::from_data(TensorData::new(bias, [channels]), device));
        Ok(Self { weight, bias, stride, groups, padding })
    }
}

/// Largest weight block a dense layer binds at once: WebGPU adapters often cap a storage binding
/// at 128 MiB, and VGG16's fc1 (25088 x 4096 f32) is 411 MB. 64 MiB leaves room everywhere.
const MAX_DENSE_BLOCK_BYTES: usize = 64 << 20;

/// A fully connected layer, weight [in, out], stored as column blocks of at most 64 MiB each.
#[derive(Debug, Clone)]
pub struct Dense {
    pub blocks: Vec<Tensor<2>>,
    pub bias: Tensor<1>,
}

impl Dense {
    /// Reads `<key>.weight` ([in, out]) and `<key>.bias`, splitting the weight into column blocks.
    pub fn load(w: &mut WeightSet, key: &str, device: &Device) -> Result<Self> {
        let (shape, values) = w.take(&format!("{key}.weight"))?;
        let [inputs, outputs] = shape[..] else {
            return Err(Error::weights(format!("'{key}.weight' should be a matrix, found shape {shape:?}")));
        };
        let bias = w.take_tensor::<1>(&format!("{key}.bias"), device)?;
        if bias.dims() != [outputs] {
            return Err(Error::weights(format!("'{key}.bias' has shape {:?}, expected [{outputs}]", bias.dims())));
        }
        let cols_per_block = (MAX_DENSE_BLOCK_BYTES / (4 * inputs.max(1))).clamp(1, outputs.max(1));
        let mut blocks = Vec::new();
        for start in (0..outputs).step_by(cols_per_block) {
            let end = (start + cols_per_block).min(outputs);
            let mut block = Vec::with_capacity(inputs * (end - start));
            for row in values.chunks_exact(outputs) {
                block.extend_from_slice(&row[start..end]);
            }
            blocks.push(Tensor::from_data(TensorData::new(block, [inputs, end - start]), device));
        }
        Ok(Self { blocks, bias })
    }

    pub fn inputs(&self) -> usize {
        self.blocks[0].dims()[0]
    }

    pub fn outputs(&self) -> usize {
        self.bias.dims()[0]
    }

    /// [N, in] -> [N, out]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let parts: Vec<Tensor<2>> = self.blocks.iter().map(|b| x.clone().matmul(b.clone())).collect();
        let y = if parts.len() == 1 { parts.into_iter().next().expect("one block") } else { Tensor::cat(parts, 1) };
        y + self.bias.clone().unsqueeze::<2>()
    }
}

/// 2x2 max pooling, stride 2 (floor), as Keras `MaxPooling2D()` and torch `MaxPool2d(2)`.
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([2, 2]))
}

/// Flattens [N, C, H, W] to [N, C*H*W] in channels-first order (ConvLens's dense-weight convention).
pub fn flatten(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c * h * w])
}

/// Dense outputs travel as [N, C, 1, 1] so every layer's activation is one tensor type.
pub fn as_map(x: Tensor<2>) -> Tensor<4> {
    let [n, c] = x.dims();
    x.reshape([n, c, 1, 1])
}

/// Back from [N, C, 1, 1] (or any map) to [N, C*H*W].
pub fn as_vector(x: Tensor<4>) -> Tensor<2> {
    flatten(x)
}
