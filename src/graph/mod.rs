//! A network as data: named nodes, each an op with its constant weights and its inputs, in
//! topological order, run by one executor on any Burn backend. The executor can stop at any node
//! (activations, the filter ascent), resume from where it stopped (the page's layer-by-layer
//! walk) and "tap" a node: continue the forward with that node's output replaced by a leaf that
//! requires grad, so every other branch (skip connections) keeps its own tensors and the backward
//! stops at the tap (Grad-CAM). Built-in models and files that carry their own architecture
//! (Keras) are both turned into this one form.

mod depthwise;
mod host;
pub mod keras;
pub mod onnx;
pub mod ops;
mod pointwise;
mod winograd;

use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
pub use ops::{Act, LayerKind, Op, Shape};

/// The most values one layer may output for one image (2^27 f32 = 512 MiB; VGG16's largest
/// layer has 3.2 M).
const MAX_LAYER_VALUES: usize = 1 << 27;

/// The node a model's first layer reads, in a graph whose input is the RGB photo: the input
/// itself for a 3-channel model; for a grayscale one, the photo's luminance (ITU-R BT.601) as a
/// 1×1 conv kept in the graph, so gradients still reach the RGB pixels.
pub fn photo_input(graph: &mut Graph, channels: usize, device: &Device) -> Result<usize> {
    match channels {
        3 => Ok(0),
        1 => {
            let conv = ops::Conv::new((vec![1, 3, 1, 1], vec![0.299, 0.587, 0.114]), None, [1, 1], [1, 1], 1, ops::Padding::Valid, device)?;
            graph.chain("grayscale", Op::Conv { conv, act: Act::Linear })
        }
        c => Err(Error::Model(format!("the model takes {c}-channel input; ConvLens feeds RGB photos (3 channels) or grayscale (1)"))),
    }
}

/// One node: its name (the layer name users see), what it computes, from which nodes.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
    /// Output shape [C, H, W] for one image.
    pub shape: Shape,
}

/// How the output node's values become class probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Logits; probabilities are their softmax (a Dense with softmax, or raw logits).
    Softmax,
    /// One sigmoid unit z: presented as the two logits [−z/2, z/2], whose softmax is exactly
    /// (1 − σ(z), σ(z)), so row 1 is the sigmoid's p and row 0 is 1 − p.
    Sigmoid,
    /// Several independent sigmoid units (multi-label): probability σ(z) each.
    Sigmoids,
}

/// A network's graph. Node 0 is the input.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    /// For each node, the last node that reads it (its value can be freed after that one).
    last_use: Vec<usize>,
    output: usize,
    pub head: Head,
}

/// The state of one forward pass: every value still needed, and how far it has got.
pub struct Run {
    values: Vec<Option<Tensor<4>>>,
    next: usize,
    tap: Option<usize>,
    leaf: Option<Tensor<4>>,
}

impl Run {
    /// The nodes computed so far are 0..done().
    pub fn done(&self) -> usize {
        self.next
    }

    /// A node's output, if computed and still held.
    pub fn value(&self, node: usize) -> Option<Tensor<4>> {
        self.values.get(node).cloned().flatten()
    }
}

impl Graph {
    /// A graph with only its input node, named `input_name`, of shape [C, H, W].
    pub fn new(input_name: &str, input: Shape) -> Self {
        let node = Node { name: input_name.to_string(), op: Op::Input, inputs: vec![], shape: input };
        Self { nodes: vec![node], last_use: vec![0], output: 0, head: Head::Softmax }
    }

    /// Appends a node reading `inputs`; its shape is inferred and every weight checked against
    /// its inputs. The newest node becomes the output until `set_output` says otherwise.
    pub fn add(&mut self, name: impl Into<String>, op: Op, inputs: &[usize]) -> Result<usize> {
        let name = name.into();
        if self.find(&name).is_some() {
            return Err(Error::weights(format!("two layers are named '{name}'")));
        }
        let index = self.nodes.len();
        if inputs.iter().any(|&i| i >= index) {
            return Err(Error::weights(format!("layer '{name}' reads a layer that comes after it")));
        }
        match op.arity() {
            Some(n) if inputs.len() != n => return Err(Error::weights(format!("layer '{name}' takes {n} input(s), given {}", inputs.len()))),
            None if inputs.len() < 2 => return Err(Error::weights(format!("layer '{name}' merges two or more inputs, given {}", inputs.len()))),
            _ => {}
        }
        let shapes: Vec<Shape> = inputs.iter().map(|&i| self.nodes[i].shape).collect();
        let shape = op.out_shape(&shapes).map_err(|e| e.within(&format!("layer '{name}'")))?;
        if shape.contains(&0) {
            return Err(Error::weights(format!("layer '{name}' would output an empty map {shape:?}")));
        }
        // A forged size (padding, input shape) must not make the executor allocate gigabytes.
        let values = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        if values > MAX_LAYER_VALUES {
            return Err(Error::Model(format!("layer '{name}' would output {values} values per image ({shape:?}), more than ConvLens handles")));
        }
        for &i in inputs {
            self.last_use[i] = index;
        }
        self.nodes.push(Node { name, op, inputs: inputs.to_vec(), shape });
        self.last_use.push(index);
        self.output = index;
        Ok(index)
    }

