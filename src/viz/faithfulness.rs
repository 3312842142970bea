//! Is a heatmap faithful to the network? Metrics that change the photo where a class activation
//! map says the evidence is, and watch the class score:
//!
//! - **Deletion / insertion** (Petsiuk et al. 2018, RISE): the most salient pixels are removed
//!   (set to the input the network sees as zero: the dataset mean for mean/std preprocessing) or,
//!   from a blurred photo, inserted back, step by step; the area under the probability curve
//!   (low for deletion, high for insertion is faithful). A random map's curves come alongside.
//! - **ROAD** (Rong et al. 2022) exactly as pytorch-grad-cam 1.5.7 ships it: at each percentile
//!   the most (MoRF) or least (LeRF) relevant pixels are imputed by noisy linear interpolation of
//!   their neighbours (so the model cannot read the shape of the hole), and the probability change
//!   is averaged over the percentiles; combined = (LeRF − MoRF) / 2, higher is better.
//! - **Confidence change** (pytorch-grad-cam's `CamMultImageConfidenceChange`): the probability
//!   after multiplying the network's input by the map, minus before.
//! - **Sanity check** (Adebayo et al. 2018, model randomization): the map again after every layer
//!   above the map's layer is re-initialized at random, and its Spearman rank correlation with the
//!   original. A method that explains the network changes with it (low correlation); one that
//!   mostly shows the image's edges does not.
//!
//! The photo is the network's input (squashed to its size) in 0–255 pixels; every change is made
//! there. ROAD's imputation commutes with the per-channel affine preprocessing, and its noise is
//! scaled per channel to be pytorch-grad-cam's in the preprocessed space.

use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::backend::read_f32;
use crate::error::{Error, Result};
use crate::graph::LayerKind;
use crate::network::Network;
use crate::picture::{planes, squash, Photo};
use crate::random::SplitMix;
use crate::viz::gradcam::{smoothed_class_activation_map, upsample, Cam, CamMethod, Score, Smoothing};

/// How the metrics are run.
#[derive(Debug, Clone)]
pub struct MetricOptions {
    /// Steps of the deletion / insertion curves (each step a forward pass).
    pub steps: usize,
    /// ROAD's percentiles (pytorch-grad-cam: 10, 20, …, 90).
    pub percentiles: Vec<u32>,
    /// ROAD's imputation noise, in the preprocessed input's units (pytorch-grad-cam: 0.01).
    pub noise: f32,
    /// Seed of the random map and of the imputation noise.
    pub seed: u64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self { steps: 16, percentiles: (1..=9).map(|p| p * 10).collect(), noise: 0.01, seed: 0 }
    }
}

/// A class probability against the fraction of pixels removed (or inserted), and its area.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub fractions: Vec<f32>,
    pub scores: Vec<f32>,
    /// Trapezoidal area under the curve, fractions 0 to 1.
    pub auc: f32,
}

/// ROAD's probability changes per percentile and their summary.
#[derive(Debug, Clone, Serialize)]
pub struct Road {
    pub percentiles: Vec<u32>,
    /// Most relevant imputed first: the change at each percentile (faithful: a large drop).
    pub most_relevant_first: Vec<f32>,
    /// Least relevant imputed first (faithful: little change).
    pub least_relevant_first: Vec<f32>,
    /// (mean LeRF − mean MoRF) / 2: higher is more faithful.
    pub combined: f32,
}

/// Every metric of one map.
#[derive(Debug, Clone, Serialize)]
pub struct Faithfulness {
    pub class: usize,
    /// The class probability on the unchanged input.
    pub prob: f32,
    pub deletion: Curve,
    pub insertion: Curve,
    /// The same curves for a random map: what "no better than chance" looks like here.
    pub random_deletion: Curve,
    pub random_insertion: Curve,
    pub road: Road,
    pub confidence_change: f32,
}

/// The network's input as 0–255 pixels, channel-major [3][H][W].
struct Input {
    width: usize,
    height: usize,
    pixels: Vec<f32>,
}

impl Input {
    fn plane(&self) -> usize {
        self.width * self.height
    }
}

