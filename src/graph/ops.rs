//! The operations a graph node can hold, each a few Burn tensor ops with its constant weights,
//! and each knowing the shape it produces (checked against its weights before anything runs).
//! Every value travels as [N, C, H, W]; vectors (after Flatten, Dense, global pooling) as
//! [N, C, 1, 1], so one tensor type flows through the executor and autodiff follows every op.

use burn::tensor::activation::{elu, gelu, gelu_approximate, leaky_relu, prelu, relu, selu, sigmoid, silu, softmax, softplus, tanh};
use burn::tensor::module::{avg_pool2d, conv2d, conv_transpose2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::host::{Epilogue, Prepared};
use super::{depthwise, pointwise, winograd};
use crate::error::{Error, Result};
use crate::formats::raw::HostTensor;

/// A [C, H, W] shape for one image.
pub type Shape = [usize; 3];

fn bad(msg: impl Into<String>) -> Error {
    Error::weights(msg)
}

/// How a convolution or pooling window pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding (Keras "valid").
    Valid,
    /// Symmetric (k − 1)/2 padding (torch `padding=1` for 3×3; Keras "same" at stride 1).
    Same,
    /// TensorFlow / Keras "same": total padding from the input size, the odd pixel after (a
    /// stride-2 window on an even size pads 0 before and 1 after).
    TfSame,
    /// Fixed (before, after) pixels for height and width (ONNX `pads`; PyTorch's asymmetric and
    /// ceil-mode windows).
    Explicit([(usize, usize); 2]),
}

impl Padding {
    /// Padding (before, after) of spatial dimension `axis` (0: height, 1: width) of `size` for a
    /// window of effective extent `k` moving by `stride`.
    pub fn pads(self, axis: usize, size: usize, k: usize, stride: usize) -> (usize, usize) {
        match self {
            Padding::Explicit(pairs) => pairs[axis.min(1)],
            Padding::Valid => (0, 0),
            Padding::Same => ((k - 1) / 2, (k - 1) / 2),
            Padding::TfSame => {
                let out = size.div_ceil(stride.max(1));
                let total = ((out.max(1) - 1) * stride + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
        }
    }

    /// Output size of one dimension, or an error when the window does not fit.
    fn out_size(self, axis: usize, size: usize, k: usize, stride: usize, what: &str) -> Result<usize> {
        let (a, b) = self.pads(axis, size, k, stride);
        let padded = size + a + b;
        if padded < k || stride == 0 {
            return Err(bad(format!("{what}: a window of {k} pixels does not fit an input of {size} (weights for a larger input, or a forged file?)")));
        }
        Ok((padded - k) / stride + 1)
    }
}

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    Linear,
    Relu,
    Relu6,
    /// Keras `ReLU(max_value, negative_slope, threshold)`: x > t → min(x, max), else slope·(x − t).
    ReluWith {
        max: Option<f32>,
        slope: f32,
        threshold: f32,
    },
    LeakyRelu(f32),
    Elu(f32),
    Selu,
    Sigmoid,
    /// clamp(alpha · x + beta, 0, 1) (Keras 3 and PyTorch: alpha 1/6, beta 1/2; ONNX's default 0.2).
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// clamp(x, min, max) (ONNX Clip; ReLU6 is Clip(0, 6)).
    Clip {
        min: f32,
        max: f32,
    },
    /// x · relu6(x + 3) / 6.
    HardSwish,
    Tanh,
    Swish,
    Gelu,
    /// GELU with the tanh approximation.
    GeluTanh,
    /// The error function (exporters spell GELU as x · (1 + erf(x / √2)) / 2).
    Erf,
    Softplus,
    /// Softmax over the channels.
    Softmax,
}

/// `x` clamped to [min, max] (NaN stays NaN). Not `Tensor::clamp`: flex runs that as `f32::clamp`
/// per element, which does not vectorize, where its `clamp_min` and `clamp_max` do. EfficientNet-
/// Lite0's ReLU6s took a fifth of its forward in wasm that way; two passes take 3 %.
fn clamp(x: Tensor<4>, min: f32, max: f32) -> Tensor<4> {
    x.clamp_min(min).clamp_max(max)
}

/// Keras's (and Burn's) hard sigmoid, clamp(αx + β, 0, 1), on the clamp above.
fn hard_sigmoid(x: Tensor<4>, alpha: f32, beta: f32) -> Tensor<4> {
    clamp(x.mul_scalar(alpha).add_scalar(beta), 0.0, 1.0)
}

impl Act {
    /// The activation as a clamp's (lo, hi), when it is one: our conv kernels then apply it as
    /// they store (`host::Epilogue`); other activations follow as tensor ops.
    pub fn as_clamp(self) -> Option<(f32, f32)> {
        match self {
            Act::Relu => Some((0.0, f32::INFINITY)),
            Act::Relu6 => Some((0.0, 6.0)),
            Act::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }

    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        // A forward that records no backward (predictions, activations, the layers before
        // Grad-CAM's tap) runs its activations on the inner backend: Burn's autodiff computes a
        // clamp (ReLU6, Clip, hard sigmoid) as two comparisons and two masked fills, where flex
        // makes one pass per bound (they were a fifth of EfficientNet-Lite0's forward).
        if x.is_autodiff() && !x.is_tracked() {
            return self.compute(x.without_autodiff()).autodiff();
        }
        self.compute(x)
    }

