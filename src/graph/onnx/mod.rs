//! An ONNX graph read into ConvLens's graph, so Grad-CAM and the filter ascent get gradients
//! through it (ONNX runtimes keep none). Each ONNX node becomes one graph node named after it
//! (its node name, else its first output's name), or an alias (Identity, Dropout, a flatten of a
//! 1×1 map), or a constant folded on the host (`fold`). Values keep the ONNX rank they have: 4
//! for maps, 2 for vectors after a flatten; a channels-last tensor (tf2onnx's input, a transpose
//! before a Keras-style flatten) is tracked as such and turned back where it is read.

mod fold;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};

use super::ops::{Act, Affine, BatchNorm, Conv, ConvTranspose, Dense, Merge, Padding, Window};
use super::{photo_input, Graph, Head, Op};
use crate::error::{Error, Result};
use crate::formats::check_finite;
use crate::formats::onnx::{Array, AttributeProto, NodeProto, OnnxModel};
use fold::Nd;

/// The ONNX ops ConvLens runs, in brief for error messages (the README lists them all).
pub const SUPPORTED: &str = "Conv, ConvTranspose, BatchNormalization, LayerNormalization, the usual activations, element-wise arithmetic, pooling, \
Gemm/MatMul, Flatten/Reshape, Concat, Split and Pad (the README lists them)";

/// A model read from an ONNX file.
pub struct OnnxGraph {
    pub graph: Graph,
    /// The graph's name, or what made the file.
    pub name: String,
}

fn model_err(msg: impl Into<String>) -> Error {
    Error::Model(msg.into())
}

/// An ONNX value during the import.
#[derive(Debug, Clone)]
enum Value {
    /// A graph node's output, of ONNX rank 4 (a map) or 2 (a vector [N, F]); `nhwc`: the ONNX
    /// tensor is this map in channels-last order.
    Node {
        index: usize,
        rank: usize,
        nhwc: bool,
    },
    /// A map's channels viewed as [1, groups, C / groups, H, W] (rank 5), `swapped` after a
    /// transpose of those two axes: ShuffleNet's channel shuffle, on its way back to a map.
    Grouped {
        index: usize,
        groups: usize,
        swapped: bool,
    },
    Const(Array),
}

/// A node's output from one input node: which, its ONNX rank and layout.
#[derive(Debug, Clone, Copy)]
struct In {
    index: usize,
    rank: usize,
    nhwc: bool,
}

/// (A graph is built once, so the large op stays unboxed, as in `Op` itself.)
#[allow(clippy::large_enum_variant)]
enum Made {
    /// A new graph node, of this ONNX rank and layout.
    Op(Op, Vec<usize>, usize, bool),
    /// An existing value under a new name.
    Alias(Value),
}

struct Builder<'a> {
    graph: Graph,
    values: HashMap<String, Value>,
    opset: i64,
    device: &'a Device,
}

/// Builds the graph of an ONNX model. `default_hw`: the input size when the graph leaves it open.
pub fn build(model: OnnxModel, default_hw: [usize; 2], device: &Device) -> Result<OnnxGraph> {
    let OnnxModel { name: graph_name, nodes, inputs, outputs, opset, producer, initializers } = model;
    let input = inputs.iter().find(|i| !initializers.contains_key(&i.name)).ok_or_else(|| model_err("the ONNX graph has no input"))?;
    let dims: Vec<Option<usize>> =
        input.dims.as_ref().map(|d| d.iter().map(|v| v.and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0)).collect()).unwrap_or_default();
    if dims.len() != 4 {
        return Err(model_err(format!("the graph's input '{}' has rank {}; ConvLens reads image models with an [N, C, H, W] input", input.name, dims.len())));
    }
    let photo = |d: Option<usize>| matches!(d, Some(1) | Some(3));
    // NCHW (PyTorch), or NHWC (tf2onnx) when only the last dimension looks like colour channels.
    let nhwc = !photo(dims[1]) && photo(dims[3]);
    let (c, h, w) = if nhwc { (dims[3], dims[1], dims[2]) } else { (dims[1], dims[2], dims[3]) };
    let c = c.ok_or_else(|| model_err(format!("the graph's input '{}' leaves its channel count open", input.name)))?;
    let (h, w) = (h.unwrap_or(default_hw[0]), w.unwrap_or(default_hw[1]));
    let mut graph = Graph::new(&input.name, [3, h, w]);
    let first = photo_input(&mut graph, c, device)?;
    let mut values: HashMap<String, Value> = initializers.into_iter().map(|(k, v)| (k, Value::Const(v))).collect();
    values.insert(input.name.clone(), Value::Node { index: first, rank: 4, nhwc });
    let mut b = Builder { graph, values, opset, device };
    for node in &nodes {
        let name = node_name(node);
        let value = b.node(node, &name).map_err(|e| match e {
            Error::Model(m) | Error::Weights { message: m, .. } | Error::Invalid(m) => model_err(format!("node '{name}' ({}): {m}", node.op_type)),
            other => other,
        })?;
        for (out, value) in node.output.iter().zip(value) {
            b.values.insert(out.clone(), value);
        }
    }
    let out_name = &outputs.first().ok_or_else(|| model_err("the ONNX graph has no output"))?.name;
    match b.values.get(out_name) {
        Some(Value::Node { index, .. }) => b.graph.set_output(*index, Head::Softmax),
        _ => return Err(model_err(format!("the graph's output '{out_name}' is a constant, not computed from the image"))),
    }
    b.graph.detach_head();
    let generic = ["", "main_graph", "torch_jit", "torch-jit-export", "tf2onnx"];
    let name = if generic.contains(&graph_name.as_str()) { format!("ONNX model ({producer})") } else { graph_name };
    Ok(OnnxGraph { graph: b.graph, name })
}

