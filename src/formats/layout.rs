//! Tensor layout conversions between checkpoint conventions and ConvLens's: conv kernels
//! [out, in, kh, kw] (torch OIHW), dense kernels [in, out].

use super::raw::{HostTensor, RawTensor};
use crate::error::{Error, Result};

/// Keras conv kernel [kh, kw, in, out] -> [out, in, kh, kw].
pub fn hwio_to_oihw(t: &RawTensor) -> Result<HostTensor> {
    let [kh, kw, cin, cout] = t.shape[..] else {
        return Err(Error::weights(format!("'{}' should be a 4-D conv kernel, found shape {:?}", t.name, t.shape)));
    };
    check_len(t)?;
    let mut out = vec![0.0; t.data.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cin {
                for o in 0..cout {
                    out[((o * cin + i) * kh + y) * kw + x] = t.data[((y * kw + x) * cin + i) * cout + o];
                }
            }
        }
    }
    Ok((vec![cout, cin, kh, kw], out))
}

/// Keras depthwise kernel [kh, kw, in, multiplier] -> [in · multiplier, 1, kh, kw], output
/// channel i · multiplier + m (TensorFlow's order).
pub fn depthwise_to_oihw(t: &RawTensor) -> Result<HostTensor> {
    let [kh, kw, cin, mult] = t.shape[..] else {
        return Err(Error::weights(format!("'{}' should be a 4-D depthwise kernel, found shape {:?}", t.name, t.shape)));
    };
    check_len(t)?;
    let mut out = vec![0.0; t.data.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cin {
                for m in 0..mult {
                    out[((i * mult + m) * kh + y) * kw + x] = t.data[((y * kw + x) * cin + i) * mult + m];
                }
            }
        }
    }
    Ok((vec![cin * mult, 1, kh, kw], out))
}

/// A tensor whose values do not fill its shape (a reader's bug or a forged file) is refused here,
/// before any index is computed from the shape.
fn check_len(t: &RawTensor) -> Result<()> {
    let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel != Some(t.data.len()) {
        return Err(Error::weights(format!("'{}' declares shape {:?} but holds {} values", t.name, t.shape, t.data.len())));
    }
    Ok(())
}

/// torch linear weight [out, in] -> our [in, out].
pub fn transpose(t: &RawTensor) -> Result<HostTensor> {
    let [rows, cols] = t.shape[..] else {
        return Err(Error::weights(format!("'{}' should be a matrix, found shape {:?}", t.name, t.shape)));
    };
    check_len(t)?;
    let mut out = vec![0.0; t.data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.data[r * cols + c];
        }
    }
    Ok((vec![cols, rows], out))
}

/// Keras's first dense layer after Flatten sees inputs in (H, W, C) order; ours are (C, H, W).
/// Reorders the rows of a [H*W*C, out] kernel given the channel count of the last feature map.
pub fn hwc_rows_to_chw(shape: &[usize], data: &[f32], channels: usize) -> Result<Vec<f32>> {
    let [inputs, outputs] = shape[..] else {
        return Err(Error::weights(format!("a dense kernel should be a matrix, found shape {shape:?}")));
    };
    if inputs.checked_mul(outputs) != Some(data.len()) {
        return Err(Error::weights(format!("a dense kernel declares shape {shape:?} but holds {} values", data.len())));
    }
    if channels == 0 || inputs % channels != 0 {
        return Err(Error::weights(format!("a dense layer with {inputs} inputs cannot follow a map of {channels} channels")));
    }
    let pixels = inputs / channels;
    let mut out = vec![0.0; data.len()];
    for p in 0..pixels {
        for c in 0..channels {
            let (src, dst) = ((p * channels + c) * outputs, (c * pixels + p) * outputs);
            out[dst..dst + outputs].copy_from_slice(&data[src..src + outputs]);
        }
    }
    Ok(out)
}

pub fn vector(t: &RawTensor) -> Result<HostTensor> {
    if t.shape.len() != 1 {
        return Err(Error::weights(format!("'{}' should be a vector, found shape {:?}", t.name, t.shape)));
    }
    Ok((t.shape.clone(), t.data.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwio_to_oihw_moves_each_value() {
        // kernel[y][x][i][o] = 1000y + 100x + 10i + o
        let (kh, kw, ci, co) = (2, 3, 2, 4);
        let mut data = Vec::new();
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..ci {
                    for o in 0..co {
                        data.push((1000 * y + 100 * x + 10 * i + o) as f32);
                    }
                }
            }
        }
        let (shape, out) = hwio_to_oihw(&RawTensor::new("k", vec![kh, kw, ci, co], data)).unwrap();
        assert_eq!(shape, vec![co, ci, kh, kw]);
        assert_eq!(out[((3 * ci + 1) * kh + 1) * kw + 2], 1213.0);
    }

    #[test]
    fn hwc_rows_become_chw_rows() {
        // 2 pixels × 3 channels, 1 output; row value = 10p + c
        let data: Vec<f32> = (0..2).flat_map(|p| (0..3).map(move |c| (10 * p + c) as f32)).collect();
        let out = hwc_rows_to_chw(&[6, 1], &data, 3).unwrap();
        assert_eq!(out, vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }

    #[test]
    fn depthwise_channels_are_input_major() {
        // kernel[0][0][i][m] = 10i + m, 2 inputs × 3 multiplier
        let data: Vec<f32> = (0..2).flat_map(|i| (0..3).map(move |m| (10 * i + m) as f32)).collect();
        let (shape, out) = depthwise_to_oihw(&RawTensor::new("d", vec![1, 1, 2, 3], data)).unwrap();
        assert_eq!(shape, vec![6, 1, 1, 1]);
        assert_eq!(out, vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        assert!(hwio_to_oihw(&RawTensor::new("short", vec![3, 3, 2, 2], vec![0.0; 5])).is_err());
    }

    #[test]
    fn transpose_swaps_axes() {
        let (shape, out) = transpose(&RawTensor::new("w", vec![2, 3], vec![1., 2., 3., 4., 5., 6.])).unwrap();
        assert_eq!(shape, vec![3, 2]);
        assert_eq!(out, vec![1., 4., 2., 5., 3., 6.]);
    }
}
