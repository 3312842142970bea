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
//! A whole-model file's `model_config` attribute (the architecture, JSON) is returned as text.
//! `read_all_datasets` walks every dataset of a file (the `model.weights.h5` inside a `.keras`).
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
use crate::formats::raw::RawTensor;

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
    [0usize, 512, 1024, 2048].iter().any(|&at| bytes.get(at..at + SIGNATURE.len()) == Some(SIGNATURE.as_slice()))
}

/// A Keras .h5: its layers' weights and, for a whole-model file, its architecture.
#[derive(Debug, Clone)]
pub struct KerasH5 {
    pub layers: Vec<KerasLayer>,
    /// The `model_config` attribute (JSON), present in whole-model files.
    pub model_config: Option<String>,
    pub keras_version: Option<String>,
}

/// Reads every layer's weights from a Keras .h5 (whole model or weights-only), in file order.
pub fn read_keras_h5(bytes: &[u8]) -> Result<Vec<KerasLayer>> {
    Ok(read_keras_h5_file(bytes)?.layers)
}

/// Reads a Keras .h5 with its architecture, where it has one.
pub fn read_keras_h5_file(bytes: &[u8]) -> Result<KerasH5> {
    if !is_hdf5(bytes) {
        return Err(Error::weights("not an HDF5 file: a Keras .h5 weights file was expected"));
    }
    guarded(|| read_layers(bytes))
}

/// Every dataset of an HDF5 file as (path, tensor), paths like `layers/conv2d/vars/0`, in the
/// file's order, with the same size checks as the layer reader.
pub fn read_all_datasets(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    if !is_hdf5(bytes) {
        return Err(Error::weights("the weights inside the archive are not an HDF5 file"));
    }
    guarded(|| {
        let file_len = bytes.len() as u64;
        let file = hdf5_pure::File::from_bytes(bytes.to_vec()).map_err(|e| h5("cannot open the HDF5 file", e))?;
        let mut budget = file_len.saturating_mul(EXPANSION_LIMIT).max(1 << 20);
        let mut out = Vec::new();
        // Depth-first; a forged file cannot loop us: paths only grow and depth is bounded.
        let mut stack = vec![(String::new(), file.root(), 0usize)];
        while let Some((path, group, depth)) = stack.pop() {
            if depth > 32 {
                return Err(Error::weights("the HDF5 file nests groups deeper than any Keras model"));
            }
            let mut datasets = group.datasets().map_err(|e| h5(&format!("cannot list '{path}'"), e))?;
            datasets.sort();
            for name in datasets {
                let full = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                let mut t = read_dataset(&group, &name, file_len, &mut budget).map_err(|e| e.within(&format!("'{full}'")))?;
                t.name = full;
                out.push(t);
            }
            let mut groups = group.groups().map_err(|e| h5(&format!("cannot list '{path}'"), e))?;
            groups.sort();
            for name in groups.into_iter().rev() {
                let full = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                let child = group.group(&name).map_err(|e| h5(&format!("cannot open '{full}'"), e))?;
                stack.push((full, child, depth + 1));
            }
        }
        Ok(out)
    })
}

/// Runs `f`, turning a panic into an error where panics unwind (native builds).
#[cfg(panic = "unwind")]
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::weights("the HDF5 file is malformed: the parser could not make sense of it")))
}

#[cfg(not(panic = "unwind"))]
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    f()
}

/// The HDF5 reader's error as the cause of refused weights.
fn h5(context: &str, e: hdf5_pure::Error) -> Error {
    Error::weights_from(context, e)
}

