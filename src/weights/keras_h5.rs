//! Keras HDF5 (`.h5`) weights reader, on an in-memory byte buffer (native and wasm32 alike).
//!
//! Follows Keras's legacy loader `load_weights_from_hdf5_group`: the weights group is the
//! root when it carries a `layer_names` attribute (a `save_weights` file, such as the
//! official VGG16 weights), else the group `model_weights` (a whole-model `model.save`, Keras
//! 2 or Keras 3's legacy `.h5`). Each name of `layer_names` is a group whose `weight_names`
//! attribute lists dataset paths relative to it (`conv2d_1/kernel:0`,
//! `sequential/conv/kernel`, `block1_conv1_W_1:0`). Name lists may be fixed- or
//! variable-length strings, bytes or UTF-8, and split into `layer_names0`, `layer_names1`,
//! ... chunks as Keras does for long lists; an empty numeric array means no weights.
//! `model_config` is not read.
//!
//! Untrusted input: the file is parsed by `hdf5-pure`. Before a dataset is read its declared
//! size is checked against the input (an unfiltered dataset cannot hold more bytes than the
//! file, a compressed one at most 16 times as many, and all values returned together at most
//! 16 times the file's size), so a forged shape cannot make us allocate. Where unwinding is
//! available (native builds) a panic inside the parser is caught as a last line of defence
//! and reported as a malformed file; on wasm32 (panic = abort) only the checks apply.

use std::collections::HashMap;

use hdf5_pure::{AttrValue, Datatype, DatatypeByteOrder};

use crate::error::{Error, Result};
use crate::weights::raw::RawTensor;

/// One Keras layer as the file lists it: its name and its weights, in `weight_names` order.
/// Layers without weights (input, pooling, flatten, ...) are kept with `weights` empty.
#[derive(Debug, Clone, PartialEq)]
pub struct KerasLayer {
    pub name: String,
    pub weights: Vec<RawTensor>,
}

/// The 8-byte HDF5 signature, which may sit at offset 0 or after a user block.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// How many times its file size a compressed dataset may declare, and all values returned.
const EXPANSION_LIMIT: u64 = 16;

/// Whether `bytes` carry the HDF5 signature at offset 0, 512, 1024 or 2048.
pub fn is_hdf5(bytes: &[u8]) -> bool {
    [0usize, 512, 1024, 2048]
        .iter()
        .any(|&at| bytes.get(at..at + SIGNATURE.len()) == Some(SIGNATURE.as_slice()))
}

/// Reads every layer's weights from a Keras .h5 (whole model or weights-only), in file order.
pub fn read_keras_h5(bytes: &[u8]) -> Result<Vec<KerasLayer>> {
    if !is_hdf5(bytes) {
        return Err(Error::weights("not an HDF5 file: a Keras .h5 weights file was expected"));
    }
    guarded(|| read_layers(bytes))
}

/// Runs `f`, turning a panic into an error where panics unwind (native builds).
#[cfg(panic = "unwind")]
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::weights("the HDF5 file is malformed: the parser could not make sense of it"))
    })
}

#[cfg(not(panic = "unwind"))]
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    f()
}

/// One line, fit for `Error::Weights`.
fn h5(context: &str, e: impl std::fmt::Display) -> Error {
    let msg = e.to_string().replace(['\n', '\r'], " ");
    Error::weights(format!("{context}: {msg}"))
}

fn read_layers(bytes: &[u8]) -> Result<Vec<KerasLayer>> {
    let file_len = bytes.len() as u64;
    let file = hdf5_pure::File::from_bytes(bytes.to_vec()).map_err(|e| h5("cannot open the HDF5 file", e))?;
    let root = file.root();
    let root_attrs = root.attrs().map_err(|e| h5("cannot read the file's attributes", e))?;

    let (group, layer_names) = match string_list(&root_attrs, "layer_names")? {
        Some(names) => (root, names),
        None => {
            let group = file.group("model_weights").map_err(|_| {
                Error::weights(
                    "this HDF5 file holds no Keras weights (no layer_names attribute and no model_weights group)",
                )
            })?;
            let attrs = group.attrs().map_err(|e| h5("cannot read model_weights' attributes", e))?;
            let names = string_list(&attrs, "layer_names")?
                .ok_or_else(|| Error::weights("the model_weights group has no layer_names attribute"))?;
            (group, names)
        }
    };

    let mut budget = file_len.saturating_mul(EXPANSION_LIMIT).max(1 << 20);
    let mut layers = Vec::with_capacity(layer_names.len().min(bytes.len()));
    for layer in layer_names {
        let g = group
            .group(&layer)
            .map_err(|e| h5(&format!("layer '{layer}' listed in layer_names cannot be opened"), e))?;
        let attrs = g.attrs().map_err(|e| h5(&format!("layer '{layer}': cannot read its attributes"), e))?;
        let weight_names = string_list(&attrs, "weight_names")?.unwrap_or_default();
        let mut weights = Vec::with_capacity(weight_names.len().min(bytes.len()));
        for weight in weight_names {
            let tensor = read_dataset(&g, &weight, file_len, &mut budget)
                .map_err(|e| match e {
                    Error::Weights(msg) => Error::weights(format!("layer '{layer}', weight '{weight}': {msg}")),
                    other => other,
                })?;
            weights.push(tensor);
        }
        layers.push(KerasLayer { name: layer, weights });
    }
    Ok(layers)
}