    fn compute(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Act::Linear => x,
            Act::Relu => relu(x),
            Act::Relu6 => clamp(x, 0.0, 6.0),
            Act::ReluWith { max, slope, threshold } => {
                // Keras 3's `relu` exactly: the positive part (masked at the threshold, or a
                // ReLU), clipped to [0, max], minus slope · relu(threshold − x).
                let negative = relu(x.clone().neg().add_scalar(threshold));
                let positive = if threshold != 0.0 { x.clone() * x.greater_elem(threshold).float() } else { relu(x) };
                let positive = match max {
                    Some(m) => clamp(positive, 0.0, m),
                    None => positive,
                };
                if slope != 0.0 {
                    positive - negative.mul_scalar(slope)
                } else {
                    positive
                }
            }
            Act::LeakyRelu(slope) => leaky_relu(x, slope as f64),
            Act::Elu(alpha) => elu(x, alpha as f64),
            Act::Selu => selu(x),
            Act::Sigmoid => sigmoid(x),
            Act::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta),
            Act::Clip { min, max } => clamp(x, min, max),
            Act::HardSwish => x.clone() * hard_sigmoid(x, 1.0 / 6.0, 0.5),
            Act::Tanh => tanh(x),
            Act::Swish => silu(x),
            Act::Gelu => gelu(x),
            Act::GeluTanh => gelu_approximate(x),
            Act::Erf => x.erf(),
            Act::Softplus => softplus(x, 1.0),
            Act::Softmax => softmax(x, 1),
        }
    }
}

/// A 2-D convolution with optional bias. Weight: [out, in / groups, kh, kw] (torch OIHW).
#[derive(Debug, Clone)]
pub struct Conv {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub padding: Padding,
    /// The weights as our kernels read them, made on the first forward off the tape on the CPU.
    pub host: Prepared<HostWeights>,
}

impl Conv {
    /// A conv from host values, its shapes checked (bias length, groups dividing the channels).
    pub fn new(
        weight: HostTensor,
        bias: Option<HostTensor>,
        stride: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        padding: Padding,
        device: &Device,
    ) -> Result<Self> {
        let (shape, values) = weight;
        let [o, i, kh, kw] = shape[..] else {
            return Err(bad(format!("a conv kernel needs 4 dimensions, found shape {shape:?}")));
        };
        if o == 0 || i == 0 || kh == 0 || kw == 0 || groups == 0 || o % groups != 0 || stride.contains(&0) || dilation.contains(&0) {
            return Err(bad(format!(
                "a conv kernel of shape {shape:?} with {groups} groups, stride {stride:?}, dilation {dilation:?} is not a valid convolution"
            )));
        }
        let bias = match bias {
            Some((s, v)) if s == [o] => Some(Tensor::from_data(TensorData::new(v, [o]), device)),
            Some((s, _)) => return Err(bad(format!("a conv with {o} filters has a bias of shape {s:?}"))),
            None => None,
        };
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(values, [o, i, kh, kw]), device),
            bias,
            stride,
            dilation,
            groups,
            padding,
            host: Default::default(),
        })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.groups
    }

    /// Effective kernel extent (height, width) with dilation.
    fn extent(&self) -> [usize; 2] {
        let [_, _, kh, kw] = self.weight.dims();
        [(kh - 1) * self.dilation[0] + 1, (kw - 1) * self.dilation[1] + 1]
    }

    fn out_shape(&self, [c, h, w]: Shape) -> Result<Shape> {
        if c != self.in_channels() {
            return Err(bad(format!("a conv expects {} input channels but receives {c}", self.in_channels())));
        }
        let [eh, ew] = self.extent();
        Ok([self.out_channels(), self.padding.out_size(0, h, eh, self.stride[0], "a conv")?, self.padding.out_size(1, w, ew, self.stride[1], "a conv")?])
    }

    /// [N, in, H, W] -> [N, out, H', W']
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, Act::Linear)
    }

    /// `act` of `forward`; off the tape on the CPU, our kernels apply a clamp `act` as they store.
    pub fn forward_then(&self, x: Tensor<4>, act: Act) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [eh, ew] = self.extent();
        let pads = [self.padding.pads(0, h, eh, self.stride[0]), self.padding.pads(1, w, ew, self.stride[1])];
        let options = ConvOptions::new_with_padding(self.stride, pads, self.dilation, self.groups);
        if !x.is_tracked() && crate::backend::is_cpu(&x.device()) {
            return self.forward_on_host(x, pads, options, act);
        }
        act.apply(conv2d(x, self.weight.clone(), self.bias.clone(), options))
    }

    /// One filter per input channel (EfficientNet's, MobileNet's).
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.weight.dims()[1] == 1 && self.out_channels() == self.groups
    }

    /// `forward_then` of a conv that records nothing, on flex, by a kernel of ours where it beats
    /// flex's own: Winograd for 3×3 stride-1 convs (`winograd`), channels as lanes for depthwise
    /// convs on small maps (`depthwise`), a product and one parallel pass for bias and clamp for
    /// 1×1 convs (`pointwise`). They read the host values (flex's tensors live in host memory).
    /// Falls back to flex's conv where that is the faster one, or for values not f32.
    fn forward_on_host(&self, x: Tensor<4>, pads: [(usize, usize); 2], options: ConvOptions<2>, act: Act) -> Tensor<4> {
        let flex = |x: Tensor<4>| act.apply(conv2d(x, self.weight.clone(), self.bias.clone(), options.clone()));
        let [n, c, h, w] = x.dims();
        let [k, _, kh, kw] = self.weight.dims();
        let Ok([_, oh, ow]) = self.out_shape([c, h, w]) else { return flex(x) };
        let output = [oh, ow];
        let pad_before = [pads[0].0, pads[1].0];
        let kernel = if winograd::applies([kh, kw], self.stride, self.dilation, self.groups, [c, k], output) {
            HostKernel::Winograd
        } else if self.is_depthwise() && oh * ow <= depthwise::MAX_PIXELS {
            HostKernel::Depthwise
        } else if pointwise::applies([kh, kw], self.stride, self.groups, pads) {
            HostKernel::Pointwise
        } else {
            return flex(x);
        };
        let host = |t: TensorData| t.try_into_vec::<f32>().ok();
        let prepared = self.host.get_or_make(|| {
            let values = host(self.weight.clone().without_autodiff().into_data())?;
            let bias = match &self.bias {
                Some(b) => Some(host(b.clone().without_autodiff().into_data())?),
                None => None,
            };
            let weights = match kernel {
                HostKernel::Winograd => KernelWeights::Winograd(winograd::Filters::new(&values, c, k)),
                HostKernel::Depthwise => KernelWeights::Depthwise(values),
                HostKernel::Pointwise => KernelWeights::Pointwise(values),
            };
            Some(HostWeights { weights, bias })
        });
        // (A conv's kernel follows from its weights' shape, so one made for another is not expected.)
        let Some(prepared) = prepared.filter(|p| p.weights.kernel() == kernel) else { return flex(x) };
        let clamp = act.as_clamp();
        let epilogue = Epilogue { bias: prepared.bias.as_deref(), clamp };
        let device = x.device().without_autodiff();
        let data = x.without_autodiff().into_data();
        let Ok(values) = data.as_slice::<f32>() else { return flex(Tensor::from_data(data, &device).autodiff()) };
        let values = match &prepared.weights {
            KernelWeights::Winograd(filters) => {
                let geometry = winograd::Geometry { input: [h, w], pad_before, output };
                winograd::forward(values, filters, &epilogue, &geometry)
            }
            KernelWeights::Depthwise(weight) => {
                let geometry =
                    depthwise::Geometry { channels: c, input: [h, w], kernel: [kh, kw], stride: self.stride, dilation: self.dilation, pad_before, output };
                depthwise::forward(values, weight, &epilogue, &geometry)
            }
            KernelWeights::Pointwise(weight) => pointwise::forward(values, weight, [c, k], h * w, &epilogue),
        };
        let y = Tensor::from_data(TensorData::new(values, [n, k, oh, ow]), &device).autodiff();
        if clamp.is_some() {
            y
        } else {
            act.apply(y)
        }
    }

    /// Folds an inference-mode batch norm that follows this bias-free conv into it, on the host:
    /// w' = w · γ/√(var + ε), b' = β − mean · that scale. Exact up to rounding, one op less.
    pub fn fold_batch_norm(weight: HostTensor, norm: &BatchNorm) -> Result<(HostTensor, HostTensor)> {
        let (shape, mut values) = weight;
        let channels = shape.first().copied().unwrap_or(0);
        if norm.scale.len() != channels {
            return Err(bad(format!("a batch norm of {} channels follows a conv of {channels} filters", norm.scale.len())));
        }
        let per = values.len() / channels.max(1);
        for (c, chunk) in values.chunks_mut(per.max(1)).enumerate().take(channels) {
            chunk.iter_mut().for_each(|v| *v *= norm.scale[c]);
        }
        Ok(((shape, values), (vec![channels], norm.shift.clone())))
    }
}

