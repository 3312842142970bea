//! Keras models that carry their architecture: the Keras 3 `.keras` archive (a ZIP of
//! `config.json`, `metadata.json` and `model.weights.h5`, read with the `zip` crate from memory)
//! and whole-model `.h5` files (`model_config` plus per-layer weights). Both become a `KerasModel`:
//! the architecture as JSON and the weights as the file stores them; `graph::keras` gives them
//! meaning.

use std::io::{Cursor, Read};

use serde_json::Value;

use super::keras_h5::{read_all_datasets, KerasLayer};
use super::raw::RawTensor;
use crate::error::{Error, Result};

/// How a Keras file stores its weights.
#[derive(Debug, Clone)]
pub enum KerasWeights {
    /// `.keras`: datasets by path, `layers/<snake_case class>[_N]/vars/<i>` (nested models under
    /// their own path), in the order the model tracks its layers.
    ByPath(Vec<RawTensor>),
    /// Whole-model `.h5`: each top-level layer's weights, in `weight_names` order (a nested
    /// model's group holds all of its layers' weights, in order).
    ByLayer(Vec<KerasLayer>),
}

/// A Keras model read from its file.
#[derive(Debug, Clone)]
pub struct KerasModel {
    /// The model's serialized config: `{"class_name": "Sequential" | "Functional" | "Model", "config": …}`.
    pub config: Value,
    pub weights: KerasWeights,
    /// E.g. "Keras 3.15.1 .keras".
    pub origin: String,
}

impl KerasModel {
    /// From a whole-model `.h5`'s `model_config` attribute and its layers.
    pub fn from_h5(config: &str, layers: Vec<KerasLayer>, keras_version: Option<String>) -> Result<Self> {
        let config = serde_json::from_str(config).map_err(|e| Error::weights_from("the .h5 file's model_config is not valid JSON", e))?;
        let origin = format!("Keras {} .h5", keras_version.as_deref().unwrap_or("(unknown version)"));
        Ok(Self { config, weights: KerasWeights::ByLayer(layers), origin })
    }
}

/// Largest archive entry we inflate, relative to the archive's size (stored entries are 1×).
const EXPANSION_LIMIT: u64 = 16;

/// Whether a ZIP is a Keras archive (it has `config.json` and no PyTorch `data.pkl`).
pub fn is_keras_zip(bytes: &[u8]) -> bool {
    match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive.file_names().any(|n| n == "config.json") && !archive.file_names().any(|n| n.ends_with("data.pkl")),
        Err(_) => false,
    }
}

fn entry(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut file = match archive.by_name(name) {
        Ok(file) => file,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(Error::weights_from(format!("the .keras archive's {name} cannot be read"), e)),
    };
    if file.size() > limit {
        return Err(Error::weights(format!("the .keras archive's {name} declares {} bytes, too many for this file", file.size())));
    }
    let mut out = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut out).map_err(|e| Error::weights_from(format!("the .keras archive's {name} is damaged or truncated"), e))?;
    Ok(Some(out))
}

/// Reads a `.keras` archive.
pub fn read_keras_zip(bytes: &[u8]) -> Result<KerasModel> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| Error::weights_from("not a readable ZIP archive; is the file truncated?", e))?;
    let limit = (bytes.len() as u64).saturating_mul(EXPANSION_LIMIT);
    let config = entry(&mut archive, "config.json", limit)?.ok_or_else(|| Error::weights("the .keras archive has no config.json"))?;
    let config: Value = serde_json::from_slice(&config).map_err(|e| Error::weights_from("the .keras archive's config.json is not valid JSON", e))?;
    let version = entry(&mut archive, "metadata.json", limit)?
        .and_then(|m| serde_json::from_slice::<Value>(&m).ok())
        .and_then(|m| m.get("keras_version").and_then(Value::as_str).map(str::to_string));
    let weights = entry(&mut archive, "model.weights.h5", limit)?
        .ok_or_else(|| Error::weights("the .keras archive has no model.weights.h5: it holds an architecture without weights"))?;
    let tensors = read_all_datasets(&weights)?;
    let origin = format!("Keras {} .keras", version.as_deref().unwrap_or("(unknown version)"));
    Ok(KerasModel { config, weights: KerasWeights::ByPath(tensors), origin })
}
