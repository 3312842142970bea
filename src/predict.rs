//! Classification: photos in, top-k classes with probabilities out.

use serde::Serialize;

use crate::backend::read_f32;
use crate::error::Result;
use crate::network::Network;
use crate::picture::{squash, to_pixels, Photo};

/// One ranked class. `index` is the class's position in the model's label list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

/// Class probabilities (as the model's head defines them) for each photo, squashed to the network's input.
pub async fn probabilities(net: &Network, photos: &[Photo]) -> Result<Vec<Vec<f32>>> {
    let squashed: Vec<Photo> = photos.iter().map(|p| squash(p, net.input_hw())).collect();
    let logits = net.forward(to_pixels(&squashed, net.device())?)?;
    let classes = logits.dims()[1];
    let probs = read_f32(net.probabilities(logits)).await?;
    Ok(probs.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// The `top` most probable classes of one probability row, best first.
pub fn top_k(net: &Network, probs: &[f32], top: usize) -> Vec<Prediction> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.into_iter().take(top).map(|index| Prediction { index, label: net.labels.get(index).cloned().unwrap_or_default(), prob: probs[index] }).collect()
}

/// Top-k classes for each photo.
pub async fn predict(net: &Network, photos: &[Photo], top: usize) -> Result<Vec<Vec<Prediction>>> {
    Ok(probabilities(net, photos).await?.iter().map(|p| top_k(net, p, top)).collect())
}
