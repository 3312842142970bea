//! A 1×1 stride-1 convolution's forward on the CPU: per image, one matrix product on flex's
//! NCHW values (filters × in-channels by in-channels × pixels, as flex's own 1×1 path), then the
//! bias and the activation in one pass over the planes, in parallel (flex: a pass per op, on one
//! thread; on EfficientNet those passes were a quarter of the forward).

use super::host::{for_each, gemm_parallelism, Epilogue};

/// Whether `forward` computes this conv.
pub fn applies(kernel: [usize; 2], stride: [usize; 2], groups: usize, pads: [(usize, usize); 2]) -> bool {
    kernel == [1, 1] && stride == [1, 1] && groups == 1 && pads == [(0, 0); 2]
}

/// `x`: N × C × P values (P pixels); `weight`: K × C. Returns N × K × P.
pub fn forward(x: &[f32], weight: &[f32], [ci, co]: [usize; 2], pixels: usize, epilogue: &Epilogue) -> Vec<f32> {
    let (in_len, out_len) = (ci * pixels, co * pixels);
    let batch = x.len().checked_div(in_len).unwrap_or(0);
    assert!(weight.len() == co * ci && x.len() == batch * in_len, "a 1×1 conv's values do not match its shape");
    let mut out = vec![0.0f32; batch * out_len];
    for (image, result) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
        // SAFETY: `result` is co × pixels (row stride pixels), `weight` co × ci (row stride ci),
        // `image` ci × pixels (row stride pixels), as asserted above.
        unsafe {
            gemm::gemm(
                co,
                pixels,
                ci,
                result.as_mut_ptr(),
                1,
                pixels as isize,
                false,
                weight.as_ptr(),
                1,
                ci as isize,
                image.as_ptr(),
                1,
                pixels as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm_parallelism(co, pixels, ci),
            );
        }
    }
    if epilogue.bias.is_some() || epilogue.clamp.is_some() {
        let planes: Vec<(usize, &mut [f32])> = out.chunks_mut(pixels.max(1)).enumerate().collect();
        for_each(planes, &|(i, plane)| epilogue.apply(i % co, plane));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_with_bias_and_clamp() {
        let values = |n: usize, seed: usize| (0..n).map(|i| (((i * 37 + seed * 11) % 29) as f32 - 14.0) / 7.0).collect::<Vec<f32>>();
        let (ci, co, pixels) = (5, 7, 13);
        let (x, w, b) = (values(2 * ci * pixels, 1), values(co * ci, 2), values(co, 3));
        for clamp in [None, Some((0.0, 6.0)), Some((-0.5, 0.5))] {
            let got = forward(&x, &w, [ci, co], pixels, &Epilogue { bias: Some(&b), clamp });
            for n in 0..2 {
                for k in 0..co {
                    for p in 0..pixels {
                        let sum: f64 = (0..ci).map(|c| w[k * ci + c] as f64 * x[(n * ci + c) * pixels + p] as f64).sum::<f64>() + b[k] as f64;
                        let want = clamp.map_or(sum, |(lo, hi)| sum.clamp(lo as f64, hi as f64));
                        let v = got[(n * co + k) * pixels + p] as f64;
                        assert!((v - want).abs() <= 1e-5 * (1.0 + want.abs()), "image {n}, filter {k}, pixel {p}: {v} vs {want}");
                    }
                }
            }
        }
    }
}
