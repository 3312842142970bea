//! Opening a model file: any supported file, recognised by its content (never its name), becomes
//! a `Network`. A file with its own architecture (Keras `.keras`, whole-model `.h5`) is built
//! from it; weights without one (ConvLens `.safetensors`, state dicts, Keras weight files) go to
//! the catalogue entry they belong to (named by the user, else recognised from their keys).

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::formats::keras_zip::{KerasModel, KerasWeights};
use crate::formats::onnx::OnnxModel;
use crate::formats::{self, Contents, WeightSet};
use crate::graph::{keras, onnx, Graph};
use crate::models::{self, BuiltIn, CATALOGUE};
use crate::network::{ModelInfo, Network};
use crate::preprocess::Preprocessing;

/// What the user said about a file; everything optional. A named `model` is a demand: weights
/// that are not that built-in's are refused (a `.keras` file, never a built-in's, opens as itself).
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// A built-in to read the weights as (needed only when they cannot be recognised).
    pub model: Option<String>,
    /// Preprocessing instead of the file's (or the built-in's) own.
    pub preprocessing: Option<Preprocessing>,
    /// Input size [height, width] for a model that leaves it open (default 224×224).
    pub input_hw: Option<[usize; 2]>,
    /// Class names instead of the file's (one per class).
    pub labels: Option<Vec<String>>,
    /// Files given together with the model, by name (an ONNX model's external-data file).
    pub companions: Vec<(String, Vec<u8>)>,
}

impl OpenOptions {
    /// A companion file by the name a model refers to it (directories ignored on both sides).
    fn companion(&self, name: &str) -> Option<&[u8]> {
        let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
        self.companions.iter().find(|(n, _)| base(n) == base(name)).map(|(_, b)| b.as_slice())
    }
}

/// The file's bytes as a network on `device`.
pub fn open(bytes: &[u8], options: &OpenOptions, device: &Device) -> Result<Network> {
    let contents = formats::read_with(bytes, &|name| options.companion(name))?;
    let named = options.model.as_deref().map(models::find).transpose()?;
    let net = match (contents, named) {
        (Contents::Onnx(model), None) => onnx_network(model, options, device)?,
        // A .keras file is never a built-in's weights file: it is always its own model.
        (Contents::KerasModel(model), _) if matches!(model.weights, KerasWeights::ByPath(_)) => keras_network(model, options, device)?,
        (Contents::KerasModel(model), None) => keras_network(model, options, device)?,
        // A whole-model .h5 named as a built-in (the book's `cats_and_dogs_small_2.h5` as
        // small-convnet, with its cat/dog labels) is read as that built-in, or refused.
        (contents, named) => return open_weights(weights_for(contents, named)?, options, device),
    };
    with_labels(net, options)
}

/// The built-in network of weights in ConvLens's layout (their metadata names it), with the
/// options' preprocessing and labels (the model name in `options` is not consulted).
pub fn open_weights(mut weights: WeightSet, options: &OpenOptions, device: &Device) -> Result<Network> {
    if let Some(p) = options.preprocessing {
        weights.meta.preprocessing = p;
    }
    let net = models::find(&weights.meta.model)?.network(weights, device)?;
    with_labels(net, options)
}

fn with_labels(mut net: Network, options: &OpenOptions) -> Result<Network> {
    if let Some(labels) = &options.labels {
        net.set_labels(labels.clone())?;
    }
    Ok(net)
}

/// A Keras model built from its own architecture. Keras models preprocess in their own layers
/// (Rescaling, Normalization) or not at all, so the default is raw pixels.
fn keras_network(model: KerasModel, options: &OpenOptions, device: &Device) -> Result<Network> {
    let origin = model.origin.clone();
    let built = keras::build(model, options.input_hw.unwrap_or([224, 224]), device)?;
    from_file(built.graph, built.name, origin, options.preprocessing.unwrap_or(Preprocessing::Raw), device)
}

/// An ONNX model built from its graph. PyTorch exports take the photo as torchvision normalizes
/// it, so that is the default; the user picks another where the model was trained otherwise.
fn onnx_network(model: OnnxModel, options: &OpenOptions, device: &Device) -> Result<Network> {
    let origin = format!("ONNX opset {}{}", model.opset, if model.producer.is_empty() { String::new() } else { format!(", {}", model.producer) });
    let built = onnx::build(model, options.input_hw.unwrap_or([224, 224]), device)?;
    from_file(built.graph, built.name, origin, options.preprocessing.unwrap_or(Preprocessing::Torch), device)
}

/// A network whose architecture came from its file: ImageNet's labels for 1000 classes, else
/// numbered ones; default layers chosen by the network.
fn from_file(graph: Graph, name: String, origin: String, preprocessing: Preprocessing, device: &Device) -> Result<Network> {
    let classes = graph.class_count();
    let info = ModelInfo {
        title: name.clone(),
        name,
        from_file: true,
        preprocessing,
        labels: if classes == 1000 { models::imagenet_labels() } else { Vec::new() },
        origin,
        default_cam_layer: None,
        default_filter_layer: None,
    };
    Network::new(graph, info, device)
}

/// Weights in ConvLens's layout for a built-in (given, or recognised from the file).
fn weights_for(contents: Contents, named: Option<&'static BuiltIn>) -> Result<WeightSet> {
    let set = match contents {
        Contents::Ours(set) => set,
        Contents::StateDict(tensors) => recognise(named, "PyTorch state dict", |m| (m.from_state_dict)(&tensors))?,
        Contents::KerasWeights(layers) => recognise(named, "Keras weights file", |m| (m.from_keras)(&layers))?,
        Contents::KerasModel(model) => match model.weights {
            KerasWeights::ByLayer(layers) => recognise(named, "Keras model", |m| (m.from_keras)(&layers))?,
            KerasWeights::ByPath(_) => return Err(Error::weights("a .keras file carries its own architecture: open it as it is, not as a built-in")),
        },
        Contents::Onnx(_) => return Err(Error::weights("an ONNX file carries its own architecture: open it as it is, not as a built-in")),
    };
    if let Some(m) = named.filter(|m| m.name != set.meta.model) {
        return Err(Error::weights(format!("this file holds {} weights, not {}", set.meta.model, m.name)));
    }
    Ok(set)
}

/// The named built-in's reading of a file, or the first built-in that recognises it.
fn recognise(named: Option<&'static BuiltIn>, what: &str, read: impl Fn(&BuiltIn) -> Option<Result<WeightSet>>) -> Result<WeightSet> {
    match named {
        Some(m) => read(m).unwrap_or_else(|| Err(Error::weights(format!("this {what} does not hold {}", m.title)))),
        None => CATALOGUE.iter().find_map(|m| read(m)).unwrap_or_else(|| {
            let names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
            Err(Error::weights(format!(
                "this {what} matches none of the built-in networks ({}); a model with its architecture (.keras, or an .h5 from model.save) opens on its own",
                names.join(", ")
            )))
        }),
    }
}

/// Reads `bytes` as weights for the built-in `model`, whatever supported format they are in
/// (for `convlens convert` and the tests).
pub fn import(bytes: &[u8], model: &str) -> Result<WeightSet> {
    weights_for(formats::read(bytes)?, Some(models::find(model)?))
}