/// Which of our kernels computes a conv off the tape (`Conv::forward_on_host`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostKernel {
    Winograd,
    Depthwise,
    Pointwise,
}

/// A conv's weights and bias as its host kernel reads them: Winograd's filters (four times the
/// size of the 3×3 weights: VGG16's 59 MB of conv weights, 235 MB more; 10–20 ms to make for a
/// 512-channel layer natively), or the values themselves (1×1 and depthwise convs: one more copy).
pub struct HostWeights {
    weights: KernelWeights,
    bias: Option<Vec<f32>>,
}

enum KernelWeights {
    Winograd(winograd::Filters),
    Depthwise(Vec<f32>),
    Pointwise(Vec<f32>),
}

impl KernelWeights {
    fn kernel(&self) -> HostKernel {
        match self {
            KernelWeights::Winograd(_) => HostKernel::Winograd,
            KernelWeights::Depthwise(_) => HostKernel::Depthwise,
            KernelWeights::Pointwise(_) => HostKernel::Pointwise,
        }
    }
}

/// A transposed convolution (ONNX ConvTranspose). Weight: [in, out / groups, kh, kw]. Computed as
/// Burn's unpadded transposed conv, then cropped by `pads` and grown by `output_padding` (rows
/// that only the bias reaches), so asymmetric padding needs no special case.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<4>>,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// (before, after) for height and width.
    pub pads: [(usize, usize); 2],
    pub output_padding: [usize; 2],
}

impl ConvTranspose {
    fn full(&self, size: usize, axis: usize) -> usize {
        let k = self.weight.dims()[2 + axis];
        self.stride[axis] * (size.max(1) - 1) + self.dilation[axis] * (k - 1) + 1
    }

