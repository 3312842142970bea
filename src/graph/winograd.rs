//! 3×3 convolutions of stride 1 as Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", CVPR 2016), for forwards on the CPU that record
//! nothing (predictions, activations, the layers before Grad-CAM's tap). Each 4×4 block of output
//! pixels comes from a 6×6 block of input as Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so a layer is 36 matrix
//! products (tiles × in-channels by in-channels × out-channels): 36 multiply-adds per 16 outputs
//! and channel pair where flex's im2col + gemm spends 144. VGG16 is thirteen such layers.
//!
//! The transforms run with the channels as the vector lanes (NHWC), one band of tile rows at a time
//! (its input gathered from NCHW, its output written back into the planes); the products are
//! `gemm`'s, the crate flex itself uses. Bands, and the 36 products of a band, run in parallel where
//! rayon is there (natively, the threaded browser build). The values differ from the direct sum by
//! rounding only (interpolation points 0, ±1, ±2, ∞; the test bounds the difference against an f64
//! sum, and the golden tests against PyTorch and Keras still pass).

use super::host::{for_each, Epilogue};

/// Bᵀ: the input transform.
const BT: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// G: the filter transform.
const G: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Aᵀ: the output transform.
const AT: [[f32; 6]; 4] = [[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, 2.0, -2.0, 0.0], [0.0, 1.0, 1.0, 4.0, 4.0, 0.0], [0.0, 1.0, -1.0, 8.0, -8.0, 1.0]];

/// Input points per tile side, output points per tile side, points per tile.
const IN: usize = 6;
const OUT: usize = 4;
const POINTS: usize = IN * IN;

/// Tiles per band × channels. gemm packs each point's filters once per band, so wide bands pack
/// them fewer times: on one wasm thread VGG16's Grad-CAM took 0.48–0.50 s with bands of 32K values
/// against 0.57–0.59 s with 8K (a core's L2), in two interleaved runs; natively they measured alike.
const BAND_VALUES: usize = 32768;

/// Whether a convolution goes through `forward`: 3×3, stride 1, no dilation, no groups, enough
/// channels for the products to dominate (VGG16's first layer, with 3, stays on flex's own path)
/// and maps of at least one whole tile.
pub fn applies(kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], groups: usize, channels: [usize; 2], output: [usize; 2]) -> bool {
    kernel == [3, 3] && stride == [1, 1] && dilation == [1, 1] && groups == 1 && channels.iter().all(|&c| c >= 16) && output.iter().all(|&o| o >= OUT)
}

/// The shape of one convolution's maps (its channels are its `Filters`').
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub input: [usize; 2],
    /// Zero rows / columns before the input (those after only bound `output`).
    pub pad_before: [usize; 2],
    pub output: [usize; 2],
}

/// A conv's filters in Winograd's domain, U = G g Gᵀ of each, laid out [in-channel][point][out-channel]
/// (the out-channels are the vector lanes of the transform and the columns of the products).
pub struct Filters {
    values: Vec<f32>,
    channels_in: usize,
    channels_out: usize,
}

impl Filters {
    /// The filters of `weight`: `co` × `ci` × 3 × 3 values.
    pub fn new(weight: &[f32], ci: usize, co: usize) -> Self {
        let mut u = vec![0.0f32; ci * POINTS * co];
        let blocks: Vec<(usize, &mut [f32])> = u.chunks_mut(POINTS * co).enumerate().collect();
        for_each(blocks, &|(c, block)| {
            // The 9 taps of channel c of every filter, tap-major: 9 rows of `co` lanes.
            let mut taps = vec![0.0f32; 9 * co];
            for (k, filter) in weight.chunks_exact(ci * 9).take(co).enumerate() {
                for (t, &w) in filter[c * 9..][..9].iter().enumerate() {
                    taps[t * co + k] = w;
                }
            }
            // G g: 6 × 3 rows of lanes, then (G g) Gᵀ: 6 × 6.
            let mut half = vec![0.0f32; 6 * 3 * co];
            for i in 0..IN {
                for j in 0..3 {
                    combine(&G[i], |r| &taps[(r * 3 + j) * co..][..co], &mut half[(i * 3 + j) * co..][..co]);
                }
            }
            for i in 0..IN {
                for j in 0..IN {
                    combine(&G[j], |s| &half[(i * 3 + s) * co..][..co], &mut block[(i * IN + j) * co..][..co]);
                }
            }
        });
        Filters { values: u, channels_in: ci, channels_out: co }
    }
}

/// `x`: N × C × H × W values; `filters`: those of the K × C × 3 × 3 weights; `epilogue`: K channels'.
/// Returns N × K × H' × W'.
pub fn forward(x: &[f32], filters: &Filters, epilogue: &Epilogue, g: &Geometry) -> Vec<f32> {
    let band_rows = BAND_VALUES / filters.channels_in.max(filters.channels_out) / g.output[1].div_ceil(OUT);
    forward_in_bands(x, filters, epilogue, g, band_rows)
}

