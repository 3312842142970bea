//! A Keras model's own architecture (`config.json` of a `.keras`, `model_config` of an `.h5`,
//! Keras 2 and Keras 3 writers, Sequential and Functional, nested models inlined) turned into a
//! graph, its weights matched to its layers and converted to ConvLens's layouts. Keras tensors
//! are channels-last; ours are channels-first, so kernels are transposed and Flatten / Reshape /
//! Concatenate keep Keras's (H, W, C) semantics. Layers that are the identity at inference
//! (dropout, noise, augmentation) become no node at all: they name their input's value.

use std::collections::HashMap;

use burn::tensor::Device;
use serde_json::Value;

use super::ops::{Affine, BatchNorm, Conv, Dense, Merge, Padding, Window};
use super::{Act, Graph, Op};
use crate::error::{Error, Result};
use crate::formats::check_finite;
use crate::formats::keras_h5::KerasLayer;
use crate::formats::keras_zip::{KerasModel, KerasWeights};
use crate::formats::layout::{depthwise_to_oihw, hwio_to_oihw};
use crate::formats::raw::{HostTensor, RawTensor};

/// The layer classes ConvLens runs (for error messages).
pub const SUPPORTED: &str = "Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, Rescaling, Normalization, \
Flatten, Reshape, pooling, padding, cropping, merging (Add to Concatenate), activation, dropout and Random* augmentation \
layers, and nested models";

/// Layers that compute nothing at inference.
const IDENTITY_AT_INFERENCE: [&str; 17] = [
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
    "RandomHeight",
    "RandomWidth",
    "RandomCrop",
];

/// What the graph builder learns besides the graph.
pub struct KerasGraph {
    pub graph: Graph,
    /// The model's own name (`config.name`).
    pub name: String,
}

fn model_err(msg: impl Into<String>) -> Error {
    Error::Model(msg.into())
}

/// Keras's `to_snake_case`, the name a `.keras` file gives a layer's weight group.
pub fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if i > 0 && c.is_uppercase() && (next_lower || prev_lower) && !out.ends_with('_') {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Where a layer's weights are in the file.
struct WeightStore {
    by_path: HashMap<String, RawTensor>,
    by_layer: HashMap<String, Vec<RawTensor>>,
}

impl WeightStore {
    fn new(weights: KerasWeights) -> Self {
        match weights {
            KerasWeights::ByPath(tensors) => Self { by_path: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(), by_layer: HashMap::new() },
            KerasWeights::ByLayer(layers) => Self { by_path: HashMap::new(), by_layer: layers.into_iter().map(|l: KerasLayer| (l.name, l.weights)).collect() },
        }
    }

    /// The variables `vars` (each a list of accepted names, in creation order) of `layer`.
    fn take(&mut self, layer: &LayerRef, vars: &[&[&str]]) -> Result<Vec<RawTensor>> {
        let found = if self.by_layer.is_empty() { self.take_by_path(layer, vars) } else { self.take_by_layer(layer, vars) }?;
        for t in &found {
            check_finite(&format!("{}/{}", layer.name, t.name), &t.data)?;
        }
        Ok(found)
    }

    fn take_by_path(&mut self, layer: &LayerRef, vars: &[&[&str]]) -> Result<Vec<RawTensor>> {
        (0..vars.len())
            .map(|i| {
                let key = format!("{}/vars/{i}", layer.path);
                self.by_path.remove(&key).ok_or_else(|| {
                    Error::weights(format!("layer '{}' ({}) has no weight '{}' in model.weights.h5 (expected {key})", layer.name, layer.class, vars[i][0]))
                })
            })
            .collect()
    }

    fn take_by_layer(&mut self, layer: &LayerRef, vars: &[&[&str]]) -> Result<Vec<RawTensor>> {
        let group = self.by_layer.get_mut(&layer.owner).ok_or_else(|| Error::weights(format!("the file has no weights for layer '{}'", layer.owner)))?;
        let nested = layer.owner != layer.name;
        let mut out = Vec::new();
        for names in vars {
            // A weight name is a path ending in the variable (`conv2d/kernel:0`,
            // `sequential/conv2d/kernel`); in a nested model's group it names its layer too.
            let matches = |t: &RawTensor| {
                let parts: Vec<&str> = t.name.split('/').collect();
                let var = parts.last().map(|p| p.split(':').next().unwrap_or(p)).unwrap_or("");
                names.contains(&var) && (!nested || parts.contains(&layer.name.as_str()))
            };
            let at = match group.iter().position(matches) {
                Some(at) => at,
                // Names of another convention (the official VGG16's `block1_conv1_W_1:0`): in order.
                None if !nested && !group.is_empty() => 0,
                None => return Err(Error::weights(format!("layer '{}' ({}) has no weight '{}' in the file", layer.name, layer.class, names[0]))),
            };
            out.push(group.remove(at));
        }
        Ok(out)
    }
}

/// A layer being built: its name, class, and where its weights are.
struct LayerRef {
    name: String,
    class: String,
    /// `.keras` weight group, e.g. `layers/sequential/layers/conv2d_1`.
    path: String,
    /// `.h5` weight group: the top-level layer that holds this one's weights.
    owner: String,
}

struct Builder<'a> {
    graph: Graph,
    store: WeightStore,
    device: &'a Device,
}

