//! The pieces of Lucid's feature visualization (Olah, Mordvintsev & Schubert 2017, "Feature
//! Visualization", and the `lucid` library's defaults) that the "lucid" ascent mode is made of:
//! an image parameterized as a frequency-scaled spectrum with decorrelated colour, a random
//! similarity transform each step (transformation robustness), and Adam.
//!
//! Burn has no FFT, so the inverse real 2-D DFT is written as two matrix products with cos/sin
//! tables (the same result as `irfft2d`, exact for the sizes used here, ≤ 512 px).

use std::f32::consts::TAU;

use burn::tensor::activation::sigmoid;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::random::SplitMix;

/// Lucid's `color_correlation_svd_sqrt`: the square root of ImageNet's RGB covariance, so the
/// optimized channels are decorrelated and the image's colours are natural ones.
const COLOR_CORRELATION_SVD_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// Lucid's initial spectrum standard deviation.
const INITIAL_SD: f32 = 0.01;

/// A batch of square images of side `size` held as their spectra: the parameter that Adam moves.
pub(crate) struct FourierImage {
    batch: usize,
    size: usize,
    /// Frequencies kept along x: size / 2 + 1 (the real DFT's half spectrum).
    half: usize,
    /// Each frequency's scale 1 / max(|f|, 1/size) · size, [ky, 1, kx] (the same for every image).
    scale: Tensor<3>,
    /// Inverse DFT along y: cos and sin of 2π·ky·y/size, [y, ky].
    cos_y: Tensor<2>,
    sin_y: Tensor<2>,
    /// Inverse real DFT along x with its 1/size² and the doubled middle frequencies, [kx, x].
    cos_x: Tensor<2>,
    sin_x: Tensor<2>,
    /// The colour decorrelation as a 1×1 convolution kernel [3, 3, 1, 1].
    colour: Tensor<4>,
}

impl FourierImage {
    pub fn new(batch: usize, size: usize, device: &Device) -> Self {
        let half = size / 2 + 1;
        let n = size as f32;
        // numpy's fftfreq along y (signed, folded) and rfftfreq along x, in cycles per pixel.
        let freq_y = |k: usize| if k <= size / 2 { k as f32 } else { k as f32 - n } / n;
        let mut scale = Vec::with_capacity(size * half);
        for ky in 0..size {
            for kx in 0..half {
                let f = (freq_y(ky).powi(2) + (kx as f32 / n).powi(2)).sqrt();
                scale.push(n / f.max(1.0 / n));
            }
        }
        let table = |rows: usize, cols: usize, f: &dyn Fn(usize, usize) -> f32| {
            Tensor::<2>::from_data(TensorData::new((0..rows * cols).map(|i| f(i / cols, i % cols)).collect::<Vec<f32>>(), [rows, cols]), device)
        };
        let angle = |a: usize, b: usize| TAU * ((a * b) % size) as f32 / n;
        // A real signal's half spectrum counts its middle frequencies twice (their mirror images).
        let weight = |kx: usize| if kx == 0 || 2 * kx == size { 1.0 } else { 2.0 } / (n * n);
        let max_norm = (0..3).map(|c| COLOR_CORRELATION_SVD_SQRT.iter().map(|row| row[c] * row[c]).sum::<f32>().sqrt()).fold(0.0, f32::max);
        let colour: Vec<f32> = COLOR_CORRELATION_SVD_SQRT.iter().flatten().map(|v| v / max_norm).collect();
        Self {
            batch,
            size,
            half,
            scale: Tensor::from_data(TensorData::new(scale, [size, 1, half]), device),
            cos_y: table(size, size, &|y, ky| angle(y, ky).cos()),
            sin_y: table(size, size, &|y, ky| angle(y, ky).sin()),
            cos_x: table(half, size, &|kx, x| weight(kx) * angle(kx, x).cos()),
            sin_x: table(half, size, &|kx, x| weight(kx) * angle(kx, x).sin()),
            colour: Tensor::from_data(TensorData::new(colour, [3, 3, 1, 1]), device),
        }
    }