fn read_layers(bytes: &[u8]) -> Result<KerasH5> {
    let file_len = bytes.len() as u64;
    let file = hdf5_pure::File::from_bytes(bytes.to_vec()).map_err(|e| h5("cannot open the HDF5 file", e))?;
    // As the HDF5 library does, refuse a file shorter than its superblock says it is.
    let sb = file.superblock();
    let declared_end = sb.base_address.get().saturating_add(sb.eof_address);
    if declared_end > file_len {
        return Err(Error::weights(format!("the HDF5 file is truncated: it should be {declared_end} bytes long but is {file_len}")));
    }
    let root = file.root();
    let root_attrs = root.attrs().map_err(|e| h5("cannot read the file's attributes", e))?;

    let text = |key: &str| root_attrs.get(key).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_strings().and_then(|s| s.first().cloned())));
    let (model_config, keras_version) = (text("model_config"), text("keras_version"));
    let (group, layer_names) = match string_list(&root_attrs, "layer_names")? {
        Some(names) => (root, names),
        None => {
            let group = file
                .group("model_weights")
                .map_err(|_| Error::weights("this HDF5 file holds no Keras weights (no layer_names attribute and no model_weights group)"))?;
            let attrs = group.attrs().map_err(|e| h5("cannot read model_weights' attributes", e))?;
            let names = string_list(&attrs, "layer_names")?.ok_or_else(|| Error::weights("the model_weights group has no layer_names attribute"))?;
            (group, names)
        }
    };

    let mut budget = file_len.saturating_mul(EXPANSION_LIMIT).max(1 << 20);
    let mut layers = Vec::with_capacity(layer_names.len().min(bytes.len()));
    for layer in layer_names {
        let g = group.group(&layer).map_err(|e| h5(&format!("layer '{layer}' listed in layer_names cannot be opened"), e))?;
        let attrs = g.attrs().map_err(|e| h5(&format!("layer '{layer}': cannot read its attributes"), e))?;
        let weight_names = string_list(&attrs, "weight_names")?.unwrap_or_default();
        let mut weights = Vec::with_capacity(weight_names.len().min(bytes.len()));
        for weight in weight_names {
            let tensor = read_dataset(&g, &weight, file_len, &mut budget).map_err(|e| e.within(&format!("layer '{layer}', weight '{weight}'")))?;
            weights.push(tensor);
        }
        layers.push(KerasLayer { name: layer, weights });
    }
    Ok(KerasH5 { layers, model_config, keras_version })
}