/// The metrics of `cam` (computed on `photo` by `net`) for `cam.class`.
pub async fn faithfulness(net: &Network, photo: &Photo, cam: &Cam, options: &MetricOptions) -> Result<Faithfulness> {
    if options.steps == 0 || options.steps > 256 {
        return Err(Error::invalid(format!("the curves take 1 to 256 steps, not {}", options.steps)));
    }
    if options.percentiles.is_empty() || options.percentiles.iter().any(|&p| p == 0 || p >= 100) {
        return Err(Error::invalid("ROAD's percentiles are between 1 and 99"));
    }
    let [height, width] = net.input_hw();
    let input = Input { width, height, pixels: planes(&squash(photo, [height, width])) };
    let saliency = upsample(cam, width, height);
    let mut rng = SplitMix(options.seed);
    let random_map = Cam { map: (0..cam.map.len()).map(|_| rng.uniform()).collect(), ..cam.clone() };
    let random = upsample(&random_map, width, height);
    let affine = net.preprocessing.affine_by_source();
    let blurred = blur(&input);

    // One list of inputs, scored in batches: the photo and the blurred photo (where every curve
    // starts or ends), the inner points of the map's deletion and insertion curves, the random
    // map's, ROAD's (MoRF, then LeRF), the photo times the map.
    let mut images = vec![input.pixels.clone(), blurred.clone()];
    for map in [&saliency, &random] {
        let (deletion, insertion) = curve_images(&input, map, options.steps, &affine, &blurred);
        images.extend(deletion.into_iter().chain(insertion));
    }
    images.extend(road_images(&input, &saliency, &options.percentiles, options.noise, &affine, &mut rng));
    images.push(net.preprocessing.times(&input.pixels, |i| saliency[i]));
    let scores = class_scores(net, &input, &images, cam.class).await?;

    let (ends, rest) = scores.split_at_checked(2).ok_or_else(|| Error::Backend("no scores came back".into()))?;
    let (prob, blurred_prob) = (ends[0], ends[1]);
    let inner = 2 * options.steps - 1; // per map: deletion steps 1..=n, insertion steps 1..n
    let (maps, rest) = rest.split_at(2 * inner);
    let curves = |part: &[f32]| {
        let (deleted, inserted) = part.split_at(options.steps);
        (Curve::new([&[prob], deleted].concat()), Curve::new([&[blurred_prob], inserted, &[prob]].concat()))
    };
    let ((deletion, insertion), (random_deletion, random_insertion)) = (curves(&maps[..inner]), curves(&maps[inner..]));
    let (road, rest) = rest.split_at(2 * options.percentiles.len());
    let change = |s: &[f32]| s.iter().map(|v| v - prob).collect::<Vec<f32>>();
    let (morf, lerf) = (change(&road[..options.percentiles.len()]), change(&road[options.percentiles.len()..]));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    Ok(Faithfulness {
        class: cam.class,
        prob,
        deletion,
        insertion,
        random_deletion,
        random_insertion,
        road: Road {
            percentiles: options.percentiles.clone(),
            combined: (mean(&lerf) - mean(&morf)) / 2.0,
            most_relevant_first: morf,
            least_relevant_first: lerf,
        },
        confidence_change: rest.first().map_or(0.0, |s| s - prob),
    })
}

/// The model-randomization sanity check of one map.
#[derive(Debug, Clone, Serialize)]
pub struct SanityCheck {
    /// The layers after this one were re-initialized (the map's own layer).
    pub randomized_after: String,
    /// Spearman's rank correlation of the two maps: near 1, the map did not notice.
    pub rank_correlation: f32,
    /// The map of the randomized network, at the layer's resolution.
    pub randomized_map: Vec<f32>,
}

/// The sanity check of `cam`, made with `method` (and `smoothing`) on `net`: every layer after
/// the map's is re-initialized (He-normal weights from `seed`, zero biases), the map made again
/// for the same class, and ranked against the original.
pub async fn sanity_check(net: &Network, photo: &Photo, cam: &Cam, method: CamMethod, smoothing: Smoothing, seed: u64) -> Result<SanityCheck> {
    let mut rng = SplitMix(seed);
    let random = net.randomized_after(&cam.layer, &mut || rng.normal())?;
    let (rank_correlation, randomized_map) = map_again(&random, photo, cam, method, smoothing).await?;
    Ok(SanityCheck { randomized_after: cam.layer.clone(), rank_correlation, randomized_map })
}

/// `cam` made again the same way on a randomized network, and its rank correlation with `cam`.
async fn map_again(random: &Network, photo: &Photo, cam: &Cam, method: CamMethod, smoothing: Smoothing) -> Result<(f32, Vec<f32>)> {
    let again = smoothed_class_activation_map(random, photo, &cam.layer, Some(cam.class), method, Score::Probability, smoothing).await?;
    Ok((spearman(&cam.map, &again.map), again.map))
}