    /// Appends a node reading the newest one.
    pub fn chain(&mut self, name: impl Into<String>, op: Op) -> Result<usize> {
        let last = self.nodes.len() - 1;
        self.add(name, op, &[last])
    }

    /// Declares which node gives the class scores and how to read them.
    pub fn set_output(&mut self, node: usize, head: Head) {
        self.output = node.min(self.nodes.len() - 1);
        self.head = head;
    }

    /// Moves a final softmax or sigmoid out of the graph into the head, so the output gives
    /// logits (what Grad-CAM differentiates): a Conv/Dense's own activation becomes linear, and a
    /// separate softmax/sigmoid activation node stops being the output.
    pub fn detach_head(&mut self) {
        let out = self.output;
        let units = self.nodes[out].shape[0];
        let sigmoid_head = if units == 1 { Head::Sigmoid } else { Head::Sigmoids };
        let head_of = |act: &Act| match act {
            Act::Softmax => Some(Head::Softmax),
            Act::Sigmoid => Some(sigmoid_head),
            _ => None,
        };
        match &mut self.nodes[out].op {
            Op::Conv { act, .. } | Op::Dense { act, .. } | Op::Separable { act, .. } => {
                if let Some(head) = head_of(act) {
                    *act = Act::Linear;
                    self.head = head;
                }
            }
            Op::Activation(act) => {
                if let (Some(head), Some(&input)) = (head_of(act), self.nodes[out].inputs.first()) {
                    self.output = input;
                    self.head = head;
                }
            }
            _ => {}
        }
    }

