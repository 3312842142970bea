//! Bytes in, named tensors (and the architecture, where a file carries one) out: ConvLens's own
//! weights format (safetensors with a `__metadata__` naming model, preprocessing, origin and
//! labels; f32 or f16 tensors) and readers for the files people have (Keras `.keras` and `.h5`,
//! PyTorch `.pth`, foreign safetensors). A leaf: it knows no model; the catalogue (`models`) and
//! the graph builders give the tensors their meaning.

pub mod keras_h5;
pub mod keras_zip;
pub mod layout;
pub mod onnx;
pub mod raw;
pub mod torch;

use std::collections::HashMap;

use half::slice::HalfFloatSliceExt;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::preprocess::Preprocessing;
use raw::{HostTensor, RawTensor};

/// Little-endian safetensors values as f32, for the float dtypes; None for the others.
pub(crate) fn floats(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        // f32 and f16, our own formats, are bulk copies and `half`'s vectorized widening (F16C,
        // compiled with the optimized dependencies): VGG16's 138 M values in ~0.1 s, not ~12 s
        // one value at a time in a debug build.
        Dtype::F32 if cfg!(target_endian = "little") => {
            let n = bytes.len() / 4;
            let mut values = vec![0f32; n];
            bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(&bytes[..n * 4]);
            values
        }
        Dtype::F16 if cfg!(target_endian = "little") => {
            let n = bytes.len() / 2;
            if cfg!(target_family = "wasm") {
                // wasm has no F16C, and `half` converts one value at a time there.
                return Some(widen_f16(&bytes[..n * 2]));
            }
            let mut halves = vec![half::f16::ZERO; n];
            bytemuck::cast_slice_mut::<half::f16, u8>(&mut halves).copy_from_slice(&bytes[..n * 2]);
            let mut values = vec![0f32; n];
            halves.convert_to_f32_slice(&mut values);
            values
        }
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => bytes.chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32).collect(),
        _ => return None,
    })
}

/// Little-endian f16s as f32s: read in place when aligned, into a vector never zeroed first.
fn widen_f16(bytes: &[u8]) -> Vec<f32> {
    let copy;
    let bits: &[u16] = match bytemuck::try_cast_slice(bytes) {
        Ok(aligned) => aligned,
        Err(_) => {
            copy = bytemuck::pod_collect_to_vec::<u8, u16>(bytes);
            &copy
        }
    };
    let mut values = Vec::with_capacity(bits.len());
    values.extend(bits.iter().map(|&h| f16_to_f32(h)));
    values
}

/// An f16's value as f32, exactly, without branches, so a loop of it vectorizes (with the two
/// changes in `floats`, VGG16's load in wasm under Node: 1.6–1.7 → 0.8–1.0 s). The magnitude
/// bits shifted into place are the f32 of the value ÷ 2^112, normal or subnormal alike; ×2^112
/// rescales; a result ≥ 2^16 was an infinity or NaN.
fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let scaled = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    let special = if scaled >= 65536.0 { 0x7f80_0000 } else { 0 };
    f32::from_bits(scaled.to_bits() | special | ((h & 0x8000) << 16))
}

/// What a weights file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The catalogue name of the network these weights belong to.
    pub model: String,
    pub preprocessing: Preprocessing,
    /// Where the weights came from, e.g. "keras-official-h5" or "torchvision".
    pub origin: String,
    /// Class names; empty: the model's defaults.
    pub labels: Vec<String>,
}

/// Named f32 tensors plus metadata, on the host. Networks are built from it.
#[derive(Debug, Clone)]
pub struct WeightSet {
    pub meta: Meta,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// The metadata key that marks a file as ours, and its format version.
const FORMAT_KEY: &str = "convlens";
const FORMAT_VERSION: &str = "1";

impl WeightSet {
    pub fn new(meta: Meta) -> Self {
        Self { meta, tensors: HashMap::new() }
    }

    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.insert(name.into(), (shape, data));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort();
        names
    }

    /// Total number of values (parameters and batch-norm statistics).
    pub fn value_count(&self) -> usize {
        self.tensors.values().map(|(_, d)| d.len()).sum()
    }

    /// Shape and values of a tensor; a missing name is reported as weights of another model.
    pub fn values(&self, name: &str) -> Result<(&[usize], &[f32])> {
        self.tensors.get(name).map(|(s, d)| (s.as_slice(), d.as_slice())).ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> Error {
        Error::weights(format!("no tensor '{name}': these do not look like {} weights", self.meta.model))
    }

    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(self.values(name)?.0)
    }