/// One step of the cascading randomization: `randomized_from` and every layer above it
/// re-initialized, and the map made again.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeStep {
    pub randomized_from: String,
    pub rank_correlation: f32,
}

/// The cascading model randomization of Adebayo et al. (2018): the weighted layers (conv,
/// dense) re-initialized from the top down, one more each step, down to the first, the map made
/// again after each step for the same class and ranked against `cam`. A map that explains the
/// network decorrelates early and stays low; one that only sees edges of the photo does not.
pub async fn cascading_sanity(net: &Network, photo: &Photo, cam: &Cam, method: CamMethod, smoothing: Smoothing, seed: u64) -> Result<Vec<CascadeStep>> {
    let weighted = net.layers().iter().rev().filter(|l| matches!(l.kind, LayerKind::Conv | LayerKind::Dense)).map(|l| l.name.clone()).collect::<Vec<_>>();
    let mut steps = Vec::with_capacity(weighted.len());
    for layer in weighted {
        let mut rng = SplitMix(seed);
        let random = net.randomized_from(&layer, &mut || rng.normal())?;
        let (rank_correlation, _) = map_again(&random, photo, cam, method, smoothing).await?;
        steps.push(CascadeStep { randomized_from: layer, rank_correlation });
        crate::backend::yield_now().await;
    }
    Ok(steps)
}

/// Spearman's rank correlation (ties share their average rank; a constant side gives 0).
pub fn spearman(a: &[f32], b: &[f32]) -> f32 {
    let ranks = |v: &[f32]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut rank = vec![0f64; v.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            while end + 1 < order.len() && v[order[end + 1]] == v[order[start]] {
                end += 1;
            }
            let mean = (start + end) as f64 / 2.0;
            order[start..=end].iter().for_each(|&i| rank[i] = mean);
            start = end + 1;
        }
        rank
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (ra.iter().map(|x| (x - ma).powi(2)).sum(), rb.iter().map(|y| (y - mb).powi(2)).sum());
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    (cov / (va * vb).sqrt()) as f32
}

impl Curve {
    fn new(scores: Vec<f32>) -> Self {
        let n = scores.len() - 1;
        let fractions = (0..=n).map(|k| k as f32 / n as f32).collect();
        let auc = scores.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f32>() / n as f32;
        Self { fractions, scores, auc }
    }
}

/// Pixel indices from the most to the least salient (ties in index order, so runs repeat).
fn most_salient_first(saliency: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..saliency.len()).collect();
    order.sort_by(|&a, &b| saliency[b].total_cmp(&saliency[a]));
    order
}

/// The inner points of the deletion curve (steps 1..=n: the first k/n of the most salient pixels
/// set to the input the network sees as zero) and of the insertion curve (steps 1..n: the blurred
/// photo with them put back). Step 0 of deletion and step n of insertion are the photo, step 0 of
/// insertion the blurred photo: scored once, by the caller.
fn curve_images(input: &Input, saliency: &[f32], steps: usize, affine: &[(f32, f32); 3], blurred: &[f32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let order = most_salient_first(saliency);
    let plane = input.plane();
    let neutral = affine.map(|(scale, shift)| -shift / scale);
    let mut deleted = input.pixels.clone();
    let mut inserted = blurred.to_vec();
    let (mut deletion, mut insertion) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut done = 0;
    for k in 1..=steps {
        let until = (k * plane).div_ceil(steps).min(plane);
        for &i in &order[done..until] {
            for c in 0..3 {
                deleted[c * plane + i] = neutral[c];
                inserted[c * plane + i] = input.pixels[c * plane + i];
            }
        }
        done = until;
        deletion.push(deleted.clone());
        if k < steps {
            insertion.push(inserted.clone());
        }
    }
    (deletion, insertion)
}

/// numpy's `percentile` (linear interpolation between order statistics).
fn percentile(values: &[f32], p: u32) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = p as f64 / 100.0 * (sorted.len() - 1) as f64;
    let (lo, t) = (rank.floor() as usize, rank.fract() as f32);
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * t
}

