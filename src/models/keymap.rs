//! What the built-ins' key maps share: Keras layers with weights matched onto our layer names.
//! Ours: conv weights [out, in, kh, kw] (torch OIHW), dense weights [in, out] with the inputs in
//! channels-first (C, H, W) flatten order.

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::formats::keras_h5::KerasLayer;
use crate::formats::layout::{hwc_rows_to_chw, hwio_to_oihw, vector};
use crate::formats::raw::RawTensor;
use crate::formats::WeightSet;
use crate::graph::ops::{Conv, Dense, Padding};
use crate::graph::{Act, Op};

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
pub fn keras_sequence(layers: &[&KerasLayer], ours: &[String], set: &mut WeightSet, what: &str) -> Result<()> {
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

/// A state dict's tensors by name.
pub fn by_name(tensors: &[RawTensor]) -> std::collections::HashMap<&str, &RawTensor> {
    tensors.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// A conv of our layout (`<key>.weight`, `<key>.bias`) followed by `act`.
pub fn conv_op(w: &mut WeightSet, key: &str, stride: usize, padding: Padding, act: Act, device: &Device) -> Result<Op> {
    let weight = w.take(&format!("{key}.weight"))?;
    let bias = w.take(&format!("{key}.bias"))?;
    Ok(Op::Conv { conv: Conv::new(weight, Some(bias), [stride; 2], [1, 1], 1, padding, device)?, act })
}

/// A dense layer of our layout (`<key>.weight` [in, out], `<key>.bias`) followed by `act`.
pub fn dense_op(w: &mut WeightSet, key: &str, act: Act, device: &Device) -> Result<Op> {
    let weight = w.take(&format!("{key}.weight"))?;
    let bias = w.take(&format!("{key}.bias"))?;
    Ok(Op::Dense { dense: Dense::new(weight, Some(bias), device)?, act })
}