/// Builds the graph of a Keras model. `default_hw`: the input size when the model leaves it open.
pub fn build(model: KerasModel, default_hw: [usize; 2], device: &Device) -> Result<KerasGraph> {
    let (class, config) = split(&model.config)?;
    let name = config.get("name").and_then(Value::as_str).unwrap_or("model").to_string();
    let [c, h, w] = input_shape(&class, &config, default_hw)?;
    let mut b = Builder { graph: Graph::new("input", [3, h, w]), store: WeightStore::new(model.weights), device };
    let input = super::photo_input(&mut b.graph, c, device)?;
    let out = b.model(&class, &config, input, "", None)?;
    b.graph.set_output(out, super::Head::Softmax);
    b.graph.detach_head();
    Ok(KerasGraph { graph: b.graph, name })
}

/// `{"class_name", "config"}` of a serialized model.
fn split(v: &Value) -> Result<(String, Value)> {
    let class = v.get("class_name").and_then(Value::as_str).ok_or_else(|| model_err("the architecture has no class_name: is this a Keras model file?"))?;
    Ok((class.to_string(), v.get("config").cloned().unwrap_or(Value::Null)))
}

fn is_model(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

/// The layers list of a model config (Keras 2's oldest Sequential config is the list itself).
fn layers_of(config: &Value) -> Result<Vec<Value>> {
    config.as_array().or_else(|| config.get("layers").and_then(Value::as_array)).cloned().ok_or_else(|| model_err("the model config lists no layers"))
}

/// [C, H, W] of the model's input, from an InputLayer or the first layer's batch shape.
fn input_shape(class: &str, config: &Value, default_hw: [usize; 2]) -> Result<[usize; 3]> {
    let batch_shape = |c: &Value| c.get("batch_shape").or_else(|| c.get("batch_input_shape")).and_then(Value::as_array).cloned();
    let mut shape = batch_shape(config).or_else(|| config.get("build_input_shape").and_then(Value::as_array).cloned());
    if shape.is_none() {
        for layer in layers_of(config)? {
            let (lclass, lconfig) = split(&layer)?;
            if let Some(s) = batch_shape(&lconfig) {
                shape = Some(s);
                break;
            }
            if is_model(&lclass) {
                return input_shape(&lclass, &lconfig, default_hw);
            }
            if class != "Sequential" {
                continue;
            }
            break;
        }
    }
    let shape = shape.ok_or_else(|| model_err("the model does not declare its input shape (build it with an Input layer or input_shape)"))?;
    match shape[..] {
        [_, ref h, ref w, ref c] => {
            let dim = |v: &Value, default: usize| v.as_u64().map_or(Ok(default), |d| usize::try_from(d).map_err(|_| model_err("an input size too large")));
            let (h, w, c) = (dim(h, default_hw[0])?, dim(w, default_hw[1])?, dim(c, 0)?);
            if !(1..=4096).contains(&h) || !(1..=4096).contains(&w) {
                return Err(model_err(format!("an input of {h}×{w} pixels is outside 1–4096")));
            }
            Ok([c, h, w])
        }
        _ => Err(model_err(format!("the model's input has shape {shape:?}; ConvLens runs image models (batch, height, width, channels)"))),
    }
}

/// (layer name, node index, tensor index) references in an inbound node, Keras 2 or 3.
fn references(node: &Value, out: &mut Vec<(String, usize, usize)>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(h)) = map.get("keras_history") {
                if let (Some(name), Some(n), Some(t)) = (h.first().and_then(Value::as_str), h.get(1).and_then(Value::as_u64), h.get(2).and_then(Value::as_u64))
                {
                    out.push((name.to_string(), n as usize, t as usize));
                }
                return;
            }
            // Keras 3: {"args": [...], "kwargs": {...}}; tensors in kwargs (e.g. `mask`) are not inputs.
            if let Some(args) = map.get("args") {
                references(args, out);
            } else {
                map.values().for_each(|v| references(v, out));
            }
        }
        Value::Array(items) => {
            // Keras 2: [name, node_index, tensor_index, kwargs].
            if let [Value::String(name), n, t, ..] = &items[..] {
                if let (Some(n), Some(t)) = (n.as_u64(), t.as_u64()) {
                    out.push((name.clone(), n as usize, t as usize));
                    return;
                }
            }
            items.iter().for_each(|v| references(v, out));
        }
        _ => {}
    }
}