    /// A random starting spectrum: real and imaginary parts stacked, [2 · size, batch · 3 · half].
    pub fn initial(&self, seed: u64, device: &Device) -> Tensor<2> {
        let mut rng = SplitMix(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let shape = [2 * self.size, self.batch * 3 * self.half];
        Tensor::from_data(TensorData::new((0..shape[0] * shape[1]).map(|_| rng.normal() * INITIAL_SD).collect::<Vec<f32>>(), shape), device)
    }

    /// The images [batch, 3, size, size] in pixel levels 0–255: inverse DFT of the scaled spectrum,
    /// ÷4 (Lucid's), colour correlation restored, sigmoid.
    pub fn pixels(&self, spectrum: Tensor<2>) -> Tensor<4> {
        let (s, b, k) = (self.size, self.batch, self.half);
        let scaled = |part: Tensor<2>| (part.reshape([s, b * 3, k]) * self.scale.clone()).reshape([s, b * 3 * k]);
        let re = scaled(spectrum.clone().narrow(0, 0, s));
        let im = scaled(spectrum.narrow(0, s, s));
        // Along y (complex): [y, b·3·kx].
        let z_re = self.cos_y.clone().matmul(re.clone()) - self.sin_y.clone().matmul(im.clone());
        let z_im = self.sin_y.clone().matmul(re) + self.cos_y.clone().matmul(im);
        let rows = |z: Tensor<2>| z.reshape([s, b * 3, k]).swap_dims(0, 1).reshape([b * 3 * s, k]);
        // Along x (real part only): [b·3·y, x].
        let image = rows(z_re).matmul(self.cos_x.clone()) - rows(z_im).matmul(self.sin_x.clone());
        let image = image.reshape([b, 3, s, s]).div_scalar(4.0);
        let correlated = conv2d(image, self.colour.clone(), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        sigmoid(correlated).mul_scalar(255.0)
    }
}

/// Lucid's `standard_transforms`, as one random similarity transform per step: pad 12 px of gray,
/// jitter ±8, scale 0.9–1.1, rotate ±10°, jitter ±4, resampled bilinearly back to the same size (so
/// a class objective still gets the network's input size). Differentiable through `select`.
pub(crate) fn robust_transform(x: Tensor<4>, rng: &mut SplitMix) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let pad = 12;
    let padded = x.pad((pad, pad, pad, pad), PadMode::Constant(127.5));
    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
    let mut jitter = |reach: f32| (rng.uniform() * (2.0 * reach + 1.0)).floor() - reach;
    let shift = [jitter(8.0) + jitter(4.0), jitter(8.0) + jitter(4.0)];
    let scale = 0.9 + 0.02 * (rng.uniform() * 11.0).floor();
    let angle = ((rng.uniform() * 21.0).floor() - 10.0).to_radians();
    warp(padded, [hp, wp], [h, w], scale, angle, shift).reshape([b, c, h, w])
}

/// Bilinear resampling of `image` [b, c, hp, wp] onto an [h, w] grid centred on it, each output
/// point taken from the source at centre + rotate(angle)·(offset / scale) + shift. Returns
/// [b·c, h·w]. Source points outside the image read its nearest edge (the gray padding).
fn warp(image: Tensor<4>, [hp, wp]: [usize; 2], [h, w]: [usize; 2], scale: f32, angle: f32, shift: [f32; 2]) -> Tensor<2> {
    let [b, c, _, _] = image.dims();
    let device = image.device();
    let flat = image.reshape([b * c, hp * wp]);
    let (sin, cos) = angle.sin_cos();
    let mut index = [(); 4].map(|_| Vec::with_capacity(h * w));
    let mut weight = [(); 4].map(|_| Vec::with_capacity(h * w));
    for y in 0..h {
        for x in 0..w {
            let (dy, dx) = ((y as f32 - (h as f32 - 1.0) / 2.0) / scale, (x as f32 - (w as f32 - 1.0) / 2.0) / scale);
            let sy = (hp as f32 - 1.0) / 2.0 + cos * dy - sin * dx + shift[0];
            let sx = (wp as f32 - 1.0) / 2.0 + sin * dy + cos * dx + shift[1];
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let at = |yy: f32, xx: f32| (yy.clamp(0.0, hp as f32 - 1.0) as i64) * wp as i64 + xx.clamp(0.0, wp as f32 - 1.0) as i64;
            let corners = [(y0, x0, (1.0 - fy) * (1.0 - fx)), (y0, x0 + 1.0, (1.0 - fy) * fx), (y0 + 1.0, x0, fy * (1.0 - fx)), (y0 + 1.0, x0 + 1.0, fy * fx)];
            for (i, (yy, xx, wt)) in corners.into_iter().enumerate() {
                index[i].push(at(yy, xx));
                weight[i].push(wt);
            }
        }
    }
    let mut out: Option<Tensor<2>> = None;
    for (idx, wt) in index.into_iter().zip(weight) {
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [h * w]), &device);
        let wt = Tensor::<2>::from_data(TensorData::new(wt, [1, h * w]), &device);
        let term = flat.clone().select(1, idx) * wt;
        out = Some(match out {
            Some(sum) => sum + term,
            None => term,
        });
    }
    out.expect("four corners")
}