    fn out_shape(&self, [c, h, w]: Shape) -> Result<Shape> {
        let [i, o, _, _] = self.weight.dims();
        if c != i {
            return Err(bad(format!("a transposed conv expects {i} input channels but receives {c}")));
        }
        let size = |axis: usize, n: usize| {
            let (a, b) = self.pads[axis];
            (self.full(n, axis) + self.output_padding[axis]).checked_sub(a + b).filter(|&v| v > 0)
        };
        match (size(0, h), size(1, w)) {
            (Some(oh), Some(ow)) => Ok([o * self.groups, oh, ow]),
            _ => Err(bad("a transposed conv whose padding leaves nothing")),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let options = ConvTransposeOptions::new(self.stride, [0, 0], [0, 0], self.dilation, self.groups);
        let mut y = conv_transpose2d(x, self.weight.clone(), None, options);
        for (axis, n) in [(0, h), (1, w)] {
            let (full, (a, b)) = (self.full(n, axis), self.pads[axis]);
            let len = full + self.output_padding[axis] - a - b;
            let kept = len.min(full.saturating_sub(a));
            y = y.narrow(2 + axis, a, kept);
            if kept < len {
                let grow = if axis == 0 { [(0, len - kept), (0, 0)] } else { [(0, 0), (0, len - kept)] };
                y = y.pad(grow, burn::tensor::ops::PadMode::Constant(0.0));
            }
        }
        match &self.bias {
            Some(b) => y + b.clone(),
            None => y,
        }
    }
}

/// Batch-norm statistics reduced to a per-channel affine map: scale = γ/√(var + ε),
/// shift = β − mean · scale.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl BatchNorm {
    /// From γ (None: 1), β (None: 0), moving mean and variance; all of one length.
    pub fn new(gamma: Option<Vec<f32>>, beta: Option<Vec<f32>>, mean: Vec<f32>, var: Vec<f32>, eps: f32) -> Result<Self> {
        let n = mean.len();
        let gamma = gamma.unwrap_or_else(|| vec![1.0; n]);
        let beta = beta.unwrap_or_else(|| vec![0.0; n]);
        if gamma.len() != n || beta.len() != n || var.len() != n {
            return Err(bad(format!("batch-norm statistics of different lengths ({}, {}, {n}, {})", gamma.len(), beta.len(), var.len())));
        }
        if var.iter().any(|v| *v + eps <= 0.0) {
            return Err(bad("a batch norm has a negative variance"));
        }
        let scale: Vec<f32> = (0..n).map(|c| gamma[c] / (var[c] + eps).sqrt()).collect();
        let shift = (0..n).map(|c| beta[c] - mean[c] * scale[c]).collect();
        Ok(Self { scale, shift })
    }
}

/// x · scale + shift per channel (batch norms, Rescaling, Normalization); a single value
/// applies to every channel.
#[derive(Debug, Clone)]
pub struct Affine {
    scale: Tensor<4>,
    shift: Tensor<4>,
    channels: usize,
}

impl Affine {
    pub fn new(scale: Vec<f32>, shift: Vec<f32>, device: &Device) -> Result<Self> {
        let channels = scale.len().max(shift.len());
        let widen = |v: Vec<f32>, what: &str| match v.len() {
            1 => Ok(vec![v[0]; channels]),
            n if n == channels => Ok(v),
            n => Err(bad(format!("a per-channel {what} of {n} values for {channels} channels"))),
        };
        let (scale, shift) = (widen(scale, "scale")?, widen(shift, "shift")?);
        let tensor = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, channels, 1, 1]), device);
        Ok(Self { scale: tensor(scale), shift: tensor(shift), channels })
    }

    fn out_shape(&self, [c, h, w]: Shape) -> Result<Shape> {
        if self.channels != 1 && self.channels != c {
            return Err(bad(format!("a per-channel scale of {} values meets {c} channels", self.channels)));
        }
        Ok([c, h, w])
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        x * self.scale.clone() + self.shift.clone()
    }
}

/// Largest weight block a dense layer binds at once: WebGPU adapters often cap a storage binding
/// at 128 MiB, and VGG16's fc1 (25088 x 4096 f32) is 411 MB. 64 MiB leaves room everywhere.
const MAX_DENSE_BLOCK_BYTES: usize = 64 << 20;

/// A fully connected layer over the channels, weight [in, out], stored as column blocks of at
/// most 64 MiB each. On a spatial input it applies at every pixel (as Keras's Dense does).
#[derive(Debug, Clone)]
pub struct Dense {
    pub blocks: Vec<Tensor<2>>,
    pub bias: Option<Tensor<1>>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    /// From host values: weight [in, out], bias [out].
    pub fn new(weight: HostTensor, bias: Option<HostTensor>, device: &Device) -> Result<Self> {
        let (shape, values) = weight;
        let [inputs, outputs] = shape[..] else {
            return Err(bad(format!("a dense kernel should be a matrix, found shape {shape:?}")));
        };
        if inputs == 0 || outputs == 0 {
            return Err(bad(format!("a dense layer of shape {shape:?} has no units")));
        }
        let bias = match bias {
            Some((s, v)) if s == [outputs] => Some(Tensor::from_data(TensorData::new(v, [outputs]), device)),
            Some((s, _)) => return Err(bad(format!("a dense layer of {outputs} units has a bias of shape {s:?}"))),
            None => None,
        };
        let cols_per_block = (MAX_DENSE_BLOCK_BYTES / (4 * inputs)).clamp(1, outputs);
        let mut blocks = Vec::new();
        for start in (0..outputs).step_by(cols_per_block) {
            let end = (start + cols_per_block).min(outputs);
            let mut block = Vec::with_capacity(inputs * (end - start));
            for row in values.chunks_exact(outputs) {
                block.extend_from_slice(&row[start..end]);
            }
            blocks.push(Tensor::from_data(TensorData::new(block, [inputs, end - start]), device));
        }
        Ok(Self { blocks, bias, inputs, outputs })
    }

    fn out_shape(&self, [c, h, w]: Shape) -> Result<Shape> {
        if c != self.inputs {
            return Err(bad(format!("a dense layer expects {} inputs but receives {c} (weights for another input size or model?)", self.inputs)));
        }
        Ok([self.outputs, h, w])
    }