/// The (layer, node, tensor) triples of a model's `input_layers` / `output_layers`.
fn endpoints(v: Option<&Value>) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    if let Some(v) = v {
        references(v, &mut out);
    }
    out
}

impl Builder<'_> {
    /// Inlines a (possibly nested) model fed by node `input`; returns its output node. `path` is
    /// its `.keras` weight path ("" at the top), `owner` its `.h5` weight group when nested.
    fn model(&mut self, class: &str, config: &Value, input: usize, path: &str, owner: Option<&str>) -> Result<usize> {
        let layers = layers_of(config)?;
        let prefix = if path.is_empty() { "layers".to_string() } else { format!("{path}/layers") };
        // `.keras` numbers each class's weight groups per container, in the order of the layers.
        let mut used: HashMap<String, usize> = HashMap::new();
        let mut refs = Vec::with_capacity(layers.len());
        for layer in &layers {
            let (lclass, lconfig) = split(layer)?;
            let snake = snake_case(&lclass);
            let n = used.entry(snake.clone()).or_insert(0);
            let group = if *n == 0 { snake.clone() } else { format!("{snake}_{n}") };
            *n += 1;
            let name = layer.get("name").and_then(Value::as_str).or_else(|| lconfig.get("name").and_then(Value::as_str)).unwrap_or(&group).to_string();
            let owner = owner.map_or(name.clone(), str::to_string);
            refs.push((LayerRef { name, class: lclass, path: format!("{prefix}/{group}"), owner }, lconfig, layer));
        }
        if class == "Sequential" {
            let mut x = input;
            for (layer, lconfig, _) in refs {
                if layer.class == "InputLayer" {
                    continue;
                }
                x = self.layer(&layer, &lconfig, &[x])?;
            }
            return Ok(x);
        }
        // Functional: resolve each layer once its inputs exist (the config is usually in order).
        let inputs_of_model = endpoints(config.get("input_layers"));
        let mut produced: HashMap<(String, usize), usize> = HashMap::new();
        for (name, n, _) in &inputs_of_model {
            produced.insert((name.clone(), *n), input);
        }
        if inputs_of_model.len() > 1 {
            return Err(model_err("the model has several inputs; ConvLens feeds one photo"));
        }
        let mut pending: Vec<usize> = (0..refs.len()).collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for i in pending {
                let (layer, lconfig, raw) = &refs[i];
                if layer.class == "InputLayer" {
                    continue;
                }
                let calls = raw.get("inbound_nodes").and_then(Value::as_array).cloned().unwrap_or_default();
                let mut ready = true;
                let mut per_call = Vec::new();
                for call in &calls {
                    let mut r = Vec::new();
                    references(call, &mut r);
                    match r.iter().map(|(l, n, _)| produced.get(&(l.clone(), *n)).copied()).collect::<Option<Vec<usize>>>() {
                        Some(nodes) => per_call.push(nodes),
                        None => ready = false,
                    }
                    if r.iter().any(|(_, _, t)| *t != 0) {
                        return Err(model_err(format!("layer '{}' reads the second output of a layer; ConvLens handles one output per layer", layer.name)));
                    }
                }
                if !ready {
                    waiting.push(i);
                    continue;
                }
                for (k, nodes) in per_call.iter().enumerate() {
                    let name = if k == 0 { layer.name.clone() } else { format!("{}:{k}", layer.name) };
                    let call = LayerRef { name, class: layer.class.clone(), path: layer.path.clone(), owner: layer.owner.clone() };
                    let node = self.layer(&call, lconfig, nodes)?;
                    produced.insert((layer.name.clone(), k), node);
                }
            }
            if waiting.len() == before {
                let names: Vec<&str> = waiting.iter().map(|&i| refs[i].0.name.as_str()).collect();
                return Err(model_err(format!("the layers {} read layers the model never computes", names.join(", "))));
            }
            pending = waiting;
        }
        let outputs = endpoints(config.get("output_layers"));
        let (name, n, _) = outputs.first().ok_or_else(|| model_err("the model declares no output"))?;
        produced.get(&(name.clone(), *n)).copied().ok_or_else(|| model_err(format!("the model's output '{name}' is never computed")))
    }

    /// Adds one layer reading `inputs`; returns the node that holds its output.
    fn layer(&mut self, layer: &LayerRef, c: &Value, inputs: &[usize]) -> Result<usize> {
        let class = layer.class.as_str();
        if is_model(class) {
            let [input] = inputs[..] else { return Err(model_err(format!("nested model '{}' takes several inputs", layer.name))) };
            let owner = if self.store.by_layer.contains_key(&layer.owner) { Some(layer.owner.as_str()) } else { None };
            return self.model(class, c, input, &layer.path, owner);
        }
        if IDENTITY_AT_INFERENCE.contains(&class) {
            return inputs.first().copied().ok_or_else(|| model_err(format!("layer '{}' has no input", layer.name)));
        }
        if c.get("data_format").and_then(Value::as_str) == Some("channels_first") {
            return Err(model_err(format!("layer '{}' is channels_first; ConvLens reads channels_last Keras models", layer.name)));
        }
        let op = self.op(layer, c, inputs)?;
        let name = match self.graph.find(&layer.name) {
            Some(_) => format!("{}/{}", layer.owner, layer.name),
            None => layer.name.clone(),
        };
        self.graph.add(name, op, inputs)
    }

    fn op(&mut self, layer: &LayerRef, c: &Value, inputs: &[usize]) -> Result<Op> {
        let device = self.device;
        let channels = inputs.first().map_or(0, |&i| self.graph.nodes()[i].shape[0]);
        let act = || activation(c.get("activation"), &layer.name);
        Ok(match layer.class.as_str() {
            "Conv2D" => {
                let bias = flag(c, "use_bias", true);
                let vars: &[&[&str]] = if bias { &[&["kernel"], &["bias"]] } else { &[&["kernel"]] };
                let mut w = self.store.take(layer, vars)?.into_iter();
                let raw = w.next().unwrap_or_else(|| RawTensor::new("kernel", vec![], vec![]));
                let [kh, kw] = pair(c, "kernel_size", 1)?;
                let groups = usize_of(c, "groups", 1)?;
                expect_shape(layer, &raw, &[kh, kw, channels / groups.max(1), usize_of(c, "filters", 0)?])?;
                Op::Conv { conv: windowed_conv(c, layer, hwio_to_oihw(&raw)?, w.next(), groups, device)?, act: act()? }
            }
            "DepthwiseConv2D" => {
                let bias = flag(c, "use_bias", true);
                let vars: &[&[&str]] = if bias { &[&["kernel", "depthwise_kernel"], &["bias"]] } else { &[&["kernel", "depthwise_kernel"]] };
                let mut w = self.store.take(layer, vars)?.into_iter();
                let raw = w.next().unwrap_or_else(|| RawTensor::new("kernel", vec![], vec![]));
                let [kh, kw] = pair(c, "kernel_size", 1)?;
                expect_shape(layer, &raw, &[kh, kw, channels, usize_of(c, "depth_multiplier", 1)?])?;
                Op::Conv { conv: windowed_conv(c, layer, depthwise_to_oihw(&raw)?, w.next(), channels, device)?, act: act()? }
            }
            "SeparableConv2D" => {
                let bias = flag(c, "use_bias", true);
                let vars: &[&[&str]] =
                    if bias { &[&["depthwise_kernel"], &["pointwise_kernel"], &["bias"]] } else { &[&["depthwise_kernel"], &["pointwise_kernel"]] };
                let mut w = self.store.take(layer, vars)?.into_iter();
                let mut next = || w.next().unwrap_or_else(|| RawTensor::new("kernel", vec![], vec![]));
                let (depth, point) = (next(), next());
                let [kh, kw] = pair(c, "kernel_size", 1)?;
                let mult = usize_of(c, "depth_multiplier", 1)?;
                expect_shape(layer, &depth, &[kh, kw, channels, mult])?;
                expect_shape(layer, &point, &[1, 1, channels * mult, usize_of(c, "filters", 0)?])?;
                let (depth, point) = (depthwise_to_oihw(&depth)?, hwio_to_oihw(&point)?);
                let bias = if bias { Some(next()).map(|b| (b.shape, b.data)) } else { None };
                let depthwise = windowed_conv(c, layer, depth, None, channels, device)?;
                let pointwise = Conv::new(point, bias, [1, 1], [1, 1], 1, Padding::Valid, device)?;
                Op::Separable { depthwise, pointwise, act: act()? }
            }
            "Dense" => {
                let bias = flag(c, "use_bias", true);
                let vars: &[&[&str]] = if bias { &[&["kernel"], &["bias"]] } else { &[&["kernel"]] };
                let mut w = self.store.take(layer, vars)?.into_iter();
                let k = w.next().unwrap_or_else(|| RawTensor::new("kernel", vec![], vec![]));
                expect_shape(layer, &k, &[channels, usize_of(c, "units", 0)?])?;
                Op::Dense { dense: Dense::new((k.shape, k.data), w.next().map(|b| (b.shape, b.data)), device)?, act: act()? }
            }
            "BatchNormalization" => {
                check_channel_axis(c, &layer.name)?;
                let (scale, center) = (flag(c, "scale", true), flag(c, "center", true));
                let mut vars: Vec<&[&str]> = Vec::new();
                if scale {
                    vars.push(&["gamma"]);
                }
                if center {
                    vars.push(&["beta"]);
                }
                vars.extend([&["moving_mean"][..], &["moving_variance"][..]]);
                let mut w = self.store.take(layer, &vars)?.into_iter().map(|t| t.data);
                let gamma = if scale { w.next() } else { None };
                let beta = if center { w.next() } else { None };
                let (mean, var) = (w.next().unwrap_or_default(), w.next().unwrap_or_default());
                let norm = BatchNorm::new(gamma, beta, mean, var, float_of(c, "epsilon", 1e-3) as f32)?;
                Op::Affine(Affine::new(norm.scale, norm.shift, device)?)
            }
            "Rescaling" => Op::Affine(Affine::new(floats(c.get("scale"), 1.0), floats(c.get("offset"), 0.0), device)?),
            "Normalization" => {
                check_channel_axis(c, &layer.name)?;
                let (mean, var) = match (c.get("mean").filter(|v| !v.is_null()), c.get("variance").filter(|v| !v.is_null())) {
                    (Some(m), Some(v)) => (floats(Some(m), 0.0), floats(Some(v), 1.0)),
                    _ => {
                        let w = self.store.take(layer, &[&["mean"], &["variance"]])?;
                        (w[0].data.clone(), w[1].data.clone())
                    }
                };
                if mean.len() != var.len() {
                    return Err(Error::weights(format!("layer '{}': {} means and {} variances", layer.name, mean.len(), var.len())));
                }
                let std: Vec<f32> = var.iter().map(|v| v.max(0.0).sqrt().max(1e-7)).collect();
                if flag(c, "invert", false) {
                    Op::Affine(Affine::new(std, mean, device)?)
                } else {
                    let scale: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
                    let shift = mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
                    Op::Affine(Affine::new(scale, shift, device)?)
                }
            }
            "Activation" => Op::Activation(act()?),
            "ReLU" => {
                let max = c.get("max_value").and_then(Value::as_f64).map(|m| m as f32);
                let (slope, threshold) = (float_of(c, "negative_slope", 0.0) as f32, float_of(c, "threshold", 0.0) as f32);
                Op::Activation(if max.is_none() && slope == 0.0 && threshold == 0.0 { Act::Relu } else { Act::ReluWith { max, slope, threshold } })
            }
            "LeakyReLU" => Op::Activation(Act::LeakyRelu(c.get("negative_slope").or_else(|| c.get("alpha")).and_then(Value::as_f64).unwrap_or(0.3) as f32)),
            "ELU" => Op::Activation(Act::Elu(float_of(c, "alpha", 1.0) as f32)),
            "Softmax" => {
                let axis = c.get("axis").and_then(Value::as_i64).unwrap_or(-1);
                if axis != -1 && axis != 3 {
                    return Err(model_err(format!("layer '{}' is a softmax over axis {axis}; ConvLens handles the channel axis", layer.name)));
                }
                Op::Activation(Act::Softmax)
            }
            "MaxPooling2D" | "AveragePooling2D" => {
                let size = pair(c, "pool_size", 2)?;
                let stride = if c.get("strides").is_some_and(|s| !s.is_null()) { pair(c, "strides", 1)? } else { size };
                let window = Window { size, stride, padding: padding(c, &layer.name)?, count_padding: false };
                if layer.class == "MaxPooling2D" {
                    Op::MaxPool(window)
                } else {
                    Op::AvgPool(window)
                }
            }
            "GlobalAveragePooling2D" => Op::GlobalAvgPool,
            "GlobalMaxPooling2D" => Op::GlobalMaxPool,
            "ZeroPadding2D" => Op::Pad(sides(c.get("padding"), &layer.name)?),
            "Cropping2D" => Op::Crop(sides(c.get("cropping"), &layer.name)?),
            "Flatten" => Op::Flatten { channels_last: true },
            "Reshape" => {
                let target = c.get("target_shape").and_then(Value::as_array).ok_or_else(|| model_err(format!("layer '{}' has no target_shape", layer.name)))?;
                let total = inputs.first().map_or(0, |&i| self.graph.nodes()[i].shape.iter().product::<usize>());
                let known: usize = target.iter().filter_map(Value::as_u64).map(|d| d as usize).product();
                let dims = target.iter().map(|d| d.as_u64().map(|d| d as usize).or_else(|| (known > 0).then(|| total / known)).unwrap_or(0)).collect();
                Op::Reshape(dims)
            }
            "Add" => Op::Merge(Merge::Add),
            "Subtract" => Op::Merge(Merge::Subtract),
            "Multiply" => Op::Merge(Merge::Multiply),
            "Average" => Op::Merge(Merge::Average),
            "Maximum" => Op::Merge(Merge::Maximum),
            "Minimum" => Op::Merge(Merge::Minimum),
            "Concatenate" => {
                let axis = c.get("axis").and_then(Value::as_i64).unwrap_or(-1);
                let vectors = inputs.iter().all(|&i| self.graph.nodes()[i].shape[1] * self.graph.nodes()[i].shape[2] == 1);
                if !(axis == -1 || axis == 3 || (vectors && axis == 1)) {
                    return Err(model_err(format!("layer '{}' concatenates along axis {axis}; ConvLens handles the channel axis", layer.name)));
                }
                Op::Concat
            }
            other => {
                return Err(model_err(format!("layer '{}' is a {other}, which ConvLens cannot run; supported layers: {SUPPORTED}", layer.name)));
            }
        })
    }
}