/// `forward`, `band_rows` tile rows at a time.
fn forward_in_bands(x: &[f32], filters: &Filters, epilogue: &Epilogue, g: &Geometry, band_rows: usize) -> Vec<f32> {
    let (ci, co) = (filters.channels_in, filters.channels_out);
    let [oh, ow] = g.output;
    let in_len = ci * g.input[0] * g.input[1];
    let batch = x.len().checked_div(in_len).unwrap_or(0);
    let tile_rows = oh.div_ceil(OUT);
    let band_rows = band_rows.clamp(1, tile_rows.max(1));
    let bands_per_image = tile_rows.div_ceil(band_rows);
    let mut out = vec![0.0f32; batch * co * oh * ow];
    // Each band's rows of every output plane, so that the bands write their own slices.
    let mut bands: Vec<(usize, Vec<&mut [f32]>)> = (0..batch * bands_per_image).map(|i| (i, Vec::with_capacity(co))).collect();
    for (n, image) in out.chunks_mut(co * oh * ow).enumerate() {
        for plane in image.chunks_mut(oh * ow) {
            for (b, rows) in plane.chunks_mut(band_rows * OUT * ow).enumerate() {
                bands[n * bands_per_image + b].1.push(rows);
            }
        }
    }
    for_each(bands, &|(i, mut planes)| {
        let (n, band) = (i / bands_per_image, i % bands_per_image);
        let first_row = band * band_rows;
        let rows = band_rows.min(tile_rows - first_row);
        band_forward(&x[n * in_len..][..in_len], filters, epilogue, g, first_row, rows, &mut planes);
    });
    out
}

