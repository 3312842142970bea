//! The networks ConvLens can open, and the one interface the visualizations use: a list of named
//! layers, `forward_until` (the activation at a layer) and `forward_from` (the rest of the net).
//! Every activation travels as [N, C, H, W]; dense outputs as [N, C, 1, 1].

pub mod efficientnet_lite0;
pub mod layers;
pub mod preprocess;
pub mod small_convnet;
pub mod vgg16;

use burn::tensor::activation::{relu, relu6};
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::weights::WeightSet;
use layers::{as_map, as_vector, max_pool_2x2, Conv, Dense};
pub use preprocess::Preprocessing;

/// The networks ConvLens knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Vgg16,
    SmallConvnet,
    EfficientNetLite0,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [Self::Vgg16, Self::SmallConvnet, Self::EfficientNetLite0];

    /// The name used on the command line, in URLs and in weights metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vgg16 => "vgg16",
            Self::SmallConvnet => "small-convnet",
            Self::EfficientNetLite0 => "efficientnet-lite0",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| Error::UnknownModel(name.to_string()))
    }

    /// Input resolution (height, width) the network was trained at.
    pub fn input_size(self) -> usize {
        match self {
            Self::Vgg16 | Self::EfficientNetLite0 => 224,
            Self::SmallConvnet => 150,
        }
    }

    /// The layer Grad-CAM looks at unless told otherwise: the last conv before pooling.
    pub fn default_cam_layer(self) -> &'static str {
        match self {
            Self::Vgg16 => "block5_conv3",
            Self::SmallConvnet => "conv2d_4",
            Self::EfficientNetLite0 => "_conv_head",
        }
    }
}

/// What a layer is, for pickers and for checks such as "Grad-CAM needs a spatial layer".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    Pool,
    /// An EfficientNet MBConv block (expand, depthwise, project, skip).
    Block,
    Dense,
}

impl LayerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Conv => "conv",
            Self::Pool => "pool",
            Self::Block => "block",
            Self::Dense => "dense",
        }
    }

    /// Has a spatial map (H×W per channel) worth showing as a picture.
    pub fn is_spatial(self) -> bool {
        !matches!(self, Self::Dense)
    }
}

/// A named layer and the shape of its output for one image: [C, H, W] (dense: [C, 1, 1]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub name: String,
    pub kind: LayerKind,
    pub shape: [usize; 3],
}

/// One step of a network, borrowing the layer fields it uses. The models list their steps in
/// order; running them is written once, here.
pub(crate) enum Step<'a> {
    /// Conv + ReLU.
    ConvRelu(&'a Conv),
    /// Conv + ReLU6 (EfficientNet-Lite).
    ConvRelu6(&'a Conv),
    /// 2×2 max pooling.
    Pool,
    /// Global average pooling to [N, C, 1, 1].
    GlobalAvgPool,
    /// An MBConv block.
    Block(&'a efficientnet_lite0::MbConvBlock),
    /// Flatten (channels-first) if needed, dense, ReLU.
    DenseRelu(&'a Dense),
    /// Flatten if needed, dense, no activation (the logits).
    DenseLinear(&'a Dense),
}

impl Step<'_> {
    fn kind(&self) -> LayerKind {
        match self {
            Step::ConvRelu(_) | Step::ConvRelu6(_) => LayerKind::Conv,
            Step::Pool | Step::GlobalAvgPool => LayerKind::Pool,
            Step::Block(_) => LayerKind::Block,
            Step::DenseRelu(_) | Step::DenseLinear(_) => LayerKind::Dense,
        }
    }

    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Step::ConvRelu(conv) => relu(conv.forward(x)),
            Step::ConvRelu6(conv) => relu6(conv.forward(x)),
            Step::Pool => max_pool_2x2(x),
            Step::GlobalAvgPool => x.mean_dims(&[2, 3]),
            Step::Block(block) => block.forward(x),
            Step::DenseRelu(dense) => as_map(relu(dense.forward(as_vector(x)))),
            Step::DenseLinear(dense) => as_map(dense.forward(as_vector(x))),
        }
    }

    /// Output shape for an input of shape [C, H, W]; checks that the weights fit the input.
    fn out_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let conv_shape = |conv: &Conv| -> Result<[usize; 3]> {
            if conv.in_channels() != c {
                return Err(Error::weights(format!("a conv expects {} input channels but receives {c}", conv.in_channels())));
            }
            Ok([conv.out_channels(), conv.out_size(h), conv.out_size(w)])
        };
        match self {
            Step::ConvRelu(conv) | Step::ConvRelu6(conv) => conv_shape(conv),
            Step::Pool => Ok([c, h / 2, w / 2]),
            Step::GlobalAvgPool => Ok([c, 1, 1]),
            Step::Block(block) => block.out_shape([c, h, w]),
            Step::DenseRelu(dense) | Step::DenseLinear(dense) => {
                if dense.inputs() != c * h * w {
                    return Err(Error::weights(format!(
                        "a dense layer expects {} inputs but receives {c}×{h}×{w} = {} (weights for another input size or model?)",
                        dense.inputs(),
                        c * h * w
                    )));
                }
                Ok([dense.outputs(), 1, 1])
            }
        }
    }
}