/// A conv with the layer's strides, dilation and padding (the sliding-window part of Conv2D,
/// DepthwiseConv2D and SeparableConv2D).
fn windowed_conv(c: &Value, layer: &LayerRef, kernel: HostTensor, bias: Option<RawTensor>, groups: usize, device: &Device) -> Result<Conv> {
    let bias = bias.map(|b| (b.shape, b.data));
    Conv::new(kernel, bias, pair(c, "strides", 1)?, pair(c, "dilation_rate", 1)?, groups, padding(c, &layer.name)?, device)
}

/// The stored weight must have the shape the layer's config and input imply, so a file whose
/// config and weights disagree is refused instead of running as another network.
fn expect_shape(layer: &LayerRef, t: &RawTensor, expected: &[usize]) -> Result<()> {
    if t.shape != expected {
        return Err(Error::weights(format!(
            "layer '{}' ({}) stores a weight of shape {:?}, but its config and input need {expected:?}",
            layer.name, layer.class, t.shape
        )));
    }
    Ok(())
}

fn flag(c: &Value, key: &str, default: bool) -> bool {
    c.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn float_of(c: &Value, key: &str, default: f64) -> f64 {
    c.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn usize_of(c: &Value, key: &str, default: usize) -> Result<usize> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|&n| n <= 1 << 16).map(|n| n as usize).ok_or_else(|| model_err(format!("'{key}' is {v}, not a size"))),
    }
}

