//! A network ready to run: a graph on a device plus what the visualizations and the front ends
//! need to know about it (name, preprocessing, labels, default layers). The one interface the
//! visualizations use: the layers, `forward_until` (the activation at a layer), `forward_tapped`
//! (the class scores with a layer's output as a gradient leaf) and resumable runs.

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::graph::{Graph, Head, LayerKind, Run, Shape};
use crate::preprocess::Preprocessing;

/// A named layer and the shape of its output for one image: [C, H, W] (vectors: [C, 1, 1]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub name: String,
    pub kind: LayerKind,
    pub shape: Shape,
}

impl LayerInfo {
    /// Whether the output is a spatial map (more than one pixel per channel) worth a picture.
    pub fn has_map(&self) -> bool {
        self.shape[1] * self.shape[2] > 1
    }
}

/// What a network is, apart from its graph.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The catalogue name ("vgg16") or the model's own name from its file.
    pub name: String,
    /// For people: "VGG16", or the file's model name.
    pub title: String,
    /// Whether the architecture came from the file itself (Keras, ONNX) rather than the catalogue.
    pub from_file: bool,
    pub preprocessing: Preprocessing,
    /// Class names; empty: the catalogue's or "class 0" … "class N−1".
    pub labels: Vec<String>,
    /// Where the weights came from (metadata `origin`, or the file's format).
    pub origin: String,
    pub default_cam_layer: Option<String>,
    pub default_filter_layer: Option<String>,
}

/// The model description the front ends show (and the page learns everything from).
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub model: String,
    pub title: String,
    pub from_file: bool,
    pub origin: String,
    pub preprocessing: String,
    pub input_height: usize,
    pub input_width: usize,
    pub default_cam_layer: String,
    pub default_filter_layer: String,
    pub classes: usize,
    pub labels: Vec<String>,
    pub layers: Vec<LayerDescription>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerDescription {
    pub name: String,
    pub kind: &'static str,
    pub shape: Shape,
}

/// A network with its weights on a device, ready to run. Cloning shares the weights.
#[derive(Clone)]
pub struct Network {
    pub name: String,
    pub title: String,
    pub from_file: bool,
    pub preprocessing: Preprocessing,
    /// Class names, index-aligned with the class scores.
    pub labels: Vec<String>,
    pub origin: String,
    default_cam_layer: String,
    default_filter_layer: String,
    graph: Graph,
    layers: Vec<LayerInfo>,
    device: Device,
}

