//! A depthwise convolution's forward on the CPU with the channels as the vector lanes, for small
//! maps in forward passes that record nothing (predictions, activations, the layers before
//! Grad-CAM's tap). flex computes a depthwise conv one channel plane at a time: a short vector
//! loop per kernel tap and output row, 7 or 14 values on EfficientNet's deep maps, where the loop
//! overhead is most of the work. Here (NHWC, as XNNPACK does) every tap of every output pixel is
//! one multiply-add over all the channels. Each output sums the same products in the same order
//! as flex (taps in (kh, kw) order from zero, padded taps skipped, product then sum, bias last),
//! so the values are identical.

use super::host::{for_each, Epilogue};

/// Output maps up to this many pixels go through `forward`; on larger ones (EfficientNet's
/// 112×112 and 56×56, few channels) the transposes cost more than flex's rows.
pub const MAX_PIXELS: usize = 28 * 28;

/// The shape of one depthwise convolution.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub channels: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Zero rows / columns before the input (those after only bound `output`).
    pub pad_before: [usize; 2],
    pub output: [usize; 2],
}

/// `x`: N × C × H × W values; `weight`: C × kh × kw; `epilogue`: C channels'. Returns N × C × H' × W'.
pub fn forward(x: &[f32], weight: &[f32], epilogue: &Epilogue, g: &Geometry) -> Vec<f32> {
    let c = g.channels;
    let (in_plane, out_plane) = (g.input[0] * g.input[1], g.output[0] * g.output[1]);
    let taps = g.kernel[0] * g.kernel[1];
    // Tap-major weights: the C weights of one tap side by side.
    let mut by_tap = vec![0.0; taps * c];
    for (ch, kernel) in weight.chunks_exact(taps).enumerate() {
        for (t, &w) in kernel.iter().enumerate() {
            by_tap[t * c + ch] = w;
        }
    }
    let batch = x.len().checked_div(in_plane * c).unwrap_or(0);
    let mut out = vec![0.0; batch * c * out_plane];
    let (mut hwc, mut out_hwc) = (vec![0.0; in_plane * c], vec![0.0f32; out_plane * c]);
    for (image, result) in x.chunks_exact(c * in_plane).zip(out.chunks_exact_mut(c * out_plane)) {
        transpose(image, c, in_plane, &mut hwc, &|_, _| {});
        // The output rows in parallel, each a row of `out_hwc`. (Writing them straight into the
        // NCHW planes, without `out_hwc`, measured slower: a store to every plane per pixel.)
        let rows: Vec<(usize, &mut [f32])> = out_hwc.chunks_mut(g.output[1] * c).enumerate().collect();
        for_each(rows, &|(oh, row)| {
            for (ow, acc) in row.chunks_exact_mut(c).enumerate() {
                acc.fill(0.0);
                for kh in 0..g.kernel[0] {
                    let Some(ih) = source(oh, kh, 0, g) else { continue };
                    for kw in 0..g.kernel[1] {
                        let Some(iw) = source(ow, kw, 1, g) else { continue };
                        let pixel = &hwc[(ih * g.input[1] + iw) * c..][..c];
                        let w = &by_tap[(kh * g.kernel[1] + kw) * c..][..c];
                        for ((a, &v), &w) in acc.iter_mut().zip(pixel).zip(w) {
                            *a += v * w;
                        }
                    }
                }
            }
        });
        transpose(&out_hwc, out_plane, c, result, &|k, plane| epilogue.apply(k, plane));
    }
    out
}

/// The input row (axis 0) or column (axis 1) that tap `k` of output `o` reads; None in the padding.
fn source(o: usize, k: usize, axis: usize, g: &Geometry) -> Option<usize> {
    (o * g.stride[axis] + k * g.dilation[axis]).checked_sub(g.pad_before[axis]).filter(|&i| i < g.input[axis])
}

/// A `rows` × `cols` matrix transposed into `out` (`cols` rows of `rows`), then `then(j, row j)`
/// on each of its rows; in parallel, a few thousand values a task.
fn transpose(m: &[f32], rows: usize, cols: usize, out: &mut [f32], then: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let rows = rows.max(1);
    let per_task = (4096 / rows).max(1);
    let tasks: Vec<(usize, &mut [f32])> = out.chunks_mut(per_task * rows).enumerate().collect();
    for_each(tasks, &|(t, block)| {
        for (i, row) in block.chunks_exact_mut(rows).enumerate() {
            let j = t * per_task + i;
            for (r, v) in row.iter_mut().enumerate() {
                *v = m[r * cols + j];
            }
            then(j, row);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, term by term in flex's order.
    fn direct(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
        let [h, w] = g.input;
        let mut out = Vec::new();
        for image in x.chunks_exact(g.channels * h * w) {
            for ch in 0..g.channels {
                for oh in 0..g.output[0] {
                    for ow in 0..g.output[1] {
                        let mut sum = 0.0f32;
                        for kh in 0..g.kernel[0] {
                            for kw in 0..g.kernel[1] {
                                if let (Some(ih), Some(iw)) = (source(oh, kh, 0, g), source(ow, kw, 1, g)) {
                                    sum += image[(ch * h + ih) * w + iw] * weight[(ch * g.kernel[0] + kh) * g.kernel[1] + kw];
                                }
                            }
                        }
                        out.push(sum + bias.map_or(0.0, |b| b[ch]));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_with_stride_padding_and_dilation() {
        let values = |n: usize, seed: usize| (0..n).map(|i| (((i * 37 + seed * 11) % 29) as f32 - 14.0) / 7.0).collect::<Vec<f32>>();
        for (kernel, stride, dilation, pad_before, output) in
            [([3, 3], [1, 1], [1, 1], [1, 1], [9, 7]), ([5, 5], [2, 2], [1, 1], [1, 2], [5, 4]), ([3, 3], [1, 2], [2, 1], [0, 1], [5, 4])]
        {
            let g = Geometry { channels: 6, input: [9, 7], kernel, stride, dilation, pad_before, output };
            let x = values(2 * 6 * 9 * 7, 1);
            let w = values(6 * kernel[0] * kernel[1], 2);
            let b = values(6, 3);
            assert_eq!(forward(&x, &w, &Epilogue { bias: Some(&b), clamp: None }, &g), direct(&x, &w, Some(&b), &g), "{g:?}");
            assert_eq!(forward(&x, &w, &Epilogue::default(), &g), direct(&x, &w, None, &g), "{g:?}");
            let relu6: Vec<f32> = direct(&x, &w, Some(&b), &g).into_iter().map(|v| v.clamp(0.0, 6.0)).collect();
            assert_eq!(forward(&x, &w, &Epilogue { bias: Some(&b), clamp: Some((0.0, 6.0)) }, &g), relu6, "{g:?}");
        }
    }
}