/// A number or a list of numbers (Rescaling's scale, Normalization's mean).
fn floats(v: Option<&Value>, default: f32) -> Vec<f32> {
    match v {
        Some(Value::Array(items)) => items.iter().map(|x| x.as_f64().unwrap_or(default as f64) as f32).collect(),
        Some(x) => vec![x.as_f64().unwrap_or(default as f64) as f32],
        None => vec![default],
    }
}

/// An int or a pair (kernel sizes, strides, dilations), as [h, w].
fn pair(c: &Value, key: &str, default: usize) -> Result<[usize; 2]> {
    let one = |v: &Value| {
        v.as_u64().filter(|&n| (1..=4096).contains(&n)).map(|n| n as usize).ok_or_else(|| model_err(format!("'{key}' is {v}, not a size from 1 to 4096")))
    };
    match c.get(key) {
        None | Some(Value::Null) => Ok([default; 2]),
        Some(Value::Array(v)) if v.len() == 2 => Ok([one(&v[0])?, one(&v[1])?]),
        Some(v @ Value::Number(_)) => Ok([one(v)?; 2]),
        Some(v) => Err(model_err(format!("'{key}' is {v}, not a 2-D size"))),
    }
}

fn padding(c: &Value, layer: &str) -> Result<Padding> {
    match c.get("padding").and_then(Value::as_str).unwrap_or("valid") {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::TfSame),
        other => Err(model_err(format!("layer '{layer}' has padding '{other}'; ConvLens handles valid and same"))),
    }
}