    /// [N, in] -> [N, out]
    fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        let parts: Vec<Tensor<2>> = self.blocks.iter().map(|b| x.clone().matmul(b.clone())).collect();
        let y = if parts.len() == 1 { parts.into_iter().next().unwrap_or(x) } else { Tensor::cat(parts, 1) };
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        }
    }

    /// [N, in, H, W] -> [N, out, H, W]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        if h * w == 1 {
            return self.matmul(x.reshape([n, c])).reshape([n, self.outputs, 1, 1]);
        }
        let rows = x.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
        self.matmul(rows).reshape([n, h, w, self.outputs]).permute([0, 3, 1, 2])
    }
}

/// A pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Padding,
    /// Average pooling divides by the whole window, padded pixels included (PyTorch's default);
    /// false: by the real pixels only (TensorFlow's and Keras's rule). Max pooling ignores it.
    pub count_padding: bool,
}

impl Window {
    fn out_shape(&self, [c, h, w]: Shape) -> Result<Shape> {
        if self.size.contains(&0) || self.stride.contains(&0) {
            return Err(bad(format!("a pooling window {:?} with stride {:?} is empty", self.size, self.stride)));
        }
        Ok([
            c,
            self.padding.out_size(0, h, self.size[0], self.stride[0], "a pooling window")?,
            self.padding.out_size(1, w, self.size[1], self.stride[1], "a pooling window")?,
        ])
    }

    fn pairs(&self, h: usize, w: usize) -> [(usize, usize); 2] {
        [self.padding.pads(0, h, self.size[0], self.stride[0]), self.padding.pads(1, w, self.size[1], self.stride[1])]
    }
}

/// How the inputs of a merge node combine (all of one shape, or broadcast from [C, 1, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Add,
    Subtract,
    Multiply,
    Divide,
    Average,
    Maximum,
    Minimum,
}

impl Merge {
    /// Two operands (broadcast where one has size 1 on a dimension); Average sums, the caller divides.
    fn apply(self, a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        match self {
            Merge::Add | Merge::Average => a + b,
            Merge::Subtract => a - b,
            Merge::Multiply => a * b,
            Merge::Divide => a / b,
            Merge::Maximum => a.max_pair(b),
            Merge::Minimum => a.min_pair(b),
        }
    }
}

/// The shape of an element-wise op's result: on each dimension the inputs agree or are 1 (a
/// per-channel vector over a map in squeeze-excite, a one-channel spatial gate).
fn broadcast(shapes: &[Shape]) -> Result<Shape> {
    let first = shapes.first().copied().unwrap_or([0, 0, 0]);
    let out = shapes.iter().fold(first, |m, s| [m[0].max(s[0]), m[1].max(s[1]), m[2].max(s[2])]);
    for s in shapes {
        if (0..3).any(|d| s[d] != out[d] && s[d] != 1) {
            return Err(bad(format!("combining values of shapes {shapes:?} element by element")));
        }
    }
    Ok(out)
}

/// What a node computes from its inputs. (The conv variants are larger than the others; a graph
/// holds a few dozen nodes, built once, so they stay unboxed.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    /// The (preprocessed) image.
    Input,
    Conv {
        conv: Conv,
        act: Act,
    },
    /// Depthwise (no bias) then pointwise conv, then the activation (Keras SeparableConv2D).
    Separable {
        depthwise: Conv,
        pointwise: Conv,
        act: Act,
    },
    Dense {
        dense: Dense,
        act: Act,
    },
    ConvTranspose(ConvTranspose),
    /// Batch norm, Rescaling, Normalization.
    Affine(Affine),
    /// Layer norm over the channels at each pixel (ConvNeXt's LayerNorm, ONNX LayerNormalization
    /// on a channels-last tensor), then a per-channel scale and shift.
    ChannelNorm {
        affine: Affine,
        eps: f32,
    },
    Activation(Act),
    /// x where x ≥ 0, else slope · x, with one slope per channel (or one for all).
    PRelu(Tensor<1>),
    MaxPool(Window),
    /// Average pooling (the window says whether padded pixels count).
    AvgPool(Window),
    GlobalAvgPool,
    GlobalMaxPool,
    /// Zero padding ((top, bottom), (left, right)).
    Pad([(usize, usize); 2]),
    /// Cropping ((top, bottom), (left, right)).
    Crop([(usize, usize); 2]),
    /// To a vector [C·H·W, 1, 1]; `channels_last` flattens in (H, W, C) order as Keras does,
    /// else (C, H, W) as torch does.
    Flatten {
        channels_last: bool,
    },
    /// Keras Reshape: the channels-last values laid out as `target` (rank 1: a vector; rank 3:
    /// H, W, C).
    Reshape(Vec<usize>),
    Merge(Merge),
    /// An element-wise op between the input and a constant broadcast over it ([1, C or 1, H or 1,
    /// W or 1]); `constant_first` puts the constant on the left (for Subtract and Divide).
    WithConstant {
        merge: Merge,
        constant: Tensor<4>,
        constant_first: bool,
    },
    /// Concatenation along the channels.
    Concat,
    /// Channels start..start + len (a split or slice along the channels).
    Channels {
        start: usize,
        len: usize,
    },
    /// ShuffleNet's channel shuffle: the channels seen as [groups, C / groups], transposed.
    ChannelShuffle(usize),
    /// The input unchanged (a name for another node's value).
    Identity,
}