/// ROAD's images: for each percentile, MoRF (pixels at or above the percentile imputed) then
/// LeRF (the same on 1 − saliency), as pytorch-grad-cam's `RemoveMostRelevantFirst` does.
fn road_images(input: &Input, saliency: &[f32], percentiles: &[u32], noise: f32, affine: &[(f32, f32); 3], rng: &mut SplitMix) -> Vec<Vec<f32>> {
    let inverse: Vec<f32> = saliency.iter().map(|s| 1.0 - s).collect();
    let mut out = Vec::with_capacity(2 * percentiles.len());
    for map in [saliency, &inverse[..]] {
        for &p in percentiles {
            let threshold = percentile(map, p);
            let keep: Vec<bool> = map.iter().map(|&v| v < threshold).collect();
            out.push(impute(input, &keep, noise, affine, rng));
        }
    }
    out
}

/// The neighbours ROAD's noisy linear imputation averages, with their weights (its
/// `neighbors_weights`).
const NEIGHBOURS: [(isize, isize, f32); 8] = [
    (1, 1, 1.0 / 12.0),
    (0, 1, 1.0 / 6.0),
    (-1, 1, 1.0 / 12.0),
    (1, -1, 1.0 / 12.0),
    (0, -1, 1.0 / 6.0),
    (-1, -1, 1.0 / 12.0),
    (1, 0, 1.0 / 6.0),
    (-1, 0, 1.0 / 6.0),
];

/// Noisy linear imputation (Rong et al. 2022): every pixel not kept becomes the weighted mean of
/// its in-image neighbours, kept or imputed: one sparse symmetric positive-definite system, the
/// same for the three channels (pytorch-grad-cam solves it with scipy's `spsolve`; here conjugate
/// gradients to 1e-6 relative), plus
/// N(0, noise²) in the preprocessed space.
fn impute(input: &Input, keep: &[bool], noise: f32, affine: &[(f32, f32); 3], rng: &mut SplitMix) -> Vec<f32> {
    let (w, h, plane) = (input.width, input.height, input.plane());
    let unknown: Vec<usize> = (0..plane).filter(|&i| !keep[i]).collect();
    let mut out = input.pixels.clone();
    if unknown.is_empty() || unknown.len() == plane {
        return out; // nothing to impute, or nothing to impute from
    }
    let mut slot = vec![usize::MAX; plane];
    unknown.iter().enumerate().for_each(|(k, &i)| slot[i] = k);
    // The system in compressed rows: row k has the weights of its in-image neighbours on the
    // diagonal, minus the weights of its unknown neighbours; its kept neighbours go to the right.
    let mut system = Sparse { diagonal: vec![0.0; unknown.len()], starts: vec![0], columns: Vec::new(), weights: Vec::new() };
    let mut right = vec![0f32; 3 * unknown.len()];
    for (k, &i) in unknown.iter().enumerate() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for &(dy, dx, weight) in &NEIGHBOURS {
            let (ny, nx) = (y + dy, x + dx);
            if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            system.diagonal[k] += weight;
            if keep[j] {
                for c in 0..3 {
                    right[c * unknown.len() + k] += weight * input.pixels[c * plane + j];
                }
            } else {
                system.columns.push(slot[j]);
                system.weights.push(weight);
            }
        }
        system.starts.push(system.columns.len());
    }
    for c in 0..3 {
        let image = &input.pixels[c * plane..(c + 1) * plane];
        // From the mean of the kept pixels: the solution does not depend on where it starts.
        let kept: Vec<f32> = (0..plane).filter(|&i| keep[i]).map(|i| image[i]).collect();
        let mean = kept.iter().sum::<f32>() / kept.len() as f32;
        let n = unknown.len();
        let solution = system.solve(&right[c * n..(c + 1) * n], vec![mean; n]);
        let sigma = noise / affine[c].0.abs();
        for (k, &i) in unknown.iter().enumerate() {
            out[c * plane + i] = solution[k] + if sigma > 0.0 { sigma * rng.normal() } else { 0.0 };
        }
    }
    out
}

/// A symmetric positive-definite matrix: a diagonal and, per row, off-diagonal weights that are
/// subtracted (A x = diagonal·x − Σ weight·x[column]).
struct Sparse {
    diagonal: Vec<f32>,
    starts: Vec<usize>,
    columns: Vec<usize>,
    weights: Vec<f32>,
}

