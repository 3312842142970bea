//! The book's cats-vs-dogs convnet (Chollet, *Deep Learning with Python*, 5.2): 150×150×3 input,
//! conv 32/64/128/128 (3×3 "valid", ReLU) each followed by a 2×2 max-pool, flatten, dropout
//! (identity at inference), dense 512 ReLU, dense 1 (sigmoid: "dog"). Keras 2 layer names.
//! Widths come from the weights, so a width-reduced test checkpoint runs as is.

use burn::tensor::Device;

use super::layers::{Conv, Dense, Padding};
use super::Step;
use crate::error::Result;
use crate::weights::WeightSet;

pub struct SmallConvnet {
    pub conv2d_1: Conv,
    pub conv2d_2: Conv,
    pub conv2d_3: Conv,
    pub conv2d_4: Conv,
    pub dense_1: Dense,
    pub dense_2: Dense,
}

/// Our names of the six layers that carry weights, in order.
pub const WEIGHTED_LAYERS: [&str; 6] = ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1", "dense_2"];

impl SmallConvnet {
    pub fn load(w: &mut WeightSet, device: &Device) -> Result<Self> {
        let conv = |w: &mut WeightSet, key: &str| Conv::load(w, key, 1, 1, Padding::Valid, true, device);
        Ok(Self {
            conv2d_1: conv(w, "conv2d_1")?,
            conv2d_2: conv(w, "conv2d_2")?,
            conv2d_3: conv(w, "conv2d_3")?,
            conv2d_4: conv(w, "conv2d_4")?,
            dense_1: Dense::load(w, "dense_1", device)?,
            dense_2: Dense::load(w, "dense_2", device)?,
        })
    }

    pub(crate) fn steps(&self) -> Vec<(String, Step<'_>)> {
        let s = |name: &str, step| (name.to_string(), step);
        vec![
            s("conv2d_1", Step::ConvRelu(&self.conv2d_1)),
            s("max_pooling2d_1", Step::Pool),
            s("conv2d_2", Step::ConvRelu(&self.conv2d_2)),
            s("max_pooling2d_2", Step::Pool),
            s("conv2d_3", Step::ConvRelu(&self.conv2d_3)),
            s("max_pooling2d_3", Step::Pool),
            s("conv2d_4", Step::ConvRelu(&self.conv2d_4)),
            s("max_pooling2d_4", Step::Pool),
            s("dense_1", Step::DenseRelu(&self.dense_1)),
            s("dense_2", Step::DenseLinear(&self.dense_2)),
        ]
    }
}