/// The network bodies. Each lists its steps as (layer name, step).
pub(crate) enum Body {
    Vgg16(vgg16::Vgg16),
    SmallConvnet(small_convnet::SmallConvnet),
    EfficientNetLite0(efficientnet_lite0::EfficientNetLite0),
}

impl Body {
    fn steps(&self) -> Vec<(String, Step<'_>)> {
        match self {
            Body::Vgg16(m) => m.steps(),
            Body::SmallConvnet(m) => m.steps(),
            Body::EfficientNetLite0(m) => m.steps(),
        }
    }
}

/// A network with its weights on a device, ready to run.
pub struct Network {
    pub kind: ModelKind,
    pub preprocessing: Preprocessing,
    /// Class names, index-aligned with `class_logits`'s columns.
    pub labels: Vec<String>,
    /// Where the weights came from (metadata `origin`).
    pub origin: String,
    layers: Vec<LayerInfo>,
    body: Body,
    device: Device,
}

impl Network {
    /// Builds the network of the weights' model on `device` (use an autodiff device for the
    /// visualizations that need gradients). Consumes the weights: each host copy is freed as
    /// soon as its tensor is on the device.
    pub fn from_weights(mut weights: WeightSet, device: &Device) -> Result<Self> {
        let w = &mut weights;
        let body = match w.meta.model {
            ModelKind::Vgg16 => Body::Vgg16(vgg16::Vgg16::load(w, device)?),
            ModelKind::SmallConvnet => Body::SmallConvnet(small_convnet::SmallConvnet::load(w, device)?),
            ModelKind::EfficientNetLite0 => Body::EfficientNetLite0(efficientnet_lite0::EfficientNetLite0::load(w, device)?),
        };
        let meta = weights.meta;
        let size = meta.model.input_size();
        let mut shape = [3, size, size];
        let mut layers = Vec::new();
        for (name, step) in body.steps() {
            shape = step.out_shape(shape)?;
            layers.push(LayerInfo { name, kind: step.kind(), shape });
        }
        let network = Self {
            kind: meta.model,
            preprocessing: meta.preprocessing,
            labels: meta.labels,
            origin: meta.origin,
            layers,
            body,
            device: device.clone(),
        };
        let outputs = network.logit_count();
        if network.labels.len() != outputs {
            return Err(Error::weights(format!("the metadata lists {} labels but the network has {outputs} outputs", network.labels.len())));
        }
        Ok(network)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every named layer, input to output. The last one produces the logits.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Input resolution (square).
    pub fn input_size(&self) -> usize {
        self.kind.input_size()
    }

    /// The position of `name` in `layers()`, or an error listing the layers.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers.iter().position(|l| l.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
            Error::Layer(format!("unknown layer '{name}' for {}; its layers are: {}", self.kind.name(), names.join(", ")))
        })
    }

    pub fn layer(&self, name: &str) -> Result<&LayerInfo> {
        Ok(&self.layers[self.layer_index(name)?])
    }

    /// Number of classes `class_logits` returns.
    pub fn logit_count(&self) -> usize {
        match self.kind {
            ModelKind::SmallConvnet => 2,
            _ => self.layers.last().map_or(0, |l| l.shape[0]),
        }
    }

    /// 0–255 RGB pixels [N, 3, S, S] -> activation at `layer` [N, C, H, W].
    pub fn forward_until(&self, pixels: Tensor<4>, layer: &str) -> Result<Tensor<4>> {
        let stop = self.layer_index(layer)?;
        let mut last = None;
        self.forward_visit(pixels, stop, |i, x| {
            if i == stop {
                last = Some(x.clone());
            }
        });
        last.ok_or_else(|| Error::Layer(format!("layer '{layer}' was not reached")))
    }

    /// Activations at several layers from one forward pass, in the order asked.
    pub fn forward_many(&self, pixels: Tensor<4>, names: &[&str]) -> Result<Vec<Tensor<4>>> {
        let indices = names.iter().map(|n| self.layer_index(n)).collect::<Result<Vec<_>>>()?;
        let mut found: Vec<Option<Tensor<4>>> = vec![None; indices.len()];
        self.forward_visit(pixels, indices.iter().copied().max().unwrap_or(0), |i, x| {
            for (slot, &wanted) in found.iter_mut().zip(&indices) {
                if wanted == i {
                    *slot = Some(x.clone());
                }
            }
        });
        Ok(found.into_iter().flatten().collect())
    }

    /// Runs preprocessing and layers 0..=stop, showing each layer's output to `visit`.
    fn forward_visit(&self, pixels: Tensor<4>, stop: usize, visit: impl FnMut(usize, &Tensor<4>)) {
        self.continue_visit(self.preprocess(pixels), None, stop, visit);
    }

    /// 0–255 RGB pixels -> what the first layer takes (the model's normalization).
    pub(crate) fn preprocess(&self, pixels: Tensor<4>) -> Tensor<4> {
        self.preprocessing.apply(pixels, &self.device)
    }

    /// Runs the layers after `from` (a layer index; None: from the preprocessed pixels) up to
    /// `stop` on `x`, the activation at `from`, handing each layer's output to `visit`.
    pub(crate) fn continue_visit(&self, mut x: Tensor<4>, from: Option<usize>, stop: usize, mut visit: impl FnMut(usize, &Tensor<4>)) {
        let first = from.map_or(0, |i| i + 1);
        for (i, (_, step)) in self.body.steps().iter().enumerate().take(stop + 1).skip(first) {
            x = step.run(x);
            visit(i, &x);
        }
    }

    /// Activation at `layer` -> class logits [N, classes] (softmax of them gives the probabilities).
    pub fn forward_from(&self, activation: Tensor<4>, layer: &str) -> Result<Tensor<2>> {
        let start = self.layer_index(layer)?;
        let mut x = activation;
        for (_, step) in self.body.steps().iter().skip(start + 1) {
            x = step.run(x);
        }
        Ok(self.class_logits(as_vector(x)))
    }

    /// The whole network: pixels -> class logits [N, classes].
    pub fn forward(&self, pixels: Tensor<4>) -> Result<Tensor<2>> {
        let last = self.layers.last().map(|l| l.name.clone()).unwrap_or_default();
        let out = self.forward_until(pixels, &last)?;
        Ok(self.class_logits(as_vector(out)))
    }

    /// The book's convnet ends in one sigmoid unit z = "dog". As two logits [−z/2, z/2], softmax
    /// gives exactly (cat = 1 − σ(z), dog = σ(z)), so every model has softmax class scores.
    fn class_logits(&self, out: Tensor<2>) -> Tensor<2> {
        match self.kind {
            ModelKind::SmallConvnet => {
                let half = out.mul_scalar(0.5);
                Tensor::cat(vec![half.clone().neg(), half], 1)
            }
            _ => out,
        }
    }
}