/// What a layer is, for pickers and for the page's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Input,
    Conv,
    Dense,
    Norm,
    Activation,
    Pool,
    Merge,
    Reshape,
}

impl LayerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Conv => "conv",
            Self::Dense => "dense",
            Self::Norm => "norm",
            Self::Activation => "act",
            Self::Pool => "pool",
            Self::Merge => "merge",
            Self::Reshape => "reshape",
        }
    }
}

/// He-normal values (std √(2 / fan-in)) of `dims`, from `draw` (a standard normal source): the
/// re-initialization of a layer's weights for the model-randomization sanity check.
fn he_normal<const D: usize>(dims: [usize; D], fan_in: usize, draw: &mut dyn FnMut() -> f32, device: &Device) -> Tensor<D> {
    let std = (2.0 / fan_in.max(1) as f32).sqrt();
    let values: Vec<f32> = (0..dims.iter().product::<usize>()).map(|_| draw() * std).collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

impl Op {
    /// Whether the op ends in a ReLU (plain, capped or Keras's thresholded one without a negative
    /// slope): where guided backpropagation (Springenberg et al. 2015) also drops negative
    /// gradients.
    pub fn ends_in_relu(&self) -> bool {
        let relu = |act: &Act| matches!(act, Act::Relu | Act::Relu6) || matches!(act, Act::ReluWith { slope, .. } if *slope == 0.0);
        match self {
            Op::Conv { act, .. } | Op::Separable { act, .. } | Op::Dense { act, .. } | Op::Activation(act) => relu(act),
            _ => false,
        }
    }

    /// The same op with its learned weights re-initialized (He-normal, biases zero), as Adebayo et
    /// al. (2018) randomize a trained network; normalization and other ops are kept.
    pub fn reinitialized(&self, draw: &mut dyn FnMut() -> f32) -> Op {
        fn conv(c: &Conv, draw: &mut dyn FnMut() -> f32) -> Conv {
            let [o, i, kh, kw] = c.weight.dims();
            Conv {
                weight: he_normal([o, i, kh, kw], i * kh * kw, draw, &c.weight.device()),
                bias: c.bias.as_ref().map(|b| b.zeros_like()),
                host: Default::default(),
                ..c.clone()
            }
        }
        match self {
            Op::Conv { conv: c, act } => Op::Conv { conv: conv(c, draw), act: *act },
            Op::Separable { depthwise, pointwise, act } => Op::Separable { depthwise: conv(depthwise, draw), pointwise: conv(pointwise, draw), act: *act },
            Op::Dense { dense, act } => {
                let blocks = dense.blocks.iter().map(|b| he_normal(b.dims(), dense.inputs, draw, &b.device())).collect();
                Op::Dense { dense: Dense { blocks, bias: dense.bias.as_ref().map(|b| b.zeros_like()), ..dense.clone() }, act: *act }
            }
            Op::ConvTranspose(t) => {
                let [i, o, kh, kw] = t.weight.dims();
                let weight = he_normal([i, o, kh, kw], i * kh * kw, draw, &t.weight.device());
                Op::ConvTranspose(ConvTranspose { weight, bias: t.bias.as_ref().map(|b| b.zeros_like()), ..t.clone() })
            }
            other => other.clone(),
        }
    }

    pub fn kind(&self) -> LayerKind {
        match self {
            Op::Input => LayerKind::Input,
            Op::Conv { .. } | Op::Separable { .. } | Op::ConvTranspose(_) => LayerKind::Conv,
            Op::Dense { .. } => LayerKind::Dense,
            Op::Affine(_) | Op::WithConstant { .. } | Op::ChannelNorm { .. } => LayerKind::Norm,
            Op::Activation(_) | Op::PRelu(_) => LayerKind::Activation,
            Op::MaxPool(_) | Op::AvgPool(_) | Op::GlobalAvgPool | Op::GlobalMaxPool => LayerKind::Pool,
            Op::Merge(_) | Op::Concat => LayerKind::Merge,
            Op::Pad(_) | Op::Crop(_) | Op::Flatten { .. } | Op::Reshape(_) | Op::Identity | Op::Channels { .. } | Op::ChannelShuffle(_) => LayerKind::Reshape,
        }
    }

    /// How many inputs the op takes: Some(n) exactly, None two or more.
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input => Some(0),
            Op::Merge(_) | Op::Concat => None,
            _ => Some(1),
        }
    }

    /// The output shape for inputs of `shapes`, checking that weights and inputs fit.
    pub fn out_shape(&self, shapes: &[Shape]) -> Result<Shape> {
        let first = shapes.first().copied().unwrap_or([0, 0, 0]);
        let [c, h, w] = first;
        Ok(match self {
            Op::Input | Op::Activation(_) | Op::Identity => first,
            Op::PRelu(slope) => {
                let n = slope.dims()[0];
                if n != 1 && n != c {
                    return Err(bad(format!("a PRelu of {n} slopes meets {c} channels")));
                }
                first
            }
            Op::Conv { conv, .. } => conv.out_shape(first)?,
            Op::Separable { depthwise, pointwise, .. } => pointwise.out_shape(depthwise.out_shape(first)?)?,
            Op::Dense { dense, .. } => dense.out_shape(first)?,
            Op::ConvTranspose(t) => t.out_shape(first)?,
            Op::Affine(a) | Op::ChannelNorm { affine: a, .. } => a.out_shape(first)?,
            Op::MaxPool(win) | Op::AvgPool(win) => win.out_shape(first)?,
            Op::GlobalAvgPool | Op::GlobalMaxPool => [c, 1, 1],
            Op::Pad([(t, b), (l, r)]) => {
                let (ph, pw) = (h.checked_add(t + b), w.checked_add(l + r));
                match (ph, pw) {
                    (Some(ph), Some(pw)) if ph <= 1 << 16 && pw <= 1 << 16 => [c, ph, pw],
                    _ => return Err(bad("a padding larger than any image")),
                }
            }
            Op::Crop([(t, b), (l, r)]) => {
                if t.saturating_add(*b) >= h || l.saturating_add(*r) >= w {
                    return Err(bad(format!("a cropping of ({t}, {b}), ({l}, {r}) leaves nothing of a {h}×{w} map")));
                }
                [c, h - t - b, w - l - r]
            }
            Op::Flatten { .. } => [c * h * w, 1, 1],
            Op::Reshape(target) => {
                let total = c * h * w;
                let product: usize = target.iter().product();
                if product != total {
                    return Err(bad(format!("a reshape to {target:?} of {total} values")));
                }
                match target[..] {
                    [n] => [n, 1, 1],
                    [th, tw, tc] => [tc, th, tw],
                    _ => return Err(Error::invalid(format!("a reshape to {target:?}: ConvLens handles vectors and (H, W, C) maps"))),
                }
            }
            Op::Merge(_) => broadcast(shapes)?,
            Op::WithConstant { constant, .. } => {
                let [_, cc, ch, cw] = constant.dims();
                broadcast(&[first, [cc, ch, cw]])?
            }
            Op::Channels { start, len } => {
                if *len == 0 || start.checked_add(*len).is_none_or(|end| end > c) {
                    return Err(bad(format!("channels {start}..+{len} of {c}")));
                }
                [*len, h, w]
            }
            Op::ChannelShuffle(groups) => {
                if *groups == 0 || c % groups != 0 {
                    return Err(bad(format!("a shuffle of {c} channels in {groups} groups")));
                }
                first
            }
            Op::Concat => {
                if shapes.iter().any(|s| s[1] != h || s[2] != w) {
                    return Err(bad(format!("concatenating maps of different sizes {shapes:?}")));
                }
                [shapes.iter().map(|s| s[0]).sum(), h, w]
            }
        })
    }

    /// Runs the op on its inputs (as many as `arity` says; `Graph::add` checks that). Inputs are
    /// moved in, so a tensor read for the last time can be reused in place by the backend.
    pub fn forward(&self, inputs: Vec<Tensor<4>>) -> Result<Tensor<4>> {
        match self {
            Op::Merge(merge) => {
                let count = inputs.len();
                let mut it = inputs.into_iter();
                let first = it.next().ok_or_else(|| Error::Backend("a merge without inputs".into()))?;
                let y = it.fold(first, |a, b| merge.apply(a, b));
                Ok(if *merge == Merge::Average { y.div_scalar(count as f32) } else { y })
            }
            Op::Concat => Ok(Tensor::cat(inputs, 1)),
            _ => {
                let x = inputs.into_iter().next().ok_or_else(|| Error::Backend("an op without its input".into()))?;
                Ok(self.forward_one(x))
            }
        }
    }

    /// The ops of one input.
    fn forward_one(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        match self {
            Op::Input | Op::Identity | Op::Merge(_) | Op::Concat => x,
            Op::WithConstant { merge, constant, constant_first } => {
                if *constant_first {
                    merge.apply(constant.clone(), x)
                } else {
                    merge.apply(x, constant.clone())
                }
            }
            Op::Conv { conv, act } => conv.forward_then(x, *act),
            Op::Separable { depthwise, pointwise, act } => pointwise.forward_then(depthwise.forward(x), *act),
            Op::Dense { dense, act } => act.apply(dense.forward(x)),
            Op::ConvTranspose(t) => t.forward(x),
            Op::Affine(a) => a.forward(x),
            Op::ChannelNorm { affine, eps } => {
                let centred = x.clone() - x.mean_dim(1);
                let var = centred.clone().powi_scalar(2).mean_dim(1);
                affine.forward(centred / var.add_scalar(*eps).sqrt())
            }
            Op::Activation(act) => act.apply(x),
            Op::PRelu(slope) => prelu(x, slope.clone()),
            Op::MaxPool(win) => max_pool2d(x, MaxPoolOptions::new(win.size).with_stride(win.stride).with_padding_pairs(win.pairs(h, w))),
            Op::AvgPool(win) => {
                let options =
                    AvgPoolOptions::new(win.size).with_stride(win.stride).with_padding_pairs(win.pairs(h, w)).with_count_include_pad(win.count_padding);
                avg_pool2d(x, options)
            }
            Op::GlobalAvgPool => x.mean_dims(&[2, 3]),
            Op::GlobalMaxPool => x.max_dims(&[2, 3]),
            Op::Pad(pairs) => x.pad(*pairs, burn::tensor::ops::PadMode::Constant(0.0)),
            Op::Crop([(t, b), (l, r)]) => x.narrow(2, *t, h - t - b).narrow(3, *l, w - l - r),
            Op::Channels { start, len } => x.narrow(1, *start, *len),
            Op::ChannelShuffle(groups) => x.reshape([n, *groups, c / groups, h, w]).swap_dims(1, 2).reshape([n, c, h, w]),
            Op::Flatten { channels_last } => {
                let x = if *channels_last && h * w > 1 { x.permute([0, 2, 3, 1]) } else { x };
                x.reshape([n, c * h * w, 1, 1])
            }
            Op::Reshape(target) => {
                let flat = if h * w > 1 { x.permute([0, 2, 3, 1]) } else { x };
                match target[..] {
                    [th, tw, tc] => flat.reshape([n, th, tw, tc]).permute([0, 3, 1, 2]),
                    _ => flat.reshape([n, c * h * w, 1, 1]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untracked forward computes the activation off the tape and stays on the autodiff
    /// device; a tracked one keeps its gradient.
    #[test]
    fn activations_off_the_tape_give_the_same_values_and_keep_gradients() {
        let device = Device::flex().autodiff();
        let values = TensorData::new(vec![-1.0f32, 3.0, 7.0, 0.5], [1, 4, 1, 1]);
        for act in [Act::Relu6, Act::Clip { min: -0.5, max: 2.0 }, Act::HardSwish, Act::Relu] {
            let untracked = act.apply(Tensor::<4>::from_data(values.clone(), &device));
            assert!(untracked.is_autodiff(), "{act:?}");
            let x = Tensor::<4>::from_data(values.clone(), &device).require_grad();
            let tracked = act.apply(x.clone());
            assert_eq!(untracked.to_data().try_to_vec::<f32>().unwrap(), tracked.to_data().try_to_vec::<f32>().unwrap(), "{act:?}");
            assert!(x.grad(&tracked.sum().backward()).is_some(), "{act:?}");
        }
        let x = Tensor::<4>::from_data(values, &device).require_grad();
        let grad = x.grad(&Act::Relu6.apply(x.clone()).sum().backward()).unwrap();
        assert_eq!(grad.to_data().try_to_vec::<f32>().unwrap(), [0.0, 1.0, 0.0, 1.0]);
    }

    /// A conv that records nothing on the CPU goes through our kernels (Winograd for the 3×3 ones,
    /// channels as lanes for small depthwise ones) and gives what flex's conv gives on the tape,
    /// for TF's odd padding and Keras's "valid" too; the kept Winograd filters serve a second call.
    #[test]
    fn convs_off_the_tape_match_flex() {
        let device = Device::flex().autodiff();
        let values = |n: usize, seed: usize| (0..n).map(|i| (((i * 37 + seed * 11) % 29) as f32 - 14.0) / 14.0).collect::<Vec<f32>>();
        // (in, out, kernel, groups, padding, stride, activation): Winograd twice, depthwise, 1×1,
        // a stride-2 conv for flex; clamps the kernels apply as they store, and a swish after.
        for (ci, co, k, groups, padding, stride, act) in [
            (16, 24, 3, 1, Padding::TfSame, 1, Act::Relu),
            (20, 16, 3, 1, Padding::Valid, 1, Act::Linear),
            (16, 16, 3, 16, Padding::Same, 1, Act::Relu6),
            (16, 12, 1, 1, Padding::Valid, 1, Act::Clip { min: -0.3, max: 0.4 }),
            (12, 16, 1, 1, Padding::Same, 1, Act::Swish),
            (16, 16, 3, 1, Padding::TfSame, 2, Act::Relu6),
        ] {
            let weight = (vec![co, ci / groups, k, k], values(co * ci / groups * k * k, 1));
            let conv = Conv::new(weight, Some((vec![co], values(co, 2))), [stride; 2], [1, 1], groups, padding, &device).unwrap();
            let input = TensorData::new(values(2 * ci * 10 * 9, 3), [2, ci, 10, 9]);
            let x = Tensor::<4>::from_data(input.clone(), &device).require_grad();
            let tracked = conv.forward_then(x.clone(), act).into_data().try_into_vec::<f32>().unwrap();
            let scale = conv.forward(x).into_data().try_into_vec::<f32>().unwrap().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for call in 0..2 {
                let untracked = conv.forward_then(Tensor::<4>::from_data(input.clone(), &device), act);
                assert!(untracked.is_autodiff());
                let untracked = untracked.into_data().try_into_vec::<f32>().unwrap();
                assert_eq!(untracked.len(), tracked.len());
                let worst = untracked.iter().zip(&tracked).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst < 1e-5 * scale,
                    "{ci} → {co}, {k}×{k}, {groups} groups, {padding:?}, stride {stride}, {act:?}, call {call}: off by {worst} on values up to {scale}"
                );
            }
        }
    }

    #[test]
    fn tf_same_pads_the_odd_pixel_after() {
        assert_eq!(Padding::TfSame.pads(0, 224, 3, 2), (0, 1));
        assert_eq!(Padding::TfSame.pads(1, 7, 3, 1), (1, 1));
        assert_eq!(Padding::TfSame.pads(0, 5, 5, 2), (2, 2));
        assert_eq!(Padding::Same.pads(0, 9, 3, 1), (1, 1));
        assert_eq!(Padding::Explicit([(1, 0), (0, 1)]).pads(1, 9, 3, 1), (0, 1));
    }

    #[test]
    fn windows_larger_than_the_input_are_errors() {
        assert!(Padding::Valid.out_size(0, 2, 3, 1, "x").is_err());
        assert_eq!(Padding::Valid.out_size(0, 5, 3, 2, "x").unwrap(), 2);
    }

    #[test]
    fn merge_shapes_broadcast_where_a_side_is_one() {
        let op = Op::Merge(Merge::Multiply);
        assert_eq!(op.out_shape(&[[8, 4, 4], [8, 1, 1]]).unwrap(), [8, 4, 4]);
        assert!(op.out_shape(&[[8, 4, 4], [8, 2, 2]]).is_err());
        assert_eq!(op.out_shape(&[[8, 4, 4], [1, 4, 4]]).unwrap(), [8, 4, 4]);
        assert!(Op::Merge(Merge::Add).out_shape(&[[8, 4, 4], [4, 4, 4]]).is_err());
    }
}