/// ZeroPadding2D / Cropping2D amounts: n, (h, w) or ((top, bottom), (left, right)).
fn sides(v: Option<&Value>, layer: &str) -> Result<[(usize, usize); 2]> {
    let n = |v: &Value| v.as_u64().filter(|&n| n <= 4096).map(|n| n as usize).ok_or_else(|| model_err(format!("layer '{layer}': {v} is not a pixel count")));
    let side = |v: &Value| -> Result<(usize, usize)> {
        match v {
            Value::Array(p) if p.len() == 2 => Ok((n(&p[0])?, n(&p[1])?)),
            other => n(other).map(|k| (k, k)),
        }
    };
    match v {
        Some(Value::Array(p)) if p.len() == 2 => Ok([side(&p[0])?, side(&p[1])?]),
        Some(v @ Value::Number(_)) => {
            let k = n(v)?;
            Ok([(k, k), (k, k)])
        }
        _ => Ok([(1, 1), (1, 1)]),
    }
}

fn check_channel_axis(c: &Value, layer: &str) -> Result<()> {
    let axis = match c.get("axis") {
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_i64(),
        Some(v) => v.as_i64(),
        None => Some(-1),
    };
    match axis {
        Some(-1) | Some(3) => Ok(()),
        other => Err(model_err(format!("layer '{layer}' normalizes along axis {other:?}; ConvLens handles the channel axis"))),
    }
}

