//! What the tests share: the bundled Lite0, reading fixture numbers and comparing maps.

// Each test binary compiles this module and uses only what it needs.
#![allow(dead_code)]

use convlens::backend::Backend;
use convlens::formats::WeightSet;
use convlens::network::Network;
use serde_json::Value;

/// The bundled EfficientNet-Lite0 weights (weights/efficientnet-lite0.safetensors).
pub fn lite0_weights() -> WeightSet {
    let bytes = std::fs::read(format!("{}/weights/efficientnet-lite0.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap();
    WeightSet::from_safetensors(&bytes).unwrap()
}

/// The bundled EfficientNet-Lite0 on the CPU.
pub fn lite0() -> Network {
    Network::from_weights(lite0_weights(), &Backend::Cpu.device().unwrap()).unwrap()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Pearson correlation of two maps.
pub fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt()).max(1e-12)
}

/// Relative error of a layer's per-channel means (values [C, …] of one image) against reference
/// means: the largest difference over the largest reference magnitude (at least 1e-3).
pub fn channel_means_error(values: &[f32], channels: usize, reference: &[f32]) -> f32 {
    let per = values.len() / channels;
    let means: Vec<f32> = values.chunks(per).map(|c| c.iter().sum::<f32>() / per as f32).collect();
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    means.iter().zip(reference).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}