impl Sparse {
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            let (a, b) = (self.starts[k], self.starts[k + 1]);
            let off: f32 = self.columns[a..b].iter().zip(&self.weights[a..b]).map(|(&j, &w)| w * x[j]).sum();
            *o = self.diagonal[k] * x[k] - off;
        }
    }

    /// Conjugate gradients from `x` until the residual is 1e-6 of the right-hand side.
    fn solve(&self, b: &[f32], mut x: Vec<f32>) -> Vec<f32> {
        let n = b.len();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
        let mut ax = vec![0f32; n];
        self.apply(&x, &mut ax);
        let mut r: Vec<f32> = b.iter().zip(&ax).map(|(b, a)| b - a).collect();
        let mut p = r.clone();
        let mut rr = dot(&r, &r);
        let target = 1e-12 * dot(b, b).max(1e-12);
        for _ in 0..4 * n {
            if rr <= target {
                break;
            }
            self.apply(&p, &mut ax);
            let alpha = (rr / dot(&p, &ax)) as f32;
            x.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
            r.iter_mut().zip(&ax).for_each(|(r, a)| *r -= alpha * a);
            let next = dot(&r, &r);
            let beta = (next / rr) as f32;
            p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + beta * *p);
            rr = next;
        }
        x
    }
}

/// RISE's insertion canvas: a Gaussian blur (σ = 5, 11 taps), edges clamped.
fn blur(input: &Input) -> Vec<f32> {
    let kernel: Vec<f32> = (-5..=5).map(|d: i32| (-(d * d) as f32 / 50.0).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let (w, h, plane) = (input.width, input.height, input.plane());
    let mut out = input.pixels.clone();
    let mut row = vec![0f32; plane];
    for c in 0..3 {
        let src = &input.pixels[c * plane..(c + 1) * plane];
        for y in 0..h {
            for x in 0..w {
                row[y * w + x] = kernel.iter().enumerate().map(|(t, k)| k * src[y * w + (x + t).saturating_sub(5).min(w - 1)]).sum();
            }
        }
        for y in 0..h {
            for x in 0..w {
                out[c * plane + y * w + x] = kernel.iter().enumerate().map(|(t, k)| k * row[(y + t).saturating_sub(5).min(h - 1) * w + x]).sum();
            }
        }
    }
    out
}

/// The probability of `class` for each image, in batches (memory stays bounded for big nets).
async fn class_scores(net: &Network, input: &Input, images: &[Vec<f32>], class: usize) -> Result<Vec<f32>> {
    const BATCH: usize = 8;
    let classes = net.logit_count();
    let mut scores = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let data: Vec<f32> = chunk.iter().flatten().copied().collect();
        let pixels = Tensor::<4>::from_data(TensorData::new(data, [chunk.len(), 3, input.height, input.width]), net.device());
        let probs = read_f32(net.probabilities(net.forward(pixels)?)).await?;
        scores.extend(probs.chunks(classes).map(|row| row.get(class).copied().unwrap_or(0.0)));
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([3, 1, 2, 10], [10, 50, 90]) = [1.3, 2.5, 7.9]
        for (p, want) in [(10, 1.3), (50, 2.5), (90, 7.9)] {
            assert!((percentile(&[3.0, 1.0, 2.0, 10.0], p) - want).abs() < 1e-5, "{p}");
        }
    }

    #[test]
    fn imputation_of_a_linear_ramp_is_exact() {
        // A ramp in x is its neighbours' symmetric weighted mean, so any hole fills back exactly.
        let (w, h) = (12, 9);
        let pixels: Vec<f32> = (0..3).flat_map(|c| (0..w * h).map(move |i| (i % w) as f32 * 10.0 + c as f32)).collect();
        let input = Input { width: w, height: h, pixels };
        let keep: Vec<bool> = (0..w * h).map(|i| !(3..8).contains(&(i % w)) || !(2..7).contains(&(i / w))).collect();
        let out = impute(&input, &keep, 0.0, &[(1.0, 0.0); 3], &mut SplitMix(1));
        let worst = out.iter().zip(&input.pixels).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "worst {worst}");
    }

    #[test]
    fn spearman_uses_average_ranks() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-6);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        // scipy.stats.spearmanr([0, 0, 1, 2], [0, 1, 1, 2]).statistic = 0.8333…
        assert!((spearman(&[0.0, 0.0, 1.0, 2.0], &[0.0, 1.0, 1.0, 2.0]) - 5.0 / 6.0).abs() < 1e-6);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn curve_area_is_trapezoidal() {
        let c = Curve::new(vec![1.0, 0.5, 0.0]);
        assert_eq!(c.fractions, vec![0.0, 0.5, 1.0]);
        assert!((c.auc - 0.5).abs() < 1e-6);
    }
}
