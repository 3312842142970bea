//! The book's cats-vs-dogs convnet (Chollet, *Deep Learning with Python*, 5.2): 150×150×3 input,
//! conv 32/64/128/128 (3×3 "valid", ReLU) each followed by a 2×2 max-pool, flatten, dropout
//! (identity at inference), dense 512 ReLU, dense 1 (sigmoid: "dog"). Keras 2 layer names.
//! Widths come from the weights, so a width-reduced test checkpoint runs as is. A `.h5` the
//! book's code saved also carries its architecture; this entry reads it as the book's network
//! (cat/dog labels) when asked for by name.

use burn::tensor::Device;

use super::keymap::{conv_op, dense_op, keras_sequence};
use super::BuiltIn;
use crate::error::Result;
use crate::formats::keras_h5::KerasLayer;
use crate::formats::raw::RawTensor;
use crate::formats::WeightSet;
use crate::graph::ops::{Padding, Window};
use crate::graph::{Act, Graph, Head, Op};
use crate::preprocess::Preprocessing;

pub const MODEL: BuiltIn = BuiltIn {
    name: "small-convnet",
    title: "The book's cats-vs-dogs convnet",
    input_size: 150,
    default_cam_layer: "conv2d_4",
    default_filter_layer: "conv2d_2",
    labels: cat_dog_labels,
    build,
    from_state_dict,
    from_keras,
    bundled: None,
    weights_hint: "the small convnet needs your trained Keras file: pass --weights cats_and_dogs_small_2.h5 (Keras 2 or 3 .h5)",
};

/// The two classes, in the order of the sigmoid head's two rows.
pub fn cat_dog_labels() -> Vec<String> {
    vec!["cat".to_string(), "dog".to_string()]
}

/// Our names of the six layers that carry weights, in order.
pub const WEIGHTED_LAYERS: [&str; 6] = ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1", "dense_2"];

fn build(w: &mut WeightSet, device: &Device) -> Result<Graph> {
    let mut g = Graph::new("input", [3, MODEL.input_size, MODEL.input_size]);
    let pool = Op::MaxPool(Window { size: [2, 2], stride: [2, 2], padding: Padding::Valid, count_padding: false });
    for i in 1..=4 {
        let name = format!("conv2d_{i}");
        g.chain(&name, conv_op(w, &name, 1, Padding::Valid, Act::Relu, device)?)?;
        g.chain(format!("max_pooling2d_{i}"), pool.clone())?;
    }
    g.chain("flatten_1", Op::Flatten { channels_last: false })?;
    g.chain("dense_1", dense_op(w, "dense_1", Act::Relu, device)?)?;
    let out = g.chain("dense_2", dense_op(w, "dense_2", Act::Linear, device)?)?;
    g.set_output(out, Head::Sigmoid);
    Ok(g)
}

/// The book's convnet from a Keras 2 or Keras 3 .h5: its six weighted layers in order, whatever
/// they are called (conv2d_5, sequential_1/conv2d_1, ...).
fn from_keras(layers: &[KerasLayer]) -> Option<Result<WeightSet>> {
    let ours: Vec<String> = WEIGHTED_LAYERS.iter().map(|s| s.to_string()).collect();
    let mut set = WeightSet::new(MODEL.meta(Preprocessing::Unit, "keras-h5"));
    let layers: Vec<&KerasLayer> = layers.iter().collect();
    Some(keras_sequence(&layers, &ours, &mut set, "the book's small convnet").map(|_| set))
}

fn from_state_dict(_: &[RawTensor]) -> Option<Result<WeightSet>> {
    None
}
