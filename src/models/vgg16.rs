//! VGG16 (Simonyan & Zisserman 2014) exactly as `keras.applications.VGG16`: 13 conv 3×3 "same" +
//! ReLU in five blocks, each closed by a 2×2 max-pool, then fc1/fc2 (ReLU) and `predictions`
//! (softmax applied by the caller). Fields carry the Keras layer names, which are also our
//! checkpoint keys. Widths come from the weights, so a width-reduced test checkpoint runs as is.

use burn::tensor::Device;

use super::layers::{Conv, Dense, Padding};
use super::Step;
use crate::error::Result;
use crate::weights::WeightSet;

pub struct Vgg16 {
    pub block1_conv1: Conv,
    pub block1_conv2: Conv,
    pub block2_conv1: Conv,
    pub block2_conv2: Conv,
    pub block3_conv1: Conv,
    pub block3_conv2: Conv,
    pub block3_conv3: Conv,
    pub block4_conv1: Conv,
    pub block4_conv2: Conv,
    pub block4_conv3: Conv,
    pub block5_conv1: Conv,
    pub block5_conv2: Conv,
    pub block5_conv3: Conv,
    pub fc1: Dense,
    pub fc2: Dense,
    pub predictions: Dense,
}

/// The conv layers in order, as (block, convs in the block).
pub const BLOCKS: [(usize, usize); 5] = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)];

/// Keras names of the 16 layers that carry weights, in order.
pub fn weighted_layer_names() -> Vec<String> {
    let mut names: Vec<String> = BLOCKS.iter().flat_map(|&(b, n)| (1..=n).map(move |i| format!("block{b}_conv{i}"))).collect();
    names.extend(["fc1", "fc2", "predictions"].map(String::from));
    names
}

impl Vgg16 {
    pub fn load(w: &mut WeightSet, device: &Device) -> Result<Self> {
        let conv = |w: &mut WeightSet, key: &str| Conv::load(w, key, 1, 1, Padding::Same, true, device);
        Ok(Self {
            block1_conv1: conv(w, "block1_conv1")?,
            block1_conv2: conv(w, "block1_conv2")?,
            block2_conv1: conv(w, "block2_conv1")?,
            block2_conv2: conv(w, "block2_conv2")?,
            block3_conv1: conv(w, "block3_conv1")?,
            block3_conv2: conv(w, "block3_conv2")?,
            block3_conv3: conv(w, "block3_conv3")?,
            block4_conv1: conv(w, "block4_conv1")?,
            block4_conv2: conv(w, "block4_conv2")?,
            block4_conv3: conv(w, "block4_conv3")?,
            block5_conv1: conv(w, "block5_conv1")?,
            block5_conv2: conv(w, "block5_conv2")?,
            block5_conv3: conv(w, "block5_conv3")?,
            fc1: Dense::load(w, "fc1", device)?,
            fc2: Dense::load(w, "fc2", device)?,
            predictions: Dense::load(w, "predictions", device)?,
        })
    }

    pub(crate) fn steps(&self) -> Vec<(String, Step<'_>)> {
        let s = |name: &str, step| (name.to_string(), step);
        vec![
            s("block1_conv1", Step::ConvRelu(&self.block1_conv1)),
            s("block1_conv2", Step::ConvRelu(&self.block1_conv2)),
            s("block1_pool", Step::Pool),
            s("block2_conv1", Step::ConvRelu(&self.block2_conv1)),
            s("block2_conv2", Step::ConvRelu(&self.block2_conv2)),
            s("block2_pool", Step::Pool),
            s("block3_conv1", Step::ConvRelu(&self.block3_conv1)),
            s("block3_conv2", Step::ConvRelu(&self.block3_conv2)),
            s("block3_conv3", Step::ConvRelu(&self.block3_conv3)),
            s("block3_pool", Step::Pool),
            s("block4_conv1", Step::ConvRelu(&self.block4_conv1)),
            s("block4_conv2", Step::ConvRelu(&self.block4_conv2)),
            s("block4_conv3", Step::ConvRelu(&self.block4_conv3)),
            s("block4_pool", Step::Pool),
            s("block5_conv1", Step::ConvRelu(&self.block5_conv1)),
            s("block5_conv2", Step::ConvRelu(&self.block5_conv2)),
            s("block5_conv3", Step::ConvRelu(&self.block5_conv3)),
            s("block5_pool", Step::Pool),
            s("fc1", Step::DenseRelu(&self.fc1)),
            s("fc2", Step::DenseRelu(&self.fc2)),
            s("predictions", Step::DenseLinear(&self.predictions)),
        ]
    }
}