fn read_dataset(g: &hdf5_pure::Group, weight: &str, file_len: u64, budget: &mut u64) -> Result<RawTensor> {
    let ds = g.dataset(weight).map_err(|e| h5("cannot open the dataset", e))?;
    let dims = ds.shape().map_err(|e| h5("cannot read the shape", e))?;
    let datatype = ds.datatype().map_err(|e| h5("cannot read the datatype", e))?;
    let shape = dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| Error::weights("the dataset's shape is too large"))?;
    let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let stored = numel.and_then(|n| n.checked_mul(u64::from(datatype.type_size())));
    let limit = if ds.filters().is_empty() { file_len } else { file_len.saturating_mul(EXPANSION_LIMIT) };
    let numel = match (numel, stored) {
        (Some(n), Some(b)) if b <= limit && n.saturating_mul(4) <= *budget => n,
        _ => {
            return Err(Error::weights(format!(
                "the dataset declares a shape {dims:?} too large for this {file_len}-byte file"
            )))
        }
    };
    *budget -= numel * 4;

    let data = match &datatype {
        Datatype::FloatingPoint { size: 2, byte_order, .. } => {
            let raw = ds.read_raw().map_err(|e| h5("cannot read the data", e))?;
            let big = matches!(byte_order, DatatypeByteOrder::BigEndian);
            raw.chunks_exact(2)
                .map(|c| {
                    let bits = if big { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
                    half::f16::from_bits(bits).to_f32()
                })
                .collect()
        }
        Datatype::FloatingPoint { size: 4 | 8, .. } | Datatype::FixedPoint { .. } => {
            ds.read_f32().map_err(|e| h5("cannot read the data", e))?
        }
        other => {
            return Err(Error::weights(format!(
                "unsupported element type ({} bytes, {}): expected float16, float32 or float64",
                other.type_size(),
                datatype_kind(other)
            )))
        }
    };
    if data.len() as u64 != numel {
        return Err(Error::weights(format!(
            "the dataset holds {} values but its shape {dims:?} needs {numel}",
            data.len()
        )));
    }
    Ok(RawTensor::new(weight, shape, data))
}

fn datatype_kind(dt: &Datatype) -> &'static str {
    match dt {
        Datatype::FixedPoint { .. } => "integer",
        Datatype::FloatingPoint { .. } => "float",
        Datatype::String { .. } | Datatype::VariableLength { is_string: true, .. } => "string",
        Datatype::Compound { .. } => "compound",
        _ => "non-numeric",
    }
}

/// A list-of-names attribute as Keras's `load_attributes_from_hdf5_group` reads it:
/// `name` itself, else the chunks `name0`, `name1`, ... concatenated; `None` if neither.
fn string_list(attrs: &HashMap<String, AttrValue>, name: &str) -> Result<Option<Vec<String>>> {
    if let Some(value) = attrs.get(name) {
        return strings_of(value, name).map(Some);
    }
    let mut out = Vec::new();
    let mut chunk = 0usize;
    while let Some(value) = attrs.get(&format!("{name}{chunk}")) {
        out.extend(strings_of(value, name)?);
        chunk += 1;
    }
    Ok((chunk > 0).then_some(out))
}

fn strings_of(value: &AttrValue, name: &str) -> Result<Vec<String>> {
    if let Some(strings) = value.as_strings() {
        return Ok(strings.to_vec());
    }
    // Keras writes an empty list as np.asarray([]): an empty float64 array.
    let empty = match value {
        AttrValue::F32Array(v) => v.is_empty(),
        AttrValue::F64Array(v) => v.is_empty(),
        AttrValue::I8Array(v) => v.is_empty(),
        AttrValue::I16Array(v) => v.is_empty(),
        AttrValue::I32Array(v) => v.is_empty(),
        AttrValue::I64Array(v) => v.is_empty(),
        AttrValue::U8Array(v) => v.is_empty(),
        AttrValue::U16Array(v) => v.is_empty(),
        AttrValue::U32Array(v) => v.is_empty(),
        AttrValue::U64Array(v) => v.is_empty(),
        _ => false,
    };
    if empty {
        Ok(Vec::new())
    } else {
        Err(Error::weights(format!("the {name} attribute is not a list of names")))
    }
}
