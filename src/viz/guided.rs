//! Guided backpropagation and Guided Grad-CAM (Selvaraju et al. 2017, §3.2), as pytorch-grad-cam
//! computes them: the class logit's gradient at the pixels with every ReLU passing back only
//! positive gradients (Springenberg et al. 2015), shown with the book's `deprocess_image`; Guided
//! Grad-CAM multiplies it by the upsampled class activation map, so the fine detail is kept only
//! where the map says the class is.

use burn::tensor::{Tensor, TensorData};

use crate::backend::read_f32;
use crate::error::Result;
use crate::network::Network;
use crate::picture::{planes, squash, Photo, Rgba};
use crate::viz::filters::deprocess;
use crate::viz::gradcam::{upsample, Cam};

/// The guided gradient of `class` for the photo squashed to the network's input size: [3, H, W]
/// values (channel planes) with respect to the 0–255 pixels, and the size (height, width).
pub async fn guided_gradient(net: &Network, photo: &Photo, class: usize) -> Result<(Vec<f32>, [usize; 2])> {
    let [height, width] = net.input_hw();
    let pixels = Tensor::<4>::from_data(TensorData::new(planes(&squash(photo, [height, width])), [1, 3, height, width]), net.device());
    let gradient = net.guided_gradient(pixels, class)?;
    Ok((read_f32(gradient.inner()).await?, [height, width]))
}

/// Guided backpropagation as a picture at the network's input size.
pub fn guided_backprop_picture(gradient: &[f32], [height, width]: [usize; 2]) -> Rgba {
    deprocess(gradient, width, height)
}

/// Guided Grad-CAM: the guided gradient × the map upsampled to the input size, as a picture.
pub fn guided_gradcam_picture(gradient: &[f32], [height, width]: [usize; 2], cam: &Cam) -> Rgba {
    let map = upsample(cam, width, height);
    let plane = width * height;
    let product: Vec<f32> = gradient.iter().enumerate().map(|(i, g)| g * map[i % plane]).collect();
    deprocess(&product, width, height)
}