impl Network {
    /// Checks the graph's output and fills in the defaults.
    pub fn new(graph: Graph, info: ModelInfo, device: &Device) -> Result<Self> {
        let out = graph.nodes()[graph.output()].shape;
        if out[1] * out[2] != 1 {
            return Err(Error::weights(format!("the model's output is a {}×{}×{} map, not class scores", out[0], out[1], out[2])));
        }
        if graph.head == Head::Sigmoid && out[0] != 1 {
            return Err(Error::weights("a single-sigmoid head must have one unit"));
        }
        let layers: Vec<LayerInfo> = graph.nodes()[1..].iter().map(|n| LayerInfo { name: n.name.clone(), kind: n.op.kind(), shape: n.shape }).collect();
        let classes = graph.class_count();
        let labels = if info.labels.is_empty() { (0..classes).map(|i| format!("class {i}")).collect() } else { info.labels };
        if labels.len() != classes {
            return Err(Error::weights(format!("there are {} labels but the network has {classes} outputs", labels.len())));
        }
        // Grad-CAM: the last layer with a spatial map; filter patterns: a conv halfway down.
        let spatial = layers.iter().rev().find(|l| l.has_map()).map(|l| l.name.clone());
        let convs: Vec<&LayerInfo> = layers.iter().filter(|l| l.kind == LayerKind::Conv && l.has_map()).collect();
        let middle_conv = convs.get(convs.len() / 2).map(|l| l.name.clone());
        let pick = |given: Option<String>, fallback: Option<String>, what: &str| -> Result<String> {
            given.filter(|g| layers.iter().any(|l| &l.name == g)).or(fallback).ok_or_else(|| Error::Layer(format!("this model has no {what}")))
        };
        let default_cam_layer = pick(info.default_cam_layer, spatial.clone(), "layer with a spatial map")?;
        let default_filter_layer = pick(info.default_filter_layer, middle_conv.or(spatial), "conv layer")?;
        Ok(Self {
            name: info.name,
            title: info.title,
            from_file: info.from_file,
            preprocessing: info.preprocessing,
            labels,
            origin: info.origin,
            default_cam_layer,
            default_filter_layer,
            graph,
            layers,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every named layer, input to output (the input itself excluded).
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Input resolution [height, width].
    pub fn input_hw(&self) -> [usize; 2] {
        let [_, h, w] = self.graph.nodes()[0].shape;
        [h, w]
    }

    /// The layer Grad-CAM looks at unless told otherwise.
    pub fn default_cam_layer(&self) -> &str {
        &self.default_cam_layer
    }

    /// The layer whose filters the page shows first.
    pub fn default_filter_layer(&self) -> &str {
        &self.default_filter_layer
    }

    pub fn describe(&self) -> Description {
        let [input_height, input_width] = self.input_hw();
        Description {
            model: self.name.clone(),
            title: self.title.clone(),
            from_file: self.from_file,
            origin: self.origin.clone(),
            preprocessing: self.preprocessing.name(),
            input_height,
            input_width,
            default_cam_layer: self.default_cam_layer.clone(),
            default_filter_layer: self.default_filter_layer.clone(),
            classes: self.logit_count(),
            labels: self.labels.clone(),
            layers: self.layers.iter().map(|l| LayerDescription { name: l.name.clone(), kind: l.kind.name(), shape: l.shape }).collect(),
        }
    }

    /// Replaces the class names (one per class), e.g. pasted by the user.
    pub fn set_labels(&mut self, labels: Vec<String>) -> Result<()> {
        if labels.len() != self.labels.len() {
            return Err(Error::invalid(format!("{} class names given, but the model has {} classes", labels.len(), self.labels.len())));
        }
        self.labels = labels;
        Ok(())
    }

    /// The same network with every layer after `layer` re-initialized at random (the sanity check
    /// of Adebayo et al. 2018: a map that explains the network must change with it).
    pub fn randomized_after(&self, layer: &str, draw: &mut dyn FnMut() -> f32) -> Result<Network> {
        let node = self.node(layer)?;
        Ok(Network { graph: self.graph.randomized_after(node, draw), ..self.clone() })
    }

    /// The same network with `layer` and every layer after it re-initialized at random (one step
    /// of the cascading randomization of Adebayo et al. 2018).
    pub fn randomized_from(&self, layer: &str, draw: &mut dyn FnMut() -> f32) -> Result<Network> {
        let node = self.node(layer)?;
        Ok(Network { graph: self.graph.randomized_after(node - 1, draw), ..self.clone() })
    }

    /// The graph node of `name`, or an error listing the layers.
    fn node(&self, name: &str) -> Result<usize> {
        self.graph.find(name).filter(|&i| i > 0).ok_or_else(|| {
            let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
            Error::Layer(format!("unknown layer '{name}' for {}; its layers are: {}", self.name, names.join(", ")))
        })
    }

    /// The position of `name` in `layers()`, or an error listing the layers.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        Ok(self.node(name)? - 1)
    }

    pub fn layer(&self, name: &str) -> Result<&LayerInfo> {
        Ok(&self.layers[self.layer_index(name)?])
    }

    /// Number of class scores `forward` returns.
    pub fn logit_count(&self) -> usize {
        self.labels.len()
    }

    /// 0–255 RGB pixels [N, 3, H, W] -> what the first layer takes (the preprocessing the
    /// weights imply; models with their own preprocessing layers use `Raw`).
    pub fn preprocess(&self, pixels: Tensor<4>) -> Tensor<4> {
        if self.preprocessing == Preprocessing::Raw {
            return pixels;
        }
        let affine = self.preprocessing.affine();
        let reordered = if affine.iter().enumerate().all(|(c, a)| a.0 == c) {
            pixels
        } else {
            Tensor::cat(affine.iter().map(|a| pixels.clone().narrow(1, a.0, 1)).collect(), 1)
        };
        let scale = Tensor::<4>::from_data(TensorData::new(affine.map(|a| a.1).to_vec(), [1, 3, 1, 1]), &self.device);
        let shift = Tensor::<4>::from_data(TensorData::new(affine.map(|a| a.2).to_vec(), [1, 3, 1, 1]), &self.device);
        reordered * scale + shift
    }

    /// A forward pass of 0–255 RGB pixels [N, 3, H, W], nothing computed yet; `tap` (a layer
    /// name) becomes a gradient leaf.
    pub fn start(&self, pixels: Tensor<4>, tap: Option<&str>) -> Result<Run> {
        let tap = tap.map(|t| self.node(t)).transpose()?;
        Ok(self.graph.start(self.preprocess(pixels), tap))
    }

    /// Runs `run` on through the layer of index `layer` (in `layers()`), showing each layer's
    /// output (by layer index) to `visit`.
    pub fn advance(&self, run: &mut Run, layer: usize, mut visit: impl FnMut(usize, &Tensor<4>)) -> Result<()> {
        self.graph.advance(run, layer + 1, |node, x| visit(node - 1, x))
    }

    /// The output of layer `layer` (index in `layers()`) in `run`, if computed and still held.
    pub fn value(&self, run: &Run, layer: usize) -> Option<Tensor<4>> {
        run.value(layer + 1)
    }

    /// Whether `layer` can be computed from an image of `hw` pixels (see `Graph::check_input_size`).
    pub fn check_input_size(&self, hw: [usize; 2], layer: &str) -> Result<()> {
        self.graph.check_input_size([3, hw[0], hw[1]], self.node(layer)?)
    }

    /// Pixels [N, 3, H, W] -> activation at `layer` [N, C, H, W].
    pub fn forward_until(&self, pixels: Tensor<4>, layer: &str) -> Result<Tensor<4>> {
        let index = self.layer_index(layer)?;
        let mut run = self.start(pixels, None)?;
        self.advance(&mut run, index, |_, _| {})?;
        self.value(&run, index).ok_or_else(|| Error::Layer(format!("layer '{layer}' was not reached")))
    }

    /// Activations at several layers from one forward pass, in the order asked.
    pub fn forward_many(&self, pixels: Tensor<4>, names: &[&str]) -> Result<Vec<Tensor<4>>> {
        let indices = names.iter().map(|n| self.layer_index(n)).collect::<Result<Vec<_>>>()?;
        let mut found: Vec<Option<Tensor<4>>> = vec![None; indices.len()];
        let mut run = self.start(pixels, None)?;
        self.advance(&mut run, indices.iter().copied().max().unwrap_or(0), |i, x| {
            for (slot, &wanted) in found.iter_mut().zip(&indices) {
                if wanted == i {
                    *slot = Some(x.clone());
                }
            }
        })?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The whole network: pixels -> class logits [N, classes].
    pub fn forward(&self, pixels: Tensor<4>) -> Result<Tensor<2>> {
        let mut run = self.start(pixels, None)?;
        self.logits(&mut run)
    }

    /// `layer`'s activation and the class logits from one forward pass, the gradient flowing
    /// through both.
    pub fn forward_with(&self, pixels: Tensor<4>, layer: &str) -> Result<(Tensor<4>, Tensor<2>)> {
        let index = self.layer_index(layer)?;
        let mut run = self.start(pixels, None)?;
        self.advance(&mut run, index, |_, _| {})?;
        let activation = self.value(&run, index).ok_or_else(|| Error::Layer(format!("layer '{layer}' was not reached")))?;
        Ok((activation, self.logits(&mut run)?))
    }

    /// Class logits with `layer`'s output as a leaf that requires grad: (leaf, logits). The
    /// backward of a class score stops at the leaf; every other branch keeps its own tensors.
    pub fn forward_tapped(&self, pixels: Tensor<4>, layer: &str) -> Result<(Tensor<4>, Tensor<2>)> {
        let mut run = self.start(pixels, Some(layer))?;
        let logits = self.logits(&mut run)?;
        let leaf = Graph::leaf(&run).ok_or_else(|| Error::Layer(format!("layer '{layer}' does not lead to the output")))?;
        Ok((leaf, logits))
    }

    /// Finishes `run` and reads its class logits [N, classes].
    fn logits(&self, run: &mut Run) -> Result<Tensor<2>> {
        let output = self.graph.output();
        self.graph.advance(run, output, |_, _| {})?;
        let out = run.value(output).ok_or_else(|| Error::Backend("the output was not computed".into()))?;
        Ok(self.head(out))
    }

    /// The output node's value -> class logits [N, classes].
    fn head(&self, out: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = out.dims();
        let out = out.reshape([n, c * h * w]);
        match self.graph.head {
            Head::Sigmoid => {
                let half = out.mul_scalar(0.5);
                Tensor::cat(vec![half.clone().neg(), half], 1)
            }
            _ => out,
        }
    }

    /// Guided backpropagation (`Graph::guided_gradient`) of `class`'s logit to the 0–255 pixels
    /// [N, 3, H, W]: the fine detail that raises the class.
    pub fn guided_gradient(&self, pixels: Tensor<4>, class: usize) -> Result<Tensor<4>> {
        if class >= self.logit_count() {
            return Err(Error::invalid(format!("class {class} is out of range: {} has classes 0..{}", self.name, self.logit_count() - 1)));
        }
        let leaf = pixels.detach().require_grad();
        let x = self.preprocess(leaf.clone());
        let at_input = self.graph.guided_gradient(x.clone(), |out| self.head(out).narrow(1, class, 1).sum())?;
        let grads = (x * at_input).sum().backward();
        leaf.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the pixels".into()))
    }

    /// Logits -> class probabilities.
    pub fn probabilities(&self, logits: Tensor<2>) -> Tensor<2> {
        match self.graph.head {
            Head::Sigmoids => sigmoid(logits),
            Head::Softmax | Head::Sigmoid => softmax(logits, 1),
        }
    }
}
