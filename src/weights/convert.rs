//! Reads any supported weights file, recognised by its content (never its name), into a WeightSet
//! for a given model: our safetensors, torchvision safetensors, Keras .h5, torch zip or legacy .pth.

use safetensors::SafeTensors;

use super::raw::RawTensor;
use super::{keras_h5, keymap, torch, WeightSet};
use crate::error::{Error, Result};
use crate::models::ModelKind;

/// The container formats we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    Hdf5,
    TorchZip,
    TorchLegacy,
}

impl Format {
    /// Sniffs the format from the first bytes.
    pub fn detect(bytes: &[u8]) -> Result<Self> {
        if keras_h5::is_hdf5(bytes) {
            Ok(Self::Hdf5)
        } else if torch::is_torch_zip(bytes) {
            Ok(Self::TorchZip)
        } else if torch::is_torch_legacy(bytes) {
            Ok(Self::TorchLegacy)
        } else if looks_like_safetensors(bytes) {
            Ok(Self::Safetensors)
        } else {
            Err(Error::weights("unrecognised file: expected .safetensors, a Keras .h5 or a PyTorch .pth"))
        }
    }
}

/// safetensors: an 8-byte little-endian header length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[8] == b'{' && u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize <= bytes.len() - 8
}

/// Every tensor of a foreign safetensors file as f32.
fn read_foreign_safetensors(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::weights(format!("not a valid safetensors file ({e})")))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        // Integer bookkeeping such as num_batches_tracked is skipped.
        let Some(data) = super::floats(view.dtype(), view.data()) else { continue };
        tensors.push(RawTensor::new(name, view.shape().to_vec(), data));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// Maps a torch-style tensor list onto `model`.
fn from_torch_tensors(tensors: &[RawTensor], model: ModelKind) -> Result<WeightSet> {
    match model {
        ModelKind::Vgg16 => keymap::vgg16_from_torch(tensors),
        ModelKind::EfficientNetLite0 => keymap::lite0_from_torch(tensors),
        ModelKind::SmallConvnet => Err(Error::weights("the book's small convnet is read from a Keras .h5 file, not a PyTorch checkpoint")),
    }
}

/// Reads `bytes` as weights for `model`, whatever supported format they are in.
pub fn import(bytes: &[u8], model: ModelKind) -> Result<WeightSet> {
    let set = match Format::detect(bytes)? {
        Format::Safetensors => match WeightSet::from_safetensors(bytes) {
            Ok(ours) => ours,
            Err(_) if !is_ours(bytes) => from_torch_tensors(&read_foreign_safetensors(bytes)?, model)?,
            Err(e) => return Err(e),
        },
        Format::Hdf5 => {
            let layers = keras_h5::read_keras_h5(bytes)?;
            match model {
                ModelKind::Vgg16 => keymap::vgg16_from_keras(&layers)?,
                ModelKind::SmallConvnet => keymap::small_convnet_from_keras(&layers)?,
                ModelKind::EfficientNetLite0 => return Err(Error::weights("EfficientNet-Lite0 is read from its PyTorch checkpoint, not a Keras .h5 file")),
            }
        }
        Format::TorchZip | Format::TorchLegacy => from_torch_tensors(&torch::read_torch(bytes)?, model)?,
    };
    if set.meta.model != model {
        return Err(Error::weights(format!("this file holds {} weights, not {}", set.meta.model.name(), model.name())));
    }
    Ok(set)
}

/// Whether a safetensors file carries our metadata marker.
fn is_ours(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().map(|m| m.contains_key("convlens")))
        .unwrap_or(false)
}

/// Which model a weights file holds, judged from its content alone (for files dropped on the page).
pub fn detect_model(bytes: &[u8]) -> Result<ModelKind> {
    match Format::detect(bytes)? {
        Format::Safetensors if is_ours(bytes) => Ok(WeightSet::from_safetensors(bytes)?.meta.model),
        Format::Safetensors => model_of_torch_keys(&read_foreign_safetensors(bytes)?),
        Format::Hdf5 => {
            let layers = keras_h5::read_keras_h5(bytes)?;
            Ok(if layers.iter().any(|l| l.name == "block1_conv1") { ModelKind::Vgg16 } else { ModelKind::SmallConvnet })
        }
        Format::TorchZip | Format::TorchLegacy => model_of_torch_keys(&torch::read_torch(bytes)?),
    }
}

fn model_of_torch_keys(tensors: &[RawTensor]) -> Result<ModelKind> {
    if tensors.iter().any(|t| t.name == "_conv_stem.weight") {
        Ok(ModelKind::EfficientNetLite0)
    } else if tensors.iter().any(|t| t.name == "features.0.weight") {
        Ok(ModelKind::Vgg16)
    } else {
        Err(Error::weights("this checkpoint is neither torchvision VGG16 nor EfficientNet-Lite0"))
    }
}