fn read_dataset(g: &hdf5_pure::Group, weight: &str, file_len: u64, budget: &mut u64) -> Result<RawTensor> {
    let ds = g.dataset(weight).map_err(|e| h5("cannot open the dataset", e))?;
    let dims = ds.shape().map_err(|e| h5("cannot read the shape", e))?;
    let datatype = ds.datatype().map_err(|e| h5("cannot read the datatype", e))?;
    let shape =
        dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<usize>>>().ok_or_else(|| Error::weights("the dataset's shape is too large"))?;
    let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let stored = numel.and_then(|n| n.checked_mul(u64::from(datatype.type_size())));
    let limit = if ds.filters().is_empty() { file_len } else { file_len.saturating_mul(EXPANSION_LIMIT) };
    let numel = match (numel, stored) {
        (Some(n), Some(b)) if b <= limit && n.saturating_mul(4) <= *budget => n,
        _ => return Err(Error::weights(format!("the dataset declares a shape {dims:?} too large for this {file_len}-byte file"))),
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
        Datatype::FloatingPoint { size: 4 | 8, .. } | Datatype::FixedPoint { .. } => ds.read_f32().map_err(|e| h5("cannot read the data", e))?,
        other => {
            return Err(Error::weights(format!(
                "unsupported element type ({} bytes, {}): expected float16, float32 or float64",
                other.type_size(),
                datatype_kind(other)
            )))
        }
    };
    if data.len() as u64 != numel {
        return Err(Error::weights(format!("the dataset holds {} values but its shape {dims:?} needs {numel}", data.len())));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/importers/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Element i of a fixture tensor with base b is b + 0.01 i (see make_importer_fixtures.py).
    fn assert_ramp(t: &RawTensor, shape: &[usize], base: f32) {
        assert_eq!(t.shape, shape, "{}", t.name);
        assert_eq!(t.data.len(), shape.iter().product::<usize>(), "{}", t.name);
        for (i, &v) in t.data.iter().enumerate() {
            let want = base + 0.01 * i as f32;
            assert!((v - want).abs() < 1e-4 * want.abs().max(1.0), "{}[{i}] = {v}, want {want}", t.name);
        }
    }

    fn names(layers: &[KerasLayer]) -> Vec<&str> {
        layers.iter().map(|l| l.name.as_str()).collect()
    }

    fn weight_names(layer: &KerasLayer) -> Vec<&str> {
        layer.weights.iter().map(|w| w.name.as_str()).collect()
    }

    #[test]
    fn reads_the_official_vgg16_layout() {
        let layers = read_keras_h5(&fixture("keras_vgg_style.h5")).unwrap();
        assert_eq!(names(&layers), ["input_1", "block1_conv1", "block1_pool", "flatten", "fc1"]);
        for empty in [0, 2, 3] {
            assert!(layers[empty].weights.is_empty(), "{}", layers[empty].name);
        }
        assert_eq!(weight_names(&layers[1]), ["block1_conv1_W_1:0", "block1_conv1_b_1:0"]);
        assert_ramp(&layers[1].weights[0], &[3, 3, 3, 4], 0.0);
        assert_ramp(&layers[1].weights[1], &[4], 1.0);
        assert_eq!(weight_names(&layers[4]), ["fc1_W_1:0", "fc1_b_1:0"]);
        assert_ramp(&layers[4].weights[0], &[8, 2], -1.0);
        assert_ramp(&layers[4].weights[1], &[2], 2.0);
    }

    #[test]
    fn reads_a_keras_2_2_4_model_save() {
        let layers = read_keras_h5(&fixture("keras224_model.h5")).unwrap();
        assert_eq!(names(&layers), ["conv2d_1", "batch_normalization_1", "max_pooling2d_1", "flatten_1", "dense_1"]);
        assert_eq!(weight_names(&layers[0]), ["conv2d_1/kernel:0", "conv2d_1/bias:0"]);
        assert_ramp(&layers[0].weights[0], &[3, 3, 1, 2], 0.0);
        assert_ramp(&layers[0].weights[1], &[2], 0.5);
        assert_eq!(
            weight_names(&layers[1]),
            ["batch_normalization_1/gamma:0", "batch_normalization_1/beta:0", "batch_normalization_1/moving_mean:0", "batch_normalization_1/moving_variance:0"]
        );
        assert_ramp(&layers[1].weights[3], &[2], 1.5);
        assert!(layers[2].weights.is_empty() && layers[3].weights.is_empty());
        assert_ramp(&layers[4].weights[0], &[8, 3], -0.5);
        // optimizer_weights is not a layer
        assert_eq!(layers.iter().map(|l| l.weights.len()).sum::<usize>(), 8);
    }

    #[test]
    fn reads_a_keras_3_legacy_h5() {
        let layers = read_keras_h5(&fixture("keras3_model.h5")).unwrap();
        assert_eq!(names(&layers), ["conv", "bn", "pool", "flat", "dense"]);
        assert_eq!(weight_names(&layers[0]), ["sequential/conv/kernel", "sequential/conv/bias"]);
        assert_ramp(&layers[0].weights[0], &[3, 3, 3, 4], 0.0);
        assert_ramp(&layers[0].weights[1], &[4], 0.1);
        assert_eq!(weight_names(&layers[1]), ["sequential/bn/gamma", "sequential/bn/beta", "sequential/bn/moving_mean", "sequential/bn/moving_variance"]);
        assert_ramp(&layers[1].weights[2], &[4], 0.2);
        assert!(layers[2].weights.is_empty() && layers[3].weights.is_empty());
        assert_ramp(&layers[4].weights[0], &[16, 2], 0.0);
        assert_ramp(&layers[4].weights[1], &[2], 0.1);
    }

    #[test]
    fn reads_chunked_names_vlen_and_utf8_strings_f16_f64_scalars_and_gzip() {
        let layers = read_keras_h5(&fixture("keras_variants.h5")).unwrap();
        assert_eq!(names(&layers), ["half", "double", "packed", "empty"]);
        let half = &layers[0].weights[0];
        assert_eq!((half.name.as_str(), half.shape.as_slice()), ("half/w", &[2, 3][..]));
        let want: Vec<f32> = (0..6).map(|i| half::f16::from_f32(1.0 + 0.01 * i as f32).to_f32()).collect();
        assert_eq!(half.data, want);
        assert_eq!(weight_names(&layers[1]), ["double/w", "double/s"]);
        assert_ramp(&layers[1].weights[0], &[5], -2.0);
        assert_eq!(layers[1].weights[1].shape, Vec::<usize>::new());
        assert_eq!(layers[1].weights[1].data, [3.5]);
        assert_ramp(&layers[2].weights[0], &[40, 10], 0.0);
        assert!(layers[3].weights.is_empty());
    }

    #[test]
    fn sniffs_the_signature() {
        assert!(is_hdf5(&fixture("keras_vgg_style.h5")));
        let mut user_block = vec![0u8; 512];
        user_block.extend_from_slice(SIGNATURE);
        assert!(is_hdf5(&user_block));
        assert!(!is_hdf5(b""));
        assert!(!is_hdf5(b"\x89HDF\r\n"));
        assert!(!is_hdf5(b"PK\x03\x04 not hdf5 at all"));
    }

    fn weights_error(bytes: &[u8]) -> String {
        match read_keras_h5(bytes) {
            Err(Error::Weights { message: msg, .. }) => {
                assert!(!msg.contains('\n'), "multi-line message: {msg}");
                msg
            }
            Err(other) => panic!("wrong error kind: {other}"),
            Ok(layers) => panic!("accepted bad input ({} layers)", layers.len()),
        }
    }

    #[test]
    fn refuses_non_hdf5_and_tiny_inputs() {
        assert!(weights_error(b"").contains("not an HDF5 file"));
        let fifty: Vec<u8> = (0..50u8).map(|i| i.wrapping_mul(37)).collect();
        assert!(weights_error(&fifty).contains("not an HDF5 file"));
        let mut sig_only = SIGNATURE.to_vec();
        sig_only.extend_from_slice(&[0u8; 42]);
        weights_error(&sig_only);
    }

    #[test]
    fn refuses_an_hdf5_file_without_keras_weights() {
        let mut builder = hdf5_pure::FileBuilder::new();
        builder.create_dataset("data").with_f64_data(&[1.0, 2.0]);
        let bytes = builder.finish().unwrap();
        assert!(weights_error(&bytes).contains("no Keras weights"));
    }

    #[test]
    fn refuses_huge_declared_shapes_without_allocating() {
        for name in ["keras_huge_contiguous.h5", "keras_huge_chunked.h5"] {
            let msg = weights_error(&fixture(name));
            assert!(msg.contains("too large"), "{name}: {msg}");
        }
    }

    /// Runs the unguarded reader so that a panic inside the parser fails the test (on wasm
    /// it would abort), and returns whether the input was accepted.
    fn no_panic(bytes: &[u8]) -> bool {
        let owned = bytes.to_vec();
        match std::panic::catch_unwind(move || read_layers(&owned)) {
            Ok(result) => result.is_ok(),
            Err(_) => panic!("the HDF5 reader panicked on {} bytes", bytes.len()),
        }
    }

    const FIXTURES: [&str; 4] = ["keras_vgg_style.h5", "keras224_model.h5", "keras3_model.h5", "keras_variants.h5"];

    #[test]
    fn truncated_files_are_errors_not_panics() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let mut cuts: Vec<usize> = (0..bytes.len()).step_by(61).collect();
            cuts.extend([1, 7, 8, 50, 96, 512, 2048, bytes.len() / 2, bytes.len() - 1]);
            for cut in cuts {
                let cut = cut.min(bytes.len() - 1);
                assert!(read_keras_h5(&bytes[..cut]).is_err(), "{name} cut at {cut} was accepted");
                no_panic(&bytes[..cut]);
            }
        }
    }

    #[test]
    fn corrupted_files_do_not_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in FIXTURES {
            let bytes = fixture(name);
            for _ in 0..150 {
                let mut bad = bytes.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % bad.len() as u64) as usize;
                    bad[at] ^= 1 << (next() % 8);
                }
                no_panic(&bad);
            }
            // Random bytes behind a valid signature.
            let mut random: Vec<u8> = (0..bytes.len()).map(|_| next() as u8).collect();
            random[..8].copy_from_slice(SIGNATURE);
            assert!(read_keras_h5(&random).is_err());
        }
    }
}