/// A Keras activation: a name, or Keras 3's serialized `{"class_name": "function", "config": name}`.
fn activation(v: Option<&Value>, layer: &str) -> Result<Act> {
    let name = match v {
        None | Some(Value::Null) => "linear",
        Some(Value::String(s)) => s.as_str(),
        Some(obj) => obj.get("config").and_then(Value::as_str).or_else(|| obj.get("registered_name").and_then(Value::as_str)).unwrap_or("?"),
    };
    let name = name.rsplit('>').next().unwrap_or(name);
    Ok(match name {
        "linear" | "identity" => Act::Linear,
        "relu" => Act::Relu,
        "relu6" => Act::Relu6,
        "leaky_relu" => Act::LeakyRelu(0.2),
        "sigmoid" => Act::Sigmoid,
        "hard_sigmoid" => Act::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 },
        "hard_swish" | "hard_silu" => Act::HardSwish,
        "softmax" => Act::Softmax,
        "tanh" => Act::Tanh,
        "swish" | "silu" => Act::Swish,
        "gelu" => Act::Gelu,
        "elu" => Act::Elu(1.0),
        "selu" => Act::Selu,
        "softplus" => Act::Softplus,
        other => {
            return Err(model_err(format!(
                "layer '{layer}' uses the activation '{other}', which ConvLens cannot run; supported: linear, relu, relu6, leaky_relu, sigmoid, hard_sigmoid, hard_swish, softmax, tanh, swish, gelu, elu, selu, softplus"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        for (class, snake) in [
            ("Conv2D", "conv2d"),
            ("BatchNormalization", "batch_normalization"),
            ("SeparableConv2D", "separable_conv2d"),
            ("DepthwiseConv2D", "depthwise_conv2d"),
            ("ReLU", "re_lu"),
            ("LeakyReLU", "leaky_re_lu"),
            ("ELU", "elu"),
            ("Sequential", "sequential"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("ZeroPadding2D", "zero_padding2d"),
            ("InputLayer", "input_layer"),
        ] {
            assert_eq!(snake_case(class), snake, "{class}");
        }
    }

    #[test]
    fn references_read_keras_2_and_3_inbound_nodes() {
        let k3 = serde_json::json!({"args": [[{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}, {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 1, 0]}}]], "kwargs": {}});
        let mut r = Vec::new();
        references(&k3, &mut r);
        assert_eq!(r, vec![("a".to_string(), 0, 0), ("b".to_string(), 1, 0)]);
        let k2 = serde_json::json!([["conv2d_1", 0, 0, {}], ["input_1", 0, 0, {}]]);
        let mut r = Vec::new();
        references(&k2, &mut r);
        assert_eq!(r, vec![("conv2d_1".to_string(), 0, 0), ("input_1".to_string(), 0, 0)]);
    }

    #[test]
    fn unknown_activation_is_a_clear_error() {
        let err = activation(Some(&serde_json::json!("exponential")), "d").unwrap_err().to_string();
        assert!(err.contains("'exponential'") && err.contains("layer 'd'"), "{err}");
        assert_eq!(activation(Some(&serde_json::json!({"class_name": "function", "config": "gelu"})), "d").unwrap(), Act::Gelu);
    }
}