/// One band of `rows` tile rows from tile row `first_row` of one image (`image`: C × H × W) into
/// `planes`: the band's rows of each output plane.
fn band_forward(image: &[f32], filters: &Filters, epilogue: &Epilogue, g: &Geometry, first_row: usize, rows: usize, planes: &mut [&mut [f32]]) {
    let (ci, co) = (filters.channels_in, filters.channels_out);
    let [h, w] = g.input;
    let [oh, ow] = g.output;
    let tiles_across = ow.div_ceil(OUT);
    let tiles = rows * tiles_across;
    // The band's input rows, NHWC, with the padding as zeros: `slab_h` × `slab_w` pixels whose
    // first is input pixel (first_row · 4 − pad_top, −pad_left).
    let (slab_h, slab_w) = (rows * OUT + 2, tiles_across * OUT + 2);
    let mut slab = vec![0.0f32; slab_h * slab_w * ci];
    for sy in 0..slab_h {
        let Some(y) = (first_row * OUT + sy).checked_sub(g.pad_before[0]).filter(|&y| y < h) else { continue };
        for sx in 0..slab_w {
            let Some(x) = sx.checked_sub(g.pad_before[1]).filter(|&x| x < w) else { continue };
            let pixel = &mut slab[(sy * slab_w + sx) * ci..][..ci];
            for (c, v) in pixel.iter_mut().enumerate() {
                *v = image[(c * h + y) * w + x];
            }
        }
    }
    // V = Bᵀ d B of every tile, [point][tile][in-channel].
    let mut v = vec![0.0f32; POINTS * tiles * ci];
    let mut half = vec![0.0f32; POINTS * ci];
    for tile in 0..tiles {
        let (ty, tx) = (tile / tiles_across, tile % tiles_across);
        let d = |r: usize, s: usize| &slab[((ty * OUT + r) * slab_w + tx * OUT + s) * ci..][..ci];
        for i in 0..IN {
            for s in 0..IN {
                combine(&BT[i], |r| d(r, s), &mut half[(i * IN + s) * ci..][..ci]);
            }
        }
        for i in 0..IN {
            for j in 0..IN {
                combine(&BT[j], |s| &half[(i * IN + s) * ci..][..ci], &mut v[((i * IN + j) * tiles + tile) * ci..][..ci]);
            }
        }
    }
    // M[point] = V[point] · U[point]: tiles × co; the points in parallel too, for the layers
    // whose few bands leave threads idle.
    let mut m = vec![0.0f32; POINTS * tiles * co];
    let products: Vec<(usize, &mut [f32])> = m.chunks_mut(tiles * co).enumerate().collect();
    for_each(products, &|(point, product)| {
        // SAFETY: `product` is tiles × co (row stride co), `v`'s block tiles × ci (row stride ci)
        // from point · tiles · ci, and `filters`' ci × co at row stride POINTS · co from point · co:
        // all inside their vectors (`Filters::new` made ci · POINTS · co values).
        unsafe {
            gemm::gemm(
                tiles,
                co,
                ci,
                product.as_mut_ptr(),
                1,
                co as isize,
                false,
                v.as_ptr().add(point * tiles * ci),
                1,
                ci as isize,
                filters.values.as_ptr().add(point * co),
                1,
                (POINTS * co) as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
    // Y = Aᵀ M A of every tile, then the epilogue: 16 pixels of `co` lanes, then into the planes.
    let mut half = vec![0.0f32; OUT * IN * co];
    let mut y = vec![0.0f32; OUT * OUT * co];
    let band_h = (oh - first_row * OUT).min(rows * OUT);
    for tile in 0..tiles {
        let (ty, tx) = (tile / tiles_across, tile % tiles_across);
        for i in 0..OUT {
            for s in 0..IN {
                combine(&AT[i], |r| &m[((r * IN + s) * tiles + tile) * co..][..co], &mut half[(i * IN + s) * co..][..co]);
            }
        }
        for (p, pixel) in y.chunks_exact_mut(co).enumerate() {
            combine(&AT[p % OUT], |s| &half[(p / OUT * IN + s) * co..][..co], pixel);
            epilogue.apply_lanes(pixel);
        }
        let (height, width) = ((band_h - ty * OUT).min(OUT), (ow - tx * OUT).min(OUT));
        for (k, plane) in planes.iter_mut().enumerate() {
            for i in 0..height {
                let row = &mut plane[(ty * OUT + i) * ow + tx * OUT..][..width];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = y[(i * OUT + j) * co + k];
                }
            }
        }
    }
}

/// `out = Σ coefs[r] · rows(r)` lane by lane. Zero coefficients (most of the transforms') cost
/// nothing, and the first term is written, not added: `out` may be fresh memory, which the kernel
/// maps to its shared zero page on a read and must copy (and flush from every core's TLB) on the
/// write after it; read-then-write cost 60 ms of page faults for a 512-channel layer's filters.
fn combine<'a>(coefs: &[f32], rows: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
    let mut terms = coefs.iter().enumerate().filter(|(_, &a)| a != 0.0);
    match terms.next() {
        Some((r, &a)) => out.iter_mut().zip(rows(r)).for_each(|(o, &x)| *o = a * x),
        None => out.fill(0.0),
    }
    for (r, &a) in terms {
        out.iter_mut().zip(rows(r)).for_each(|(o, &x)| *o += a * x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in f64.
    fn direct(x: &[f32], weight: &[f32], bias: Option<&[f32]>, bias_len: usize, g: &Geometry) -> Vec<f64> {
        let [h, w] = g.input;
        let mut out = Vec::new();
        let (ci, co) = (weight.len() / 9 / bias_len, bias_len);
        for image in x.chunks_exact(ci * h * w) {
            for k in 0..co {
                for oy in 0..g.output[0] {
                    for ox in 0..g.output[1] {
                        let mut sum = bias.map_or(0.0, |b| b[k] as f64);
                        for c in 0..ci {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (Some(y), Some(x)) = ((oy + ky).checked_sub(g.pad_before[0]), (ox + kx).checked_sub(g.pad_before[1])) else { continue };
                                    if y < h && x < w {
                                        sum += image[(c * h + y) * w + x] as f64 * weight[((k * ci + c) * 3 + ky) * 3 + kx] as f64;
                                    }
                                }
                            }
                        }
                        out.push(sum);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_ragged_maps_with_and_without_padding() {
        let values = |n: usize, seed: usize| (0..n).map(|i| (((i * 37 + seed * 11) % 29) as f32 - 14.0) / 7.0).collect::<Vec<f32>>();
        // (input, pad before, output): "same" on a map of whole tiles, on a ragged one, and "valid".
        for (input, pad_before, output) in [([8, 8], [1, 1], [8, 8]), ([11, 9], [1, 1], [11, 9]), ([13, 10], [0, 0], [11, 8])] {
            let g = Geometry { input, pad_before, output };
            let x = values(2 * 17 * input[0] * input[1], 1);
            let w = values(19 * 17 * 9, 2);
            let b = values(19, 3);
            // Last, with a ReLU6 as the epilogue's clamp (the error bound is the unclamped values').
            for (bias, band_rows, clamp) in [(Some(&b[..]), 1, None), (None, 2, None), (Some(&b[..]), 100, Some((0.0, 6.0)))] {
                let got = forward_in_bands(&x, &Filters::new(&w, 17, 19), &Epilogue { bias, clamp }, &g, band_rows);
                let mut want = direct(&x, &w, bias, 19, &g);
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                if let Some((lo, hi)) = clamp {
                    want.iter_mut().for_each(|v| *v = v.clamp(lo as f64, hi as f64));
                }
                assert_eq!(got.len(), want.len());
                let worst = got.iter().zip(&want).fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
                assert!(worst < 1e-5 * scale, "{g:?}, {band_rows} rows a band: off by {worst} on values up to {scale}");
            }
        }
    }
}