/// Adam (Kingma & Ba 2015) for gradient *ascent* on one tensor, with Lucid's learning rate.
pub(crate) struct Adam {
    rate: f32,
    step: i32,
    first: Option<Tensor<2>>,
    second: Option<Tensor<2>>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPSILON: f32 = 1e-8;

    pub fn new(rate: f32) -> Self {
        Self { rate, step: 0, first: None, second: None }
    }

    /// `param` moved up its gradient `grad`.
    pub fn ascend(&mut self, param: Tensor<2>, grad: Tensor<2>) -> Tensor<2> {
        self.step += 1;
        let m = match self.first.take() {
            Some(m) => m.mul_scalar(Self::BETA1) + grad.clone().mul_scalar(1.0 - Self::BETA1),
            None => grad.clone().mul_scalar(1.0 - Self::BETA1),
        };
        let v = match self.second.take() {
            Some(v) => v.mul_scalar(Self::BETA2) + grad.square().mul_scalar(1.0 - Self::BETA2),
            None => grad.square().mul_scalar(1.0 - Self::BETA2),
        };
        let m_hat = m.clone().div_scalar(1.0 - Self::BETA1.powi(self.step));
        let v_hat = v.clone().div_scalar(1.0 - Self::BETA2.powi(self.step));
        self.first = Some(m);
        self.second = Some(v);
        param + m_hat.mul_scalar(self.rate) / v_hat.sqrt().add_scalar(Self::EPSILON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn inverse_dft_matches_a_direct_sum() {
        // One frequency (ky = 1, kx = 2) of amplitude 1 in the real part: the image before the
        // colour map and sigmoid is 2·cos(2π(y + 2x)/s)/s² · scale / 4 in every channel.
        let device = Device::flex();
        let s = 8;
        let f = FourierImage::new(1, s, &device);
        let mut spectrum = vec![0f32; 2 * s * 3 * f.half];
        (0..3).for_each(|c| spectrum[(3 + c) * f.half + 2] = 1.0);
        let spectrum = Tensor::<2>::from_data(TensorData::new(spectrum, [2 * s, 3 * f.half]), &device);
        // Undo the colour map and sigmoid to read the raw image back.
        let pixels = values(f.pixels(spectrum));
        let raw = |p: f32| (p / 255.0 / (1.0 - p / 255.0)).ln();
        let total: f32 = (0..3).map(|r| COLOR_CORRELATION_SVD_SQRT[0][r]).sum::<f32>();
        let max_norm = (0..3).map(|c| COLOR_CORRELATION_SVD_SQRT.iter().map(|row| row[c] * row[c]).sum::<f32>().sqrt()).fold(0.0, f32::max);
        let scale = s as f32 / ((1.0f32 + 4.0).sqrt() / s as f32);
        for y in 0..s {
            for x in 0..s {
                let expected = 2.0 * (TAU * (y + 2 * x) as f32 / s as f32).cos() / (s * s) as f32 * scale / 4.0 * total / max_norm;
                assert!((raw(pixels[y * s + x]) - expected).abs() < 1e-3, "({y}, {x}): {} vs {expected}", raw(pixels[y * s + x]));
            }
        }
    }

    #[test]
    fn identity_warp_keeps_the_image() {
        let device = Device::flex();
        let image: Vec<f32> = (0..2 * 5 * 5).map(|i| i as f32).collect();
        let t = Tensor::<4>::from_data(TensorData::new(image.clone(), [1, 2, 5, 5]), &device);
        let same = warp(t, [5, 5], [5, 5], 1.0, 0.0, [0.0, 0.0]);
        assert_eq!(same.into_data().try_into_vec::<f32>().unwrap(), image);
    }

    #[test]
    fn adam_climbs_a_parabola() {
        let device = Device::flex();
        let mut adam = Adam::new(0.1);
        let mut x = Tensor::<2>::from_data(TensorData::new(vec![0.0f32], [1, 1]), &device);
        for _ in 0..200 {
            let grad = x.clone().neg().add_scalar(3.0).mul_scalar(2.0); // d/dx of −(x − 3)²
            x = adam.ascend(x, grad);
        }
        let v = x.into_data().try_into_vec::<f32>().unwrap()[0];
        assert!((v - 3.0).abs() < 0.05, "{v}");
    }
}