    /// Removes a tensor and returns its shape and values, so a network being built holds each
    /// weight once (on its device) rather than twice.
    /// Values that are NaN or infinite are refused here, with the tensor's name: every weight a
    /// network uses passes through this one place.
    pub fn take(&mut self, name: &str) -> Result<HostTensor> {
        let (shape, data) = self.tensors.remove(name).ok_or_else(|| self.missing(name))?;
        check_finite(name, &data)?;
        Ok((shape, data))
    }

    /// Removes a vector of exactly `len` values.
    pub fn take_vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (shape, data) = self.take(name)?;
        if shape != [len] {
            return Err(Error::weights(format!("'{name}' has shape {shape:?}, expected [{len}]")));
        }
        Ok(data)
    }

    /// Parses our safetensors format. Foreign safetensors (e.g. torchvision's) are importers' work.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| Error::weights_from("not a valid safetensors file", e))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::weights_from("not a valid safetensors file", e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_VERSION) {
            return Err(Error::weights("this safetensors file was not written by ConvLens; import it with `convlens convert`"));
        }
        let field = |key: &str| meta.get(key).cloned().ok_or_else(|| Error::weights(format!("the metadata has no '{key}'")));
        let labels = match meta.get("labels") {
            Some(json) => serde_json::from_str(json).map_err(|e| Error::weights_from("the metadata's labels are not a JSON list of strings", e))?,
            None => Vec::new(),
        };
        let preprocessing = Preprocessing::parse(&field("preprocessing")?).map_err(|e| Error::weights(format!("the metadata: {e}")))?;
        let meta = Meta { model: field("model")?, preprocessing, origin: field("origin")?, labels };
        let mut set = WeightSet::new(meta);
        for (name, view) in file.tensors() {
            let data = match view.dtype() {
                Dtype::F32 | Dtype::F16 => floats(view.dtype(), view.data()).unwrap_or_default(),
                other => return Err(Error::weights(format!("tensor '{name}' is {other:?}; ConvLens reads f32 or f16"))),
            };
            set.insert(name, view.shape().to_vec(), data);
        }
        Ok(set)
    }

    /// Writes our safetensors format, in f16 (half the size; ~1e-3 relative rounding) or f32.
    pub fn to_safetensors(&self, f16: bool) -> Result<Vec<u8>> {
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .names()
            .into_iter()
            .map(|name| {
                let (shape, data) = &self.tensors[name];
                let bytes = if f16 {
                    data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
                } else {
                    data.iter().flat_map(|v| v.to_le_bytes()).collect()
                };
                (name.to_string(), shape.clone(), bytes)
            })
            .collect();
        let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
        let views = encoded
            .iter()
            .map(|(name, shape, bytes)| {
                Ok((name.as_str(), TensorView::new(dtype, shape.clone(), bytes).map_err(|e| Error::weights_from(format!("tensor '{name}'"), e))?))
            })
            .collect::<Result<Vec<_>>>()?;
        let labels = serde_json::to_string(&self.meta.labels).map_err(|e| Error::weights_from("the labels", e))?;
        let metadata: HashMap<String, String> = [
            (FORMAT_KEY, FORMAT_VERSION.to_string()),
            ("model", self.meta.model.clone()),
            ("preprocessing", self.meta.preprocessing.name().to_string()),
            ("origin", self.meta.origin.clone()),
            ("labels", labels),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::weights_from("cannot write safetensors", e))?;
        Ok(with_sorted_header(bytes))
    }
}

/// Refuses NaN and infinite values (a tampered file would otherwise predict "NaN %").
pub fn check_finite(name: &str, data: &[f32]) -> Result<()> {
    // Blocks scanned without an early exit, so the scan vectorizes; the index only on failure.
    if data.chunks(4096).all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite())) {
        return Ok(());
    }
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::weights(format!("tensor '{name}' holds a non-finite value ({}) at index {i}", data[i]))),
        None => Ok(()),
    }
}

/// The container formats ConvLens recognises, from their first bytes (never the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    Hdf5,
    /// A ZIP: a Keras 3 `.keras` file or a PyTorch zip checkpoint.
    Zip,
    TorchLegacy,
    Onnx,
}