impl Builder<'_> {
    fn value(&self, node: &NodeProto, i: usize) -> Result<&Value> {
        let name = node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| model_err(format!("input {i} is missing")))?;
        self.values.get(name).ok_or_else(|| model_err(format!("reads '{name}', which no earlier node makes (an op output ConvLens does not compute)")))
    }

    fn has(&self, node: &NodeProto, i: usize) -> bool {
        node.input.get(i).is_some_and(|n| !n.is_empty())
    }

    /// Input `i`, which must come from the image.
    fn input(&self, node: &NodeProto, i: usize) -> Result<In> {
        match self.value(node, i)? {
            Value::Node { index, rank, nhwc } => Ok(In { index: *index, rank: *rank, nhwc: *nhwc }),
            Value::Grouped { .. } => Err(model_err("reads a map's channels in groups (rank 5); ConvLens handles only a channel shuffle")),
            Value::Const(_) => Err(model_err(format!("input {i} is a constant where ConvLens expects a value computed from the image"))),
        }
    }

    /// Split along the channels: one node per part.
    fn split(&mut self, node: &NodeProto) -> Result<Vec<Value>> {
        let x = self.input(node, 0)?;
        let channels = if x.nhwc { 3 } else { 1 };
        if fold::axis(attr_i(node, "axis", 0), x.rank)? != channels {
            return Err(model_err("a split along another axis than the channels"));
        }
        let c = self.graph.nodes()[x.index].shape[0];
        let parts = node.output.len().max(1);
        let sizes: Vec<usize> = match self.optional_constant(node, 1)? {
            Some(a) => a.ints().iter().map(|&v| v.max(0) as usize).collect(),
            None if !attr_ints(node, "split").is_empty() => attr_ints(node, "split").iter().map(|&v| v.max(0) as usize).collect(),
            None => {
                let each = c.div_ceil(parts);
                (0..parts).map(|i| each.min(c.saturating_sub(i * each))).collect()
            }
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != c {
            return Err(model_err(format!("a split of {c} channels into {sizes:?}")));
        }
        let mut start = 0;
        let mut values = Vec::new();
        for (out, len) in node.output.iter().zip(sizes) {
            let index = self.graph.add(out.clone(), Op::Channels { start, len }, &[x.index])?;
            values.push(Value::Node { index, rank: x.rank, nhwc: x.nhwc });
            start += len;
        }
        Ok(values)
    }

    /// Input `i`, which must be a constant (a weight, or shape arithmetic that folds).
    fn constant(&self, node: &NodeProto, i: usize) -> Result<&Array> {
        match self.value(node, i)? {
            Value::Const(a) => Ok(a),
            Value::Node { .. } | Value::Grouped { .. } => Err(model_err(format!("input {i} is computed from the image; ConvLens needs it to be a constant"))),
        }
    }

    fn optional_constant(&self, node: &NodeProto, i: usize) -> Result<Option<&Array>> {
        if self.has(node, i) {
            self.constant(node, i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The input's map [C, H, W], for an op that needs a channels-first map.
    fn map(&self, x: In) -> Result<[usize; 3]> {
        if x.rank != 4 || x.nhwc {
            return Err(model_err("expects an [N, C, H, W] map"));
        }
        Ok(self.graph.nodes()[x.index].shape)
    }

    /// The ONNX shape of a node value (batch 1).
    fn onnx_shape(&self, x: In) -> Vec<usize> {
        let [c, h, w] = self.graph.nodes()[x.index].shape;
        match (x.rank, x.nhwc) {
            (4, false) => vec![1, c, h, w],
            (4, true) => vec![1, h, w, c],
            _ => vec![1, c],
        }
    }

    /// A constant broadcast against a node value, as the [1, C, H, W] tensor the op multiplies by.
    fn broadcast_constant(&self, a: &Array, x: In) -> Result<Tensor<4>> {
        let values = a.floats();
        check_finite("a constant", &values)?;
        let shape = a.shape();
        if shape.len() > x.rank {
            return Err(model_err(format!("a constant of shape {shape:?} meets a value of rank {}", x.rank)));
        }
        let mut full = vec![1; x.rank - shape.len()];
        full.extend_from_slice(shape);
        if full[0] != 1 {
            return Err(model_err(format!("a constant of shape {shape:?} spans the batch")));
        }
        let nd = Nd { shape: full.clone(), data: values.iter().map(|&v| v as f64).collect(), int: false };
        let (dims, nd) = match (x.rank, x.nhwc) {
            (4, false) => ([1, full[1], full[2], full[3]], nd),
            (4, true) => ([1, full[3], full[1], full[2]], nd.transpose(&[0, 3, 1, 2])?),
            _ => ([1, full[1], 1, 1], nd),
        };
        let values: Vec<f32> = nd.data.iter().map(|&v| v as f32).collect();
        Ok(Tensor::from_data(TensorData::new(values, dims), self.device))
    }

    /// A node's outputs (one, or a Split's several).
    fn node(&mut self, node: &NodeProto, name: &str) -> Result<Vec<Value>> {
        if node.op_type == "Split" && matches!(self.value(node, 0)?, Value::Node { .. }) {
            return self.split(node);
        }
        self.single(node, name).map(|v| vec![v])
    }

    fn single(&mut self, node: &NodeProto, name: &str) -> Result<Value> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(model_err(format!("an op of domain '{}'; ConvLens runs standard ONNX ops: {SUPPORTED}", node.domain)));
        }
        // Nodes whose inputs are all constants fold, whatever they are.
        let all_const = !node.input.is_empty() && (0..node.input.len()).all(|i| !self.has(node, i) || matches!(self.value(node, i), Ok(Value::Const(_))));
        if node.op_type == "Constant" || (all_const && node.op_type != "Shape") {
            return Ok(Value::Const(self.fold(node)?.into_array()));
        }
        if node.op_type == "Shape" {
            return Ok(Value::Const(self.shape_of(node)?.into_array()));
        }
        match self.make(node)? {
            Made::Alias(v) => Ok(v),
            Made::Op(op, inputs, rank, nhwc) => {
                let name = if self.graph.find(name).is_some() { node.output.first().cloned().unwrap_or_default() } else { name.to_string() };
                let index = self.graph.add(name, op, &inputs)?;
                Ok(Value::Node { index, rank, nhwc })
            }
        }
    }

    /// A node computed from the image.
    fn make(&mut self, node: &NodeProto) -> Result<Made> {
        if let Some(&Value::Grouped { index, groups, swapped }) = node.input.first().and_then(|n| self.values.get(n)) {
            return self.grouped(node, index, groups, swapped);
        }
        let op = node.op_type.as_str();
        let act = |a: Act, me: &Self| -> Result<Made> {
            let x = me.input(node, 0)?;
            Ok(Made::Op(Op::Activation(a), vec![x.index], x.rank, x.nhwc))
        };
        Ok(match op {
            "Identity" | "Dropout" => Made::Alias(self.value(node, 0)?.clone()),
            "Cast" => match attr_i(node, "to", 1) {
                1 | 10 | 11 | 16 => Made::Alias(self.value(node, 0)?.clone()),
                to => return Err(model_err(format!("a cast of the image's values to ONNX type {to}"))),
            },
            "Relu" => act(Act::Relu, self)?,
            "Sigmoid" => act(Act::Sigmoid, self)?,
            "Tanh" => act(Act::Tanh, self)?,
            "Erf" => act(Act::Erf, self)?,
            "HardSwish" => act(Act::HardSwish, self)?,
            "Softplus" => act(Act::Softplus, self)?,
            "Elu" => act(Act::Elu(attr_f(node, "alpha", 1.0)), self)?,
            "LeakyRelu" => act(Act::LeakyRelu(attr_f(node, "alpha", 0.01)), self)?,
            "HardSigmoid" => act(Act::HardSigmoid { alpha: attr_f(node, "alpha", 0.2), beta: attr_f(node, "beta", 0.5) }, self)?,
            "Selu" => {
                let (a, g) = (attr_f(node, "alpha", 1.673_263_2), attr_f(node, "gamma", 1.050_701));
                if (a - 1.673_263_2).abs() > 1e-5 || (g - 1.050_701).abs() > 1e-5 {
                    return Err(model_err("a SELU with non-standard alpha/gamma"));
                }
                act(Act::Selu, self)?
            }
            "Gelu" => match attr_s(node, "approximate", "none").as_str() {
                "tanh" => act(Act::GeluTanh, self)?,
                _ => act(Act::Gelu, self)?,
            },
            "Clip" => {
                let bound = |i: usize, default: f32| -> Result<f32> {
                    Ok(match self.optional_constant(node, i)? {
                        Some(a) => *a.floats().first().ok_or_else(|| model_err("an empty clip bound"))?,
                        None => default,
                    })
                };
                let (min, max) = (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?);
                let a = match (min, max) {
                    (0.0, 6.0) => Act::Relu6,
                    (0.0, m) if m == f32::INFINITY => Act::Relu,
                    _ => Act::Clip { min, max },
                };
                act(a, self)?
            }
            "Softmax" => {
                let x = self.input(node, 0)?;
                let axis = fold::axis(attr_i(node, "axis", if self.opset >= 13 { -1 } else { 1 }), x.rank)?;
                let channels = if x.nhwc { 3 } else { 1 };
                let [_, h, w] = self.graph.nodes()[x.index].shape;
                if axis != channels && !(x.rank == 4 && h * w == 1) {
                    return Err(model_err(format!("a softmax over axis {axis}; ConvLens takes it over the channels")));
                }
                act(Act::Softmax, self)?
            }
            "PRelu" => {
                // A per-channel slope (or one for all), laid out as the channels it multiplies.
                let x = self.input(node, 0)?;
                let slope = self.broadcast_constant(self.constant(node, 1)?, x)?;
                let [_, c, h, w] = slope.dims();
                if h * w != 1 {
                    return Err(model_err("a PRelu slope that varies over the map; ConvLens takes one per channel"));
                }
                Made::Op(Op::PRelu(slope.reshape([c])), vec![x.index], x.rank, x.nhwc)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => self.elementwise(node)?,
            "Conv" => self.conv(node)?,
            "ConvTranspose" => self.conv_transpose(node)?,
            "BatchNormalization" => {
                let x = self.input(node, 0)?;
                if x.nhwc {
                    return Err(model_err("a batch norm over a channels-last tensor"));
                }
                let v = |i| self.constant(node, i).map(Array::floats);
                let norm = BatchNorm::new(Some(v(1)?), Some(v(2)?), v(3)?, v(4)?, attr_f(node, "epsilon", 1e-5))?;
                for (what, values) in [("scale", &norm.scale), ("shift", &norm.shift)] {
                    check_finite(what, values)?;
                }
                Made::Op(Op::Affine(Affine::new(norm.scale, norm.shift, self.device)?), vec![x.index], x.rank, false)
            }
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "LayerNormalization" => {
                let x = self.input(node, 0)?;
                let [_, h, w] = self.graph.nodes()[x.index].shape;
                let axis = fold::axis(attr_i(node, "axis", -1), x.rank)?;
                // Over the channels only: the last axis of a channels-last map or of a vector.
                let channels_only = (x.nhwc && axis == 3) || (x.rank == 2 && axis == 1) || (x.rank == 4 && !x.nhwc && axis == 1 && h * w == 1);
                if !channels_only {
                    return Err(model_err(format!("a layer norm from axis {axis}; ConvLens normalizes over the channels (channels-last, as ConvNeXt does)")));
                }
                let scale = self.constant(node, 1)?.floats();
                let shift = self.optional_constant(node, 2)?.map(Array::floats).unwrap_or_else(|| vec![0.0; scale.len()]);
                check_finite("the scale", &scale)?;
                check_finite("the shift", &shift)?;
                let affine = Affine::new(scale, shift, self.device)?;
                Made::Op(Op::ChannelNorm { affine, eps: attr_f(node, "epsilon", 1e-5) }, vec![x.index], x.rank, x.nhwc)
            }
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.input(node, 0)?;
                self.map(x)?;
                let op = if op == "GlobalAveragePool" { Op::GlobalAvgPool } else { Op::GlobalMaxPool };
                Made::Op(op, vec![x.index], 4, false)
            }
            "ReduceMean" | "ReduceMax" => {
                let x = self.input(node, 0)?;
                let axes = if self.opset >= 18 || self.has(node, 1) {
                    self.optional_constant(node, 1)?.map(Array::ints).unwrap_or_default()
                } else {
                    attr_ints(node, "axes")
                };
                let mut axes = axes.iter().map(|&a| fold::axis(a, x.rank)).collect::<Result<Vec<usize>>>()?;
                axes.sort_unstable();
                let spatial = if x.nhwc { [1, 2] } else { [2, 3] };
                if x.rank != 4 || axes != spatial {
                    return Err(model_err(format!("a reduction over axes {axes:?}; ConvLens reduces over height and width")));
                }
                let keep = attr_i(node, "keepdims", 1) != 0;
                let op = if op == "ReduceMean" { Op::GlobalAvgPool } else { Op::GlobalMaxPool };
                Made::Op(op, vec![x.index], if keep { 4 } else { 2 }, false)
            }
            "Flatten" => {
                let x = self.input(node, 0)?;
                if fold::axis(attr_i(node, "axis", 1), x.rank)? != 1 {
                    return Err(model_err("a flatten that keeps more than the batch"));
                }
                self.flatten(x)
            }
            "Reshape" => {
                let x = self.input(node, 0)?;
                let target = self.constant(node, 1)?.ints();
                let from = self.onnx_shape(x);
                let to = fold::reshape_target(&from, &target, attr_i(node, "allowzero", 0) != 0)?;
                let [c, h, w] = self.graph.nodes()[x.index].shape;
                if to == from {
                    Made::Alias(Value::Node { index: x.index, rank: x.rank, nhwc: x.nhwc })
                } else if to.len() == 2 && to[0] == 1 {
                    self.flatten(x)
                } else if to == [1, c * h * w, 1, 1] && h * w == 1 {
                    Made::Alias(Value::Node { index: x.index, rank: 4, nhwc: false })
                } else if to.len() == 5 && x.rank == 4 && !x.nhwc && to[0] == 1 && to[1] * to[2] == c && to[3..] == [h, w] {
                    Made::Alias(Value::Grouped { index: x.index, groups: to[1], swapped: false })
                } else {
                    return Err(model_err(format!("a reshape of {from:?} to {to:?}; ConvLens reshapes maps to vectors only")));
                }
            }
            "Squeeze" | "Unsqueeze" => {
                let x = self.input(node, 0)?;
                let [_, h, w] = self.graph.nodes()[x.index].shape;
                let axes = if self.has(node, 1) { self.constant(node, 1)?.ints() } else { attr_ints(node, "axes") };
                let rank = if op == "Squeeze" { x.rank.saturating_sub(axes.len().max(2)) } else { x.rank + axes.len() };
                if h * w != 1 || ![2, 4].contains(&rank) || (op == "Squeeze" && x.rank != 4) {
                    return Err(model_err(format!("a {op} of a value of rank {}; ConvLens squeezes 1×1 maps only", x.rank)));
                }
                Made::Alias(Value::Node { index: x.index, rank, nhwc: false })
            }
            "Transpose" => {
                let x = self.input(node, 0)?;
                let perm: Vec<usize> = attr_ints(node, "perm").iter().map(|&p| p as usize).collect();
                let [_, h, w] = self.graph.nodes()[x.index].shape;
                let nhwc = match (x.rank, perm.as_slice(), x.nhwc) {
                    (4, [0, 2, 3, 1], false) | (4, [0, 1, 2, 3], true) => true,
                    (4, [0, 3, 1, 2], true) | (4, [0, 1, 2, 3], false) => false,
                    (2, [0, 1], n) => n,
                    (4, _, n) if h * w == 1 && perm.first() == Some(&0) => n,
                    _ => return Err(model_err(format!("a transpose {perm:?} of a rank-{} value; ConvLens moves channels only", x.rank))),
                };
                Made::Alias(Value::Node { index: x.index, rank: x.rank, nhwc })
            }
            "Concat" => {
                let inputs = (0..node.input.len()).map(|i| self.input(node, i)).collect::<Result<Vec<In>>>()?;
                let first = inputs[0];
                if inputs.iter().any(|x| x.rank != first.rank || x.nhwc != first.nhwc) {
                    return Err(model_err("a concat of values of different ranks or layouts"));
                }
                let channels = if first.nhwc { 3 } else { 1 };
                if fold::axis(attr_i(node, "axis", 1), first.rank)? != channels {
                    return Err(model_err("a concat along another axis than the channels"));
                }
                if inputs.len() == 1 {
                    Made::Alias(self.value(node, 0)?.clone())
                } else {
                    Made::Op(Op::Concat, inputs.iter().map(|x| x.index).collect(), first.rank, first.nhwc)
                }
            }
            "Pad" => {
                let x = self.input(node, 0)?;
                self.map(x)?;
                let mode = attr_s(node, "mode", "constant");
                if mode != "constant" {
                    return Err(model_err(format!("a pad in '{mode}' mode; ConvLens pads with zeros")));
                }
                if let Some(v) = self.optional_constant(node, 2)? {
                    if v.floats().iter().any(|&v| v != 0.0) {
                        return Err(model_err("a pad with a non-zero value"));
                    }
                }
                let pads = self.constant(node, 1)?.ints();
                let axes = match self.optional_constant(node, 3)? {
                    Some(a) => a.ints().iter().map(|&a| fold::axis(a, 4)).collect::<Result<Vec<usize>>>()?,
                    None => (0..4).collect(),
                };
                if pads.len() != 2 * axes.len() {
                    return Err(model_err(format!("{} pads for {} axes", pads.len(), axes.len())));
                }
                let mut full = [0i64; 8];
                for (k, &a) in axes.iter().enumerate() {
                    full[a] = pads[k];
                    full[a + 4] = pads[k + axes.len()];
                }
                if full[0] != 0 || full[1] != 0 || full[4] != 0 || full[5] != 0 {
                    return Err(model_err("a pad of the batch or channel axis"));
                }
                let sides = [full[2], full[6], full[3], full[7]];
                let pairs = |f: fn(i64) -> usize| [(f(sides[0]), f(sides[1])), (f(sides[2]), f(sides[3]))];
                let op = if sides.iter().all(|&p| p >= 0) {
                    Op::Pad(pairs(|p| p as usize))
                } else if sides.iter().all(|&p| p <= 0) {
                    Op::Crop(pairs(|p| p.unsigned_abs() as usize))
                } else {
                    return Err(model_err("a pad that grows one side and crops another"));
                };
                Made::Op(op, vec![x.index], 4, false)
            }
            "Gemm" | "MatMul" => self.dense(node)?,
            "Slice" => {
                let x = self.input(node, 0)?;
                let c = self.graph.nodes()[x.index].shape[0];
                let (starts, ends) = (self.constant(node, 1)?.ints(), self.constant(node, 2)?.ints());
                let axes = match self.optional_constant(node, 3)? {
                    Some(a) => a.ints(),
                    None => (0..starts.len() as i64).collect(),
                };
                let steps = self.optional_constant(node, 4)?.map(Array::ints).unwrap_or_else(|| vec![1; starts.len()]);
                let channels = if x.nhwc { 3 } else { 1 };
                let axes = axes.iter().map(|&a| fold::axis(a, x.rank)).collect::<Result<Vec<usize>>>()?;
                if axes != [channels] || steps != [1] {
                    return Err(model_err("a slice other than a run of channels"));
                }
                let clamp = |v: i64| (if v < 0 { v.saturating_add(c as i64) } else { v }).clamp(0, c as i64) as usize;
                let (start, end) = (clamp(starts[0]), clamp(ends[0]));
                if end <= start {
                    return Err(model_err("an empty slice"));
                }
                Made::Op(Op::Channels { start, len: end - start }, vec![x.index], x.rank, x.nhwc)
            }
            other => return Err(model_err(format!("ConvLens does not run the op {other}; it runs {SUPPORTED}"))),
        })
    }

    /// The two ops a grouped view of a map's channels meets in ShuffleNet: the transpose of its
    /// group axes, and the reshape back to a map (a channel shuffle, if transposed).
    fn grouped(&self, node: &NodeProto, index: usize, groups: usize, swapped: bool) -> Result<Made> {
        let [c, h, w] = self.graph.nodes()[index].shape;
        match node.op_type.as_str() {
            "Transpose" if attr_ints(node, "perm") == [0, 2, 1, 3, 4] => {
                // [1, g, C/g, H, W] → [1, C/g, g, H, W]: the same shuffle, seen with C/g groups.
                Ok(Made::Alias(Value::Grouped { index, groups: c / groups, swapped: !swapped }))
            }
            "Reshape" => {
                let to = fold::reshape_target(&[1, groups, c / groups, h, w], &self.constant(node, 1)?.ints(), attr_i(node, "allowzero", 0) != 0)?;
                if to != [1, c, h, w] {
                    return Err(model_err(format!("a reshape of grouped channels to {to:?}")));
                }
                Ok(if swapped {
                    // The view was [1, g, C/g, H, W] before its transpose: a shuffle of g groups.
                    Made::Op(Op::ChannelShuffle(c / groups), vec![index], 4, false)
                } else {
                    Made::Alias(Value::Node { index, rank: 4, nhwc: false })
                })
            }
            "Transpose" => Err(model_err("a transpose of grouped channels other than a channel shuffle")),
            _ => Err(model_err("reads a map's channels in groups (rank 5); ConvLens handles only a channel shuffle")),
        }
    }

    /// A reshape to [N, features].
    fn flatten(&self, x: In) -> Made {
        let [_, h, w] = self.graph.nodes()[x.index].shape;
        if x.rank == 2 || h * w == 1 {
            Made::Alias(Value::Node { index: x.index, rank: 2, nhwc: false })
        } else {
            Made::Op(Op::Flatten { channels_last: x.nhwc }, vec![x.index], 2, false)
        }
    }

    fn elementwise(&mut self, node: &NodeProto) -> Result<Made> {
        let merge = match node.op_type.as_str() {
            "Add" => Merge::Add,
            "Sub" => Merge::Subtract,
            "Mul" => Merge::Multiply,
            "Div" => Merge::Divide,
            "Max" => Merge::Maximum,
            _ => Merge::Minimum,
        };
        if node.input.len() != 2 {
            return Err(model_err(format!("{} inputs; ConvLens combines two", node.input.len())));
        }
        Ok(match (self.value(node, 0)?.clone(), self.value(node, 1)?.clone()) {
            (Value::Node { index: a, rank: ra, nhwc: na }, Value::Node { index: b, rank: rb, nhwc: nb }) => {
                if ra != rb || na != nb {
                    return Err(model_err("combines values of different ranks or layouts"));
                }
                Made::Op(Op::Merge(merge), vec![a, b], ra, na)
            }
            (Value::Node { index, rank, nhwc }, Value::Const(c)) | (Value::Const(c), Value::Node { index, rank, nhwc }) => {
                let x = In { index, rank, nhwc };
                let constant_first = matches!(self.value(node, 0)?, Value::Const(_));
                let constant = self.broadcast_constant(&c, x)?;
                Made::Op(Op::WithConstant { merge, constant, constant_first }, vec![index], rank, nhwc)
            }
            _ => return Err(model_err("no input computed from the image")),
        })
    }

    fn conv(&self, node: &NodeProto) -> Result<Made> {
        let x = self.input(node, 0)?;
        let [_, h, w] = self.map(x)?;
        let Array::Float(shape, values) = self.constant(node, 1)?.clone() else {
            return Err(model_err("integer conv weights"));
        };
        if shape.len() != 4 {
            return Err(model_err(format!("a kernel of shape {shape:?}; ConvLens runs 2-D convolutions")));
        }
        let bias = self.optional_constant(node, 2)?.map(|b| (b.shape().to_vec(), b.floats()));
        let stride = pair(node, "strides")?;
        let dilation = pair(node, "dilations")?;
        let extent = [(shape[2].max(1) - 1) * dilation[0] + 1, (shape[3].max(1) - 1) * dilation[1] + 1];
        let (padding, _) = window_padding(node, [h, w], extent, stride, false)?;
        check_finite("the kernel", &values)?;
        let group = usize::try_from(attr_i(node, "group", 1)).map_err(|_| model_err("a negative group count"))?;
        let conv = Conv::new((shape, values), bias, stride, dilation, group, padding, self.device)?;
        Ok(Made::Op(Op::Conv { conv, act: Act::Linear }, vec![x.index], 4, false))
    }

    fn conv_transpose(&self, node: &NodeProto) -> Result<Made> {
        let x = self.input(node, 0)?;
        self.map(x)?;
        let Array::Float(shape, values) = self.constant(node, 1)?.clone() else {
            return Err(model_err("integer kernel weights"));
        };
        let [i, o, kh, kw] = shape[..] else {
            return Err(model_err(format!("a kernel of shape {shape:?}; ConvLens runs 2-D transposed convolutions")));
        };
        let group = usize::try_from(attr_i(node, "group", 1)).ok().filter(|&g| g > 0 && i % g == 0).ok_or_else(|| model_err("a bad group count"))?;
        if !attr_ints(node, "output_shape").is_empty() || !matches!(attr_s(node, "auto_pad", "NOTSET").as_str(), "NOTSET" | "" | "VALID") {
            return Err(model_err("a transposed conv sized by output_shape or auto_pad; re-export with explicit pads"));
        }
        let pads = match attr_ints(node, "pads")[..] {
            [] => [(0, 0), (0, 0)],
            [t, l, b, r] if t >= 0 && l >= 0 && b >= 0 && r >= 0 => [(t as usize, b as usize), (l as usize, r as usize)],
            ref p => return Err(model_err(format!("pads {p:?}"))),
        };
        let output_padding = match attr_ints(node, "output_padding")[..] {
            [] => [0, 0],
            [a, b] if a >= 0 && b >= 0 => [a as usize, b as usize],
            ref p => return Err(model_err(format!("output_padding {p:?}"))),
        };
        check_finite("the kernel", &values)?;
        let device = self.device;
        let bias = match self.optional_constant(node, 2)? {
            Some(b) if b.len() == o * group => Some(Tensor::from_data(TensorData::new(b.floats(), [1, o * group, 1, 1]), device)),
            Some(b) => return Err(model_err(format!("a bias of {} values for {} filters", b.len(), o * group))),
            None => None,
        };
        let t = ConvTranspose {
            weight: Tensor::from_data(TensorData::new(values, [i, o, kh, kw]), device),
            bias,
            stride: pair(node, "strides")?,
            dilation: pair(node, "dilations")?,
            groups: group,
            pads,
            output_padding,
        };
        Ok(Made::Op(Op::ConvTranspose(t), vec![x.index], 4, false))
    }

    fn pool(&self, node: &NodeProto) -> Result<Made> {
        let x = self.input(node, 0)?;
        let [_, h, w] = self.map(x)?;
        let size = attr_ints(node, "kernel_shape");
        let [kh, kw] = size[..] else {
            return Err(model_err(format!("a pooling window {size:?}; ConvLens pools over 2-D windows")));
        };
        let size = [kh.max(0) as usize, kw.max(0) as usize];
        if pair(node, "dilations")? != [1, 1] {
            return Err(model_err("a dilated pooling window"));
        }
        if node.output.len() > 1 && !node.output[1].is_empty() {
            return Err(model_err("a max pool whose indices are used"));
        }
        let stride = pair(node, "strides")?;
        let ceil = attr_i(node, "ceil_mode", 0) != 0;
        let (padding, grown) = window_padding(node, [h, w], size, stride, ceil)?;
        let count_padding = attr_i(node, "count_include_pad", 0) != 0;
        if node.op_type == "AveragePool" && grown && count_padding {
            return Err(model_err("an average pool in ceil mode that counts padding (re-export with count_include_pad=False or ceil_mode=False)"));
        }
        let window = Window { size, stride, padding, count_padding };
        let op = if node.op_type == "MaxPool" { Op::MaxPool(window) } else { Op::AvgPool(window) };
        Ok(Made::Op(op, vec![x.index], 4, false))
    }

    /// Gemm (A · B′ · alpha + C · beta) and MatMul with a constant B, as a dense layer.
    fn dense(&self, node: &NodeProto) -> Result<Made> {
        let x = self.input(node, 0)?;
        let [_, h, w] = self.graph.nodes()[x.index].shape;
        // A vector, or a channels-last map (a Linear at every pixel, as in ConvNeXt's blocks).
        let per_pixel = x.rank == 4 && x.nhwc && node.op_type == "MatMul";
        if !(x.rank == 2 || h * w == 1 && !x.nhwc || per_pixel) {
            return Err(model_err("a matrix product of a channels-first map; ConvLens multiplies vectors or channels-last maps"));
        }
        if attr_i(node, "transA", 0) != 0 {
            return Err(model_err("a Gemm with transA"));
        }
        let b = Nd::from_array(self.constant(node, 1)?);
        if b.shape.len() != 2 {
            return Err(model_err(format!("a weight of shape {:?}; expected a matrix", b.shape)));
        }
        let gemm = node.op_type == "Gemm";
        let b = if gemm && attr_i(node, "transB", 0) != 0 { b.transpose(&[1, 0])? } else { b };
        let alpha = if gemm { attr_f(node, "alpha", 1.0) } else { 1.0 };
        let (inputs, outputs) = (b.shape[0], b.shape[1]);
        let weight: Vec<f32> = b.data.iter().map(|&v| v as f32 * alpha).collect();
        check_finite("the weight", &weight)?;
        let bias = match self.optional_constant(node, 2)?.filter(|_| gemm) {
            Some(c) => {
                let beta = attr_f(node, "beta", 1.0);
                let c = Nd::from_array(c).binary(&Nd { shape: vec![outputs], data: vec![0.0; outputs], int: false }, |a, z| a + z)?;
                if c.shape != [outputs] && c.shape != [1, outputs] {
                    return Err(model_err(format!("a bias of shape {:?} for {outputs} outputs", c.shape)));
                }
                Some((vec![outputs], c.data.iter().map(|&v| v as f32 * beta).collect()))
            }
            None => None,
        };
        let dense = Dense::new((vec![inputs, outputs], weight), bias, self.device)?;
        let (rank, nhwc) = if per_pixel { (4, true) } else { (2, false) };
        Ok(Made::Op(Op::Dense { dense, act: Act::Linear }, vec![x.index], rank, nhwc))
    }

    /// Shape of a value (batch 1), with opset 15's start/end.
    fn shape_of(&self, node: &NodeProto) -> Result<Nd> {
        let shape: Vec<i64> = match self.value(node, 0)? {
            Value::Const(a) => a.shape().iter().map(|&d| d as i64).collect(),
            Value::Node { index, rank, nhwc } => self.onnx_shape(In { index: *index, rank: *rank, nhwc: *nhwc }).iter().map(|&d| d as i64).collect(),
            Value::Grouped { index, groups, .. } => {
                let [c, h, w] = self.graph.nodes()[*index].shape;
                [1, *groups, c / groups, h, w].iter().map(|&d| d as i64).collect()
            }
        };
        let n = shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
        let (start, end) = (clamp(attr_i(node, "start", 0)), clamp(attr_i(node, "end", n)));
        Ok(Nd::ints(shape[start..end.max(start)].to_vec()))
    }

    /// A node whose inputs are all constants, evaluated on the host.
    fn fold(&self, node: &NodeProto) -> Result<Nd> {
        let c = |i: usize| self.constant(node, i).map(Nd::from_array);
        let ints = |i: usize| self.constant(node, i).map(Array::ints);
        Ok(match node.op_type.as_str() {
            "Constant" => constant_attr(node)?,
            "Identity" | "Dropout" => c(0)?,
            "Cast" => {
                let mut v = c(0)?;
                v.int = !matches!(attr_i(node, "to", 1), 1 | 10 | 11 | 16);
                if v.int {
                    v.data.iter_mut().for_each(|x| *x = x.trunc());
                }
                v
            }
            "Gather" => c(0)?.gather(attr_i(node, "axis", 0), &c(1)?)?,
            "Unsqueeze" | "Squeeze" => {
                let v = c(0)?;
                let axes = if self.has(node, 1) { ints(1)? } else { attr_ints(node, "axes") };
                let shape = if node.op_type == "Unsqueeze" {
                    let rank = v.shape.len() + axes.len();
                    let axes = axes.iter().map(|&a| fold::axis(a, rank)).collect::<Result<Vec<usize>>>()?;
                    let mut rest = v.shape.iter();
                    (0..rank).map(|d| if axes.contains(&d) { 1 } else { rest.next().copied().unwrap_or(1) }).collect()
                } else {
                    let axes = axes.iter().map(|&a| fold::axis(a, v.shape.len())).collect::<Result<Vec<usize>>>()?;
                    v.shape.iter().enumerate().filter(|(d, &n)| !(if axes.is_empty() { n == 1 } else { axes.contains(d) })).map(|(_, &n)| n).collect()
                };
                Nd { shape, ..v }
            }
            "Concat" => Nd::concat(&(0..node.input.len()).map(c).collect::<Result<Vec<Nd>>>()?, attr_i(node, "axis", 0))?,
            "Reshape" => c(0)?.reshape(&ints(1)?, attr_i(node, "allowzero", 0) != 0)?,
            "Flatten" => {
                let v = c(0)?;
                let ax = fold::axis(attr_i(node, "axis", 1), v.shape.len() + 1)?;
                let outer: usize = v.shape[..ax.min(v.shape.len())].iter().product();
                Nd { shape: vec![outer, v.data.len() / outer.max(1)], ..v }
            }
            "Transpose" => {
                let v = c(0)?;
                let perm: Vec<usize> = match attr_ints(node, "perm") {
                    p if p.is_empty() => (0..v.shape.len()).rev().collect(),
                    p => p.iter().map(|&p| p.max(0) as usize).collect(),
                };
                v.transpose(&perm)?
            }
            "Slice" => {
                let v = c(0)?;
                let (starts, ends) = (ints(1)?, ints(2)?);
                let axes = if self.has(node, 3) { ints(3)? } else { (0..starts.len() as i64).collect() };
                let steps = if self.has(node, 4) { ints(4)? } else { vec![1; starts.len()] };
                v.slice(&starts, &ends, &axes, &steps)?
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = ints(0)?.iter().map(|&d| d.max(0) as usize).collect();
                let fill = match node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => Nd::from_array(t),
                    None => Nd { shape: vec![1], data: vec![0.0], int: false },
                };
                let count: usize = shape.iter().product();
                if count > 1 << 24 {
                    return Err(model_err("a constant too large to build"));
                }
                Nd { shape, data: vec![fill.data.first().copied().unwrap_or(0.0); count], int: fill.int }
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => {
                let (a, b) = (c(0)?, c(1)?);
                let int = a.int && b.int;
                match node.op_type.as_str() {
                    "Add" => a.binary(&b, |x, y| x + y)?,
                    "Sub" => a.binary(&b, |x, y| x - y)?,
                    "Mul" => a.binary(&b, |x, y| x * y)?,
                    "Max" => a.binary(&b, f64::max)?,
                    "Min" => a.binary(&b, f64::min)?,
                    _ if int => a.binary(&b, |x, y| if y == 0.0 { 0.0 } else { (x / y).floor() })?,
                    _ => a.binary(&b, |x, y| x / y)?,
                }
            }
            "Neg" => {
                let v = c(0)?;
                Nd { data: v.data.iter().map(|x| -x).collect(), ..v }
            }
            "Sqrt" => {
                let v = c(0)?;
                Nd { data: v.data.iter().map(|x| x.sqrt()).collect(), ..v }
            }
            other => return Err(model_err(format!("ConvLens does not fold the op {other} on constants; it runs {SUPPORTED}"))),
        })
    }
}

fn node_name(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}

fn attr_s(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| default.to_string())
}

