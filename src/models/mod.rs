//! The catalogue of built-in networks. Everything about one built-in lives in its own file: its
//! graph (built from weights in ConvLens's key layout), input size, preprocessing, labels, default
//! layers, and the foreign key layouts it is read from (and how such a file is recognised as it).
//! Adding a built-in is one new file and one line in `CATALOGUE`.

pub mod efficientnet_lite0;
pub mod keymap;
pub mod small_convnet;
pub mod vgg16;

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::formats::keras_h5::KerasLayer;
use crate::formats::raw::RawTensor;
use crate::formats::WeightSet;
use crate::graph::Graph;
use crate::network::{ModelInfo, Network};
use crate::preprocess::Preprocessing;

/// One built-in network.
#[derive(serde::Serialize)]
pub struct BuiltIn {
    /// The name used on the command line, in URLs and in weights metadata.
    pub name: &'static str,
    /// For people.
    pub title: &'static str,
    /// Square input resolution the network was trained at.
    pub input_size: usize,
    pub default_cam_layer: &'static str,
    pub default_filter_layer: &'static str,
    #[serde(skip)]
    pub labels: fn() -> Vec<String>,
    /// The graph, from weights in ConvLens's key layout (consumed as they go to the device).
    #[serde(skip)]
    pub build: fn(&mut WeightSet, &Device) -> Result<Graph>,
    /// A PyTorch state dict (`.pth` / foreign `.safetensors`) of this network, if it is one.
    #[serde(skip)]
    pub from_state_dict: fn(&[RawTensor]) -> Option<Result<WeightSet>>,
    /// Keras `.h5` weights of this network, if they are.
    #[serde(skip)]
    pub from_keras: fn(&[KerasLayer]) -> Option<Result<WeightSet>>,
    /// The bundled weights file under `weights/`, if any.
    pub bundled: Option<&'static str>,
    /// What to tell a user who has no weights for it.
    pub weights_hint: &'static str,
}

/// Every built-in, in the order menus show them.
pub const CATALOGUE: [&BuiltIn; 3] = [&efficientnet_lite0::MODEL, &vgg16::MODEL, &small_convnet::MODEL];

/// The built-in called `name`.
pub fn find(name: &str) -> Result<&'static BuiltIn> {
    CATALOGUE.into_iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
        Error::UnknownModel(format!("'{name}' (built-ins: {}; a Keras .keras or .h5 model needs no --model)", names.join(", ")))
    })
}

impl BuiltIn {
    /// The network of `weights` (in our layout) on `device`.
    pub fn network(&self, mut weights: WeightSet, device: &Device) -> Result<Network> {
        let graph = (self.build)(&mut weights, device)?;
        let labels = if weights.meta.labels.is_empty() { (self.labels)() } else { weights.meta.labels };
        let info = ModelInfo {
            name: self.name.to_string(),
            title: self.title.to_string(),
            from_file: false,
            preprocessing: weights.meta.preprocessing,
            labels,
            origin: weights.meta.origin,
            default_cam_layer: Some(self.default_cam_layer.to_string()),
            default_filter_layer: Some(self.default_filter_layer.to_string()),
        };
        Network::new(graph, info, device)
    }

    /// Fresh metadata for weights of this network read from a foreign file.
    pub fn meta(&self, preprocessing: Preprocessing, origin: &str) -> crate::formats::Meta {
        crate::formats::Meta { model: self.name.to_string(), preprocessing, origin: origin.to_string(), labels: (self.labels)() }
    }
}

/// The 1000 ImageNet class names, index-aligned with the classifiers' outputs.
pub fn imagenet_labels() -> Vec<String> {
    serde_json::from_str(include_str!("../../weights/imagenet_labels.json")).unwrap_or_default()
}

impl Network {
    /// The built-in network that weights in ConvLens's layout (their metadata names it) belong
    /// to, on `device` (use an autodiff device for the visualizations that need gradients).
    /// Consumes the weights: each host copy is freed as soon as its tensor is on the device.
    pub fn from_weights(weights: WeightSet, device: &Device) -> Result<Network> {
        find(&weights.meta.model)?.network(weights, device)
    }
}
