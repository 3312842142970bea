//! ConvLens's one weights format (safetensors with a `__metadata__` naming model, preprocessing,
//! origin and labels; f32 or f16 tensors) and the importers for the files people actually have.

pub mod convert;
pub mod keras_h5;
pub mod keymap;
pub mod raw;
pub mod torch;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use half::slice::HalfFloatSliceExt;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::models::{ModelKind, Preprocessing};

/// The 1000 ImageNet class names, index-aligned with the classifiers' outputs.
pub fn imagenet_labels() -> Vec<String> {
    serde_json::from_str(include_str!("../../weights/imagenet_labels.json")).expect("bundled labels are valid JSON")
}

/// The book's convnet's two classes, in the order of its two-logit form.
pub fn cat_dog_labels() -> Vec<String> {
    vec!["cat".to_string(), "dog".to_string()]
}

/// The labels a model has unless its weights say otherwise.
pub fn default_labels(model: ModelKind) -> Vec<String> {
    match model {
        ModelKind::SmallConvnet => cat_dog_labels(),
        _ => imagenet_labels(),
    }
}

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

/// What a weights file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub model: ModelKind,
    pub preprocessing: Preprocessing,
    /// Where the weights came from, e.g. "keras-official-h5" or "torchvision".
    pub origin: String,
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
        Error::weights(format!("no tensor '{name}': these do not look like {} weights", self.meta.model.name()))
    }

    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(self.values(name)?.0)
    }

    /// Removes a tensor and returns its shape and values, so a network being built holds each
    /// weight once (on its device) rather than twice.
    pub fn take(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.tensors.remove(name).ok_or_else(|| self.missing(name))
    }

    /// Removes a tensor of rank `D` and puts it on `device`.
    pub fn take_tensor<const D: usize>(&mut self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let (shape, data) = self.take(name)?;
        if shape.len() != D {
            return Err(Error::weights(format!("'{name}' has shape {shape:?}, expected {D} dimensions")));
        }
        Ok(Tensor::from_data(TensorData::new(data, shape), device))
    }

    /// Parses our safetensors format. Foreign safetensors (e.g. torchvision's) are importers' work.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| Error::weights(format!("not a valid safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::weights(format!("not a valid safetensors file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_VERSION) {
            return Err(Error::weights("this safetensors file was not written by ConvLens; import it with `convlens convert`"));
        }
        let field = |key: &str| meta.get(key).cloned().ok_or_else(|| Error::weights(format!("the metadata has no '{key}'")));
        let model = ModelKind::parse(&field("model")?).map_err(|e| Error::weights(e.to_string()))?;
        let labels = match meta.get("labels") {
            Some(json) => serde_json::from_str(json).map_err(|e| Error::weights(format!("the metadata's labels are not a JSON list of strings ({e})")))?,
            None => default_labels(model),
        };
        let meta = Meta { model, preprocessing: Preprocessing::parse(&field("preprocessing")?)?, origin: field("origin")?, labels };
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
            .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(dtype, shape.clone(), bytes).map_err(|e| Error::weights(e.to_string()))?)))
            .collect::<Result<Vec<_>>>()?;
        let labels = serde_json::to_string(&self.meta.labels).map_err(|e| Error::weights(e.to_string()))?;
        let metadata: HashMap<String, String> = [
            (FORMAT_KEY, FORMAT_VERSION.to_string()),
            ("model", self.meta.model.name().to_string()),
            ("preprocessing", self.meta.preprocessing.name().to_string()),
            ("origin", self.meta.origin.clone()),
            ("labels", labels),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::weights(e.to_string()))?;
        Ok(with_sorted_header(bytes))
    }
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