    /// How many class scores the head gives (a single sigmoid unit reads as two rows).
    pub fn class_count(&self) -> usize {
        if self.head == Head::Sigmoid {
            2
        } else {
            self.nodes[self.output].shape[0]
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// A copy whose nodes after `node` have re-initialized weights (`Op::reinitialized`).
    pub fn randomized_after(&self, node: usize, draw: &mut dyn FnMut() -> f32) -> Graph {
        let mut graph = self.clone();
        for n in graph.nodes.iter_mut().skip(node + 1) {
            n.op = n.op.reinitialized(draw);
        }
        graph
    }

    pub fn output(&self) -> usize {
        self.output
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Checks that the nodes up to `upto` can run on an input of another size (the filter
    /// ascent optimizes images of its own size): a Flatten + Dense or a Reshape on the way fixes
    /// the size, and running them at another would fail inside the backend.
    pub fn check_input_size(&self, input: Shape, upto: usize) -> Result<()> {
        let mut shapes = vec![input];
        for node in self.nodes.iter().take(upto + 1).skip(1) {
            let ins: Vec<Shape> = node.inputs.iter().map(|&i| shapes[i]).collect();
            let shape = node.op.out_shape(&ins).map_err(|e| {
                Error::invalid(format!("layer '{}' cannot run on a {}×{} image ({e}); use the model's input size", node.name, input[1], input[2]))
            })?;
            shapes.push(shape);
        }
        Ok(())
    }

    /// A forward pass from the (preprocessed) input `x` [N, C, H, W], nothing computed yet.
    /// `tap`: the node whose output becomes a leaf that requires grad.
    pub fn start(&self, x: Tensor<4>, tap: Option<usize>) -> Run {
        let mut values = vec![None; self.nodes.len()];
        values[0] = Some(x);
        Run { values, next: 1, tap, leaf: None }
    }

    /// Computes the nodes of `run` up to and including `upto`, showing each output to `visit`.
    /// Values no later node reads are freed as soon as their last reader has run.
    pub fn advance(&self, run: &mut Run, upto: usize, mut visit: impl FnMut(usize, &Tensor<4>)) -> Result<()> {
        let upto = upto.min(self.nodes.len() - 1);
        while run.next <= upto {
            let j = run.next;
            let node = &self.nodes[j];
            // A value this node reads for the last time is moved, not cloned: a uniquely owned
            // tensor lets the backend compute element-wise ops in place.
            let mut inputs = Vec::with_capacity(node.inputs.len());
            for (k, &i) in node.inputs.iter().enumerate() {
                let last_read = self.last_use[i] == j && i != self.output && !node.inputs[k + 1..].contains(&i);
                let value = if last_read { run.values[i].take() } else { run.values[i].clone() };
                inputs.push(value.ok_or_else(|| Error::Backend(format!("the input of '{}' was freed too early", node.name)))?);
            }
            let mut y = node.op.forward(inputs)?;
            if run.tap == Some(j) {
                y = y.detach().require_grad();
                run.leaf = Some(y.clone());
            }
            visit(j, &y);
            run.values[j] = Some(y);
            run.next += 1;
        }
        Ok(())
    }

    /// Guided backpropagation (Springenberg et al. 2015): the gradient at the input `x` of
    /// `score(output)`, where every ReLU passes back only positive gradients (and only where its
    /// input was positive, as any ReLU does). Burn's autodiff has no hook for a custom backward,
    /// so the pass is walked node by node, each node's own backward taken by autodiff on a
    /// one-node graph: a forward pass, then one small backward per node.
    pub fn guided_gradient(&self, x: Tensor<4>, score: impl FnOnce(Tensor<4>) -> Tensor<1>) -> Result<Tensor<4>> {
        let output = self.output;
        let mut values: Vec<Tensor<4>> = Vec::with_capacity(output + 1);
        values.push(x.detach());
        for node in &self.nodes[1..=output] {
            let inputs = node.inputs.iter().map(|&i| values[i].clone()).collect();
            values.push(node.op.forward(inputs)?.detach());
        }
        let mut grads: Vec<Option<Tensor<4>>> = vec![None; output + 1];
        let top = values[output].clone().require_grad();
        let from_score = score(top.clone()).backward();
        grads[output] = top.grad(&from_score);
        for j in (1..=output).rev() {
            let Some(mut grad) = grads[j].take() else { continue };
            let node = &self.nodes[j];
            if node.op.ends_in_relu() {
                grad = grad.clamp_min(0.0);
            }
            let leaves: Vec<Tensor<4>> = node.inputs.iter().map(|&i| values[i].clone().require_grad()).collect();
            let y = node.op.forward(leaves.clone())?;
            let node_grads = (y * grad).sum().backward();
            for (leaf, &i) in leaves.iter().zip(&node.inputs) {
                if let Some(g) = leaf.grad(&node_grads) {
                    grads[i] = Some(match grads[i].take() {
                        Some(sum) => sum + g,
                        None => g,
                    });
                }
            }
        }
        grads[0].take().ok_or_else(|| Error::Backend("no gradient reached the input".into()))
    }

    /// The tapped node's leaf, once the run has passed it.
    pub fn leaf(run: &Run) -> Option<Tensor<4>> {
        run.leaf.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn read(t: Tensor<4>) -> Vec<f32> {
        pollster::block_on(crate::backend::read_f32(t)).unwrap()
    }

    /// y = relu(x) + x through a skip; tapping relu gives dy/dtap = 1 (the skip is not traced).
    #[test]
    fn tap_keeps_other_branches_and_stops_the_backward() {
        let device = Device::flex().autodiff();
        let mut g = Graph::new("input", [1, 1, 2]);
        let r = g.chain("relu", Op::Activation(Act::Relu)).unwrap();
        g.add("sum", Op::Merge(ops::Merge::Add), &[0, r]).unwrap();
        let x = Tensor::<4>::from_data(TensorData::new(vec![-1.0f32, 2.0], [1, 1, 1, 2]), &device);
        let mut run = g.start(x, Some(r));
        g.advance(&mut run, 2, |_, _| {}).unwrap();
        assert_eq!(read(run.value(2).unwrap()), vec![-1.0, 4.0]);
        let leaf = Graph::leaf(&run).unwrap();
        let grads = run.value(2).unwrap().sum().backward();
        assert_eq!(read(leaf.grad(&grads).unwrap()), vec![1.0, 1.0]);
    }

    #[test]
    fn duplicate_names_and_bad_arity_are_errors() {
        let mut g = Graph::new("input", [3, 4, 4]);
        g.chain("a", Op::Activation(Act::Relu)).unwrap();
        assert!(g.chain("a", Op::Activation(Act::Relu)).is_err());
        assert!(g.add("m", Op::Concat, &[1]).is_err());
        assert!(g.add("later", Op::Identity, &[5]).is_err());
    }

    #[test]
    fn values_are_freed_after_their_last_reader() {
        let device = Device::flex().autodiff();
        let mut g = Graph::new("input", [1, 2, 2]);
        g.chain("a", Op::Activation(Act::Relu)).unwrap();
        g.chain("b", Op::Activation(Act::Relu)).unwrap();
        let mut run = g.start(Tensor::<4>::ones([1, 1, 2, 2], &device), None);
        g.advance(&mut run, 1, |_, _| {}).unwrap();
        assert!(run.value(1).is_some());
        g.advance(&mut run, 2, |_, _| {}).unwrap();
        assert!(run.value(1).is_none() && run.value(2).is_some() && run.done() == 3);
    }
}