impl Format {
    pub fn detect(bytes: &[u8]) -> Result<Self> {
        if keras_h5::is_hdf5(bytes) {
            Ok(Self::Hdf5)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Ok(Self::Zip)
        } else if torch::is_torch_legacy(bytes) {
            Ok(Self::TorchLegacy)
        } else if looks_like_safetensors(bytes) {
            Ok(Self::Safetensors)
        } else if onnx::is_onnx(bytes) {
            Ok(Self::Onnx)
        } else {
            Err(Error::weights("unrecognised file: expected an ONNX model, a Keras .keras or .h5 model, a PyTorch .pth, or .safetensors"))
        }
    }
}

/// safetensors: an 8-byte little-endian header length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[8] == b'{' && u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize <= bytes.len() - 8
}

/// Whether a safetensors file carries our metadata marker.
fn is_ours(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes).ok().and_then(|(_, m)| m.metadata().as_ref().map(|m| m.contains_key(FORMAT_KEY))).unwrap_or(false)
}

/// Every float tensor of a foreign safetensors file as f32 (integer bookkeeping such as
/// `num_batches_tracked` is skipped), sorted by name.
fn read_foreign_safetensors(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::weights_from("not a valid safetensors file", e))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let Some(data) = floats(view.dtype(), view.data()) else { continue };
        tensors.push(RawTensor::new(name, view.shape().to_vec(), data));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// What a file holds.
pub enum Contents {
    /// ConvLens's own format.
    Ours(WeightSet),
    /// A PyTorch state dict (`.pth`, or safetensors without our metadata): names and tensors.
    StateDict(Vec<RawTensor>),
    /// Keras weights without an architecture (`save_weights` .h5).
    KerasWeights(Vec<keras_h5::KerasLayer>),
    /// A Keras model with its architecture (`.keras`, or a whole-model `.h5`).
    KerasModel(keras_zip::KerasModel),
    /// An ONNX model (graph and weights).
    Onnx(onnx::OnnxModel),
}

/// Reads any supported file, recognised by its content.
pub fn read(bytes: &[u8]) -> Result<Contents> {
    read_with(bytes, &|_| None)
}

/// Reads any supported file; `companion` gives the bytes of a file given beside it by name (an
/// ONNX model's external weights).
pub fn read_with<'f>(bytes: &[u8], companion: &dyn Fn(&str) -> Option<&'f [u8]>) -> Result<Contents> {
    Ok(match Format::detect(bytes)? {
        Format::Onnx => Contents::Onnx(onnx::read_onnx(bytes, companion)?),
        Format::Safetensors if is_ours(bytes) => Contents::Ours(WeightSet::from_safetensors(bytes)?),
        Format::Safetensors => Contents::StateDict(read_foreign_safetensors(bytes)?),
        Format::Hdf5 => {
            let file = keras_h5::read_keras_h5_file(bytes)?;
            match file.model_config {
                Some(config) => Contents::KerasModel(keras_zip::KerasModel::from_h5(&config, file.layers, file.keras_version)?),
                None => Contents::KerasWeights(file.layers),
            }
        }
        Format::Zip if keras_zip::is_keras_zip(bytes) => Contents::KerasModel(keras_zip::read_keras_zip(bytes)?),
        Format::Zip | Format::TorchLegacy => Contents::StateDict(torch::read_torch(bytes)?),
    })
}

/// safetensors writes its metadata map in hash order, so the same weights would give different
/// bytes (and hashes) on each run. Rewrites the JSON header with sorted keys, same length.
fn with_sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize;
    let Some(header) = bytes.get(8..8 + n) else { return bytes };
    let sorted = serde_json::from_slice::<serde_json::Value>(header).ok().and_then(|v| serde_json::to_vec(&v).ok());
    if let Some(sorted) = sorted.filter(|s| s.len() <= n) {
        bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
        bytes[8 + sorted.len()..8 + n].fill(b' ');
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_widens_exactly() {
        for h in 0..=u16::MAX {
            let (ours, reference) = (f16_to_f32(h), half::f16::from_bits(h).to_f32());
            assert!(ours.to_bits() == reference.to_bits() || (ours.is_nan() && reference.is_nan()), "{h:#06x}: {ours} vs {reference}");
        }
    }

    #[test]
    fn f16_bytes_widen_aligned_or_not() {
        let values = [1.5f32, -0.0, 65504.0, 6.0e-8, -2.25];
        let bytes: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        let mut shifted = vec![0u8];
        shifted.extend(&bytes);
        let expected: Vec<f32> = values.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        assert_eq!(widen_f16(&bytes), expected);
        assert_eq!(widen_f16(&shifted[1..]), expected);
    }
}
