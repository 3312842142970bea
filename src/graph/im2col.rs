//! A stride-1 convolution on the CPU as im2col + one matrix product, in Burn tensor ops.
//!
//! Why: flex's own conv2d repacks the weights to [out, kh, kw, in] and the input to NHWC on every
//! call, then runs one small gemm per 512 output pixels and scatters each result back to NCHW.
//! On a small map that is one or two gemm calls, each repacking every weight: VGG16's block5
//! convs ran at 84 GFLOP/s where one product the size of the layer reaches 150. Here the patches
//! are laid out so the weights need no repacking ([out, in·kh·kw] is their stored order) and the
//! product lands in NCHW as it is.
//!
//! Being plain tensor ops (pad, slices, stack, matmul), autodiff follows it without a backward of
//! our own, and the patch matrix is not kept for the backward: the weights are constants, so the
//! product's backward needs only them (`W^T · grad`, then the slices fold the patches back).

use burn::tensor::ops::PadMode;
use burn::tensor::{s, Tensor};

/// Output pixels up to which [`conv2d`] beats flex's conv: there flex's 512-pixel tiles leave one
/// or two gemm calls, each repacking every weight. On larger maps the patch matrix (9× the input)
/// costs more than it saves. VGG16's 3×3 convs, release build with mimalloc, 2 cores, ms (flex →
/// here): 14×14 11.0 → 6.1, 28×28 28.5 → 22.8, 56×56 23.7 → 27.7, 224×224 52 → 73.
const MAX_PIXELS: usize = 32 * 32;

/// Whether [`conv2d`] should compute this convolution: one group, stride 1, a window larger than
/// one pixel (a 1×1 conv is a product already: flex's own path for it skips im2col), a small map.
pub fn applies(kernel: [usize; 2], stride: [usize; 2], groups: usize, out_pixels: usize) -> bool {
    groups == 1 && stride == [1, 1] && kernel != [1, 1] && out_pixels <= MAX_PIXELS
}

/// x [N, C, H, W] ⊛ weight [O, C, kh, kw] (+ bias [O]) at stride 1, with `pads` ((top, bottom),
/// (left, right)) zeros and `dilation`; the same values as `burn::tensor::module::conv2d`, up to
/// the order of the sums.
pub fn conv2d(x: Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, pads: [(usize, usize); 2], dilation: [usize; 2]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [o, _, kh, kw] = weight.dims();
    let [(top, bottom), (left, right)] = pads;
    let x = if pads == [(0, 0); 2] { x } else { x.pad((left, right, top, bottom), PadMode::Constant(0.0)) };
    let out_h = h + top + bottom - (kh - 1) * dilation[0];
    let out_w = w + left + right - (kw - 1) * dilation[1];
    // One shifted view of the input per kernel tap, stacked after the channel axis, so that the
    // patch matrix's rows run (channel, ky, kx): the weights' own order.
    let mut taps = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        for kx in 0..kw {
            let (y, x0) = (ky * dilation[0], kx * dilation[1]);
            taps.push(x.clone().slice(s![.., .., y..y + out_h, x0..x0 + out_w]));
        }
    }
    let patches = Tensor::stack::<5>(taps, 2).reshape([n, c * kh * kw, out_h * out_w]);
    let product = weight.clone().reshape([1, o, c * kh * kw]).matmul(patches);
    let y = product.reshape([n, o, out_h, out_w]);
    match bias {
        Some(b) => y + b.clone().reshape([1, o, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution};

    /// Values and input gradients equal Burn's own conv2d (flex), padded and not, dilated,
    /// batched, odd sizes.
    #[test]
    fn matches_burn_conv2d_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (n, c, o, h, w, k, pads, dilation) in [
            (1, 3, 8, 9, 7, [3, 3], [(1, 1), (1, 1)], [1, 1]),
            (2, 5, 4, 6, 8, [3, 2], [(0, 0), (0, 0)], [1, 1]),
            (1, 4, 6, 11, 10, [3, 3], [(2, 2), (2, 2)], [2, 2]),
            (3, 2, 3, 5, 5, [5, 5], [(2, 1), (0, 2)], [1, 1]),
        ] {
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let weight = Tensor::<4>::random([o, c, k[0], k[1]], Distribution::Normal(0.0, 1.0), &device);
            let bias = Tensor::<1>::random([o], Distribution::Normal(0.0, 1.0), &device);
            let ours = conv2d(x.clone(), &weight, Some(&bias), pads, dilation);
            let options = ConvOptions::new_with_padding([1, 1], pads, dilation, 1);
            let reference = burn_conv2d(x.clone(), weight.clone(), Some(bias.clone()), options);
            assert_eq!(ours.dims(), reference.dims());
            let diff: f32 = (ours.clone() - reference.clone()).abs().max().into_scalar();
            assert!(diff < 1e-4, "forward differs by {diff} for {:?}", (n, c, o, h, w, k, pads, dilation));
            // Gradients of a weighted sum, so that every output position matters differently.
            let probe = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_ours = x.grad(&(ours * probe.clone()).sum().backward()).expect("gradient");
            let g_ref = x.grad(&(reference * probe).sum().backward()).expect("gradient");
            let diff: f32 = (g_ours - g_ref).abs().max().into_scalar();
            assert!(diff < 1e-4, "input gradient differs by {diff}");
        }
    }

    #[test]
    fn applies_to_small_stride_one_single_group_windows_only() {
        assert!(applies([3, 3], [1, 1], 1, 14 * 14));
        assert!(applies([1, 7], [1, 1], 1, 28 * 28));
        assert!(!applies([3, 3], [1, 1], 1, 56 * 56));
        assert!(!applies([1, 1], [1, 1], 1, 14 * 14));
        assert!(!applies([3, 3], [2, 2], 1, 14 * 14));
        assert!(!applies([3, 3], [1, 1], 32, 14 * 14));
    }
}
