//! VGG16 (Simonyan & Zisserman 2014) exactly as `keras.applications.VGG16`: 13 conv 3×3 "same" +
//! ReLU in five blocks, each closed by a 2×2 max-pool, then fc1/fc2 (ReLU) and `predictions`
//! (softmax). Layers carry the Keras names, which are also our checkpoint keys. Widths come from
//! the weights, so a width-reduced test checkpoint runs as is. Read from the official Keras
//! `.h5`, torchvision's state dict and timm's `vgg16.tv_in1k` safetensors.

use burn::tensor::Device;

use super::keymap::{by_name, conv_op, dense_op, keras_sequence};
use super::{imagenet_labels, BuiltIn};
use crate::error::{Error, Result};
use crate::formats::keras_h5::KerasLayer;
use crate::formats::layout::{transpose, vector};
use crate::formats::raw::RawTensor;
use crate::formats::WeightSet;
use crate::graph::ops::{Padding, Window};
use crate::graph::{Act, Graph, Op};
use crate::preprocess::Preprocessing;

pub const MODEL: BuiltIn = BuiltIn {
    name: "vgg16",
    title: "VGG16",
    input_size: 224,
    default_cam_layer: "block5_conv3",
    default_filter_layer: "block3_conv1",
    labels: imagenet_labels,
    build,
    from_state_dict,
    from_keras,
    bundled: None,
    weights_hint: "VGG16 needs weights: pass --weights FILE (the Keras vgg16_weights_tf_dim_ordering_tf_kernels.h5, torchvision's vgg16-397923af.pth, timm's vgg16.tv_in1k model.safetensors, or a ConvLens .safetensors), or run `convlens fetch vgg16`",
};

/// The conv layers in order, as (block, convs in the block).
pub const BLOCKS: [(usize, usize); 5] = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)];

/// Keras names of the 16 layers that carry weights, in order.
pub fn weighted_layer_names() -> Vec<String> {
    let mut names: Vec<String> = BLOCKS.iter().flat_map(|&(b, n)| (1..=n).map(move |i| format!("block{b}_conv{i}"))).collect();
    names.extend(["fc1", "fc2", "predictions"].map(String::from));
    names
}

fn build(w: &mut WeightSet, device: &Device) -> Result<Graph> {
    let mut g = Graph::new("input", [3, MODEL.input_size, MODEL.input_size]);
    let pool = Op::MaxPool(Window { size: [2, 2], stride: [2, 2], padding: Padding::Valid, count_padding: false });
    for (block, convs) in BLOCKS {
        for i in 1..=convs {
            let name = format!("block{block}_conv{i}");
            g.chain(&name, conv_op(w, &name, 1, Padding::Same, Act::Relu, device)?)?;
        }
        g.chain(format!("block{block}_pool"), pool.clone())?;
    }
    // Our dense weights read the map in (C, H, W) order, so the flatten is channels-first.
    g.chain("flatten", Op::Flatten { channels_last: false })?;
    g.chain("fc1", dense_op(w, "fc1", Act::Relu, device)?)?;
    g.chain("fc2", dense_op(w, "fc2", Act::Relu, device)?)?;
    g.chain("predictions", dense_op(w, "predictions", Act::Linear, device)?)?;
    Ok(g)
}

/// VGG16 from a Keras .h5 (the official weights file or a `model.save`), matched by layer name.
fn from_keras(layers: &[KerasLayer]) -> Option<Result<WeightSet>> {
    if !layers.iter().any(|l| l.name == "block1_conv1") {
        return None;
    }
    let ours = weighted_layer_names();
    let mut ordered = Vec::new();
    for name in &ours {
        match layers.iter().find(|l| &l.name == name) {
            Some(layer) => ordered.push(layer),
            None => {
                let found: Vec<&str> = layers.iter().filter(|l| !l.weights.is_empty()).map(|l| l.name.as_str()).collect();
                return Some(Err(Error::weights(format!("this Keras file has no layer '{name}': it does not hold VGG16 (its layers: {})", found.join(", ")))));
            }
        }
    }
    let mut set = WeightSet::new(MODEL.meta(Preprocessing::Caffe, "keras-h5"));
    Some(keras_sequence(&ordered, &ours, &mut set, "VGG16").map(|_| set))
}

/// torchvision VGG16 indices of the weighted layers: features.{i} convs, classifier.{0,3,6} dense.
const TORCHVISION_VGG16: [&str; 16] = [
    "features.0",
    "features.2",
    "features.5",
    "features.7",
    "features.10",
    "features.12",
    "features.14",
    "features.17",
    "features.19",
    "features.21",
    "features.24",
    "features.26",
    "features.28",
    "classifier.0",
    "classifier.3",
    "classifier.6",
];

/// timm's `vgg16.tv_in1k` names its classifier `pre_logits.fc1` / `pre_logits.fc2` (stored as 7×7
/// and 1×1 convs) and `head.fc`; its features are torchvision's.
const TIMM_HEAD: [&str; 3] = ["pre_logits.fc1", "pre_logits.fc2", "head.fc"];

/// VGG16 from a torchvision or timm state dict (`.pth` or `.safetensors`).
fn from_state_dict(tensors: &[RawTensor]) -> Option<Result<WeightSet>> {
    let map = by_name(tensors);
    if !map.contains_key("features.0.weight") || map.contains_key("features.0.0.weight") {
        return None;
    }
    let timm = map.contains_key("pre_logits.fc1.weight");
    let (layout, origin) = if timm { ("timm vgg16.tv_in1k", "timm") } else { ("torchvision VGG16", "torchvision") };
    let get = |key: String| map.get(key.as_str()).copied().ok_or_else(|| Error::weights(format!("no tensor '{key}': this is not a {layout} state dict")));
    let theirs = TORCHVISION_VGG16[..13].iter().chain(if timm { &TIMM_HEAD[..] } else { &TORCHVISION_VGG16[13..] });
    let mut set = WeightSet::new(MODEL.meta(Preprocessing::Torch, origin));
    let result = (|| {
        for (theirs, ours) in theirs.zip(weighted_layer_names()) {
            let weight = get(format!("{theirs}.weight"))?;
            let (shape, data) = match weight.shape[..] {
                // A dense layer stored as a conv over the whole map (timm): its [out, C, H, W]
                // kernel is a torch linear weight [out, C·H·W] in (C, H, W) order.
                [out, c, h, w] if ours.starts_with("fc") || ours == "predictions" => {
                    transpose(&RawTensor::new(weight.name.clone(), vec![out, c * h * w], weight.data.clone()))?
                }
                [_, _, _, _] => (weight.shape.clone(), weight.data.clone()),
                _ => transpose(weight)?,
            };
            set.insert(format!("{ours}.weight"), shape, data);
            let (shape, data) = vector(get(format!("{theirs}.bias"))?)?;
            set.insert(format!("{ours}.bias"), shape, data);
        }
        Ok(())
    })();
    Some(result.map(|_| set))
}