fn attr_ints(node: &NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

/// A 2-D attribute such as strides or dilations (default 1, 1).
fn pair(node: &NodeProto, name: &str) -> Result<[usize; 2]> {
    match attr_ints(node, name)[..] {
        [] => Ok([1, 1]),
        [a, b] if a > 0 && b > 0 => Ok([a as usize, b as usize]),
        ref v => Err(model_err(format!("{name} {v:?}; ConvLens runs 2-D windows with positive steps"))),
    }
}

/// The padding of a conv or pooling window on an input of `hw`, and whether ceil mode grew it.
fn window_padding(node: &NodeProto, hw: [usize; 2], extent: [usize; 2], stride: [usize; 2], ceil: bool) -> Result<(Padding, bool)> {
    match attr_s(node, "auto_pad", "NOTSET").as_str() {
        "SAME_UPPER" => return Ok((Padding::TfSame, false)),
        "VALID" => return Ok((Padding::Valid, false)),
        "SAME_LOWER" => {
            // TensorFlow's padding with the odd pixel before.
            let p = |d: usize| {
                let (a, b) = Padding::TfSame.pads(d, hw[d], extent[d], stride[d]);
                (b, a)
            };
            return Ok((Padding::Explicit([p(0), p(1)]), false));
        }
        "NOTSET" | "" => {}
        other => return Err(model_err(format!("auto_pad '{other}'"))),
    }
    let pads = attr_ints(node, "pads");
    let pads: Vec<usize> = match pads[..] {
        [] => vec![0; 4],
        [_, _, _, _] if pads.iter().all(|&p| p >= 0) => pads.iter().map(|&p| p as usize).collect(),
        _ => return Err(model_err(format!("pads {pads:?}"))),
    };
    let mut pairs = [(pads[0], pads[2]), (pads[1], pads[3])];
    let mut grown = false;
    if ceil {
        // Ceil mode adds a last window where one starts inside the input or its left padding:
        // pad after so that window fits (max pooling pads with −∞, so it sees real pixels only).
        for d in 0..2 {
            let (a, b) = pairs[d];
            let span = (hw[d] + a + b).saturating_sub(extent[d]);
            let mut out = span.div_ceil(stride[d]) + 1;
            if (out - 1) * stride[d] >= hw[d] + a {
                out -= 1;
            }
            let need = (out - 1) * stride[d] + extent[d];
            if need > hw[d] + a + b {
                pairs[d].1 += need - (hw[d] + a + b);
                grown = true;
            }
        }
    }
    Ok((if pairs == [(0, 0), (0, 0)] { Padding::Valid } else { Padding::Explicit(pairs) }, grown))
}

/// A Constant node's value.
fn constant_attr(node: &NodeProto) -> Result<Nd> {
    let a = node.attribute.first().ok_or_else(|| model_err("a constant without a value"))?;
    Ok(match a.name.as_str() {
        "value" => Nd::from_array(a.t.as_ref().ok_or_else(|| model_err("a constant without a tensor"))?),
        "value_float" => Nd { shape: vec![], data: vec![a.f as f64], int: false },
        "value_floats" => Nd { shape: vec![a.floats.len()], data: a.floats.iter().map(|&v| v as f64).collect(), int: false },
        "value_int" => Nd { shape: vec![], data: vec![a.i as f64], int: true },
        "value_ints" => Nd::ints(a.ints.clone()),
        other => return Err(model_err(format!("a constant given as '{other}'"))),
    })
}
