//! What the host conv kernels (`winograd`, `depthwise`, `pointwise`) share: the epilogue they
//! apply to each value before storing it, and how they spread work over the threads.

use std::sync::{Arc, OnceLock};

/// What a conv's host kernel made from its weights on its first forward (Winograd's filters, or
/// the values read out of flex's tensors, which would otherwise be copied on every forward),
/// kept for the next ones; clones of the conv share it.
pub struct Prepared<T>(Arc<OnceLock<T>>);

impl<T> Clone for Prepared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Prepared<T> {
    fn default() -> Self {
        Self(Arc::new(OnceLock::new()))
    }
}

impl<T> Prepared<T> {
    /// The kept value, or the one `make` gives (kept), or None when it gives none.
    pub fn get_or_make(&self, make: impl FnOnce() -> Option<T>) -> Option<&T> {
        if self.0.get().is_none() {
            let _ = self.0.set(make()?);
        }
        self.0.get()
    }
}

impl<T> std::fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prepared({})", if self.0.get().is_some() { "made" } else { "empty" })
    }
}

/// A conv's bias, then its activation when that is a clamp (ReLU, ReLU6, Clip). flex adds a bias
/// and applies an activation in a pass over the whole map each, on one thread; a kernel applies
/// them to values still in cache, in its own threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// (lo, hi): the activation, as `Tensor::clamp_min(lo).clamp_max(hi)` computes it
    /// (`Act::as_clamp`).
    pub clamp: Option<(f32, f32)>,
}

impl<'a> Epilogue<'a> {
    /// The values of output channel `k`, in place.
    pub fn apply(&self, k: usize, values: &mut [f32]) {
        let b = self.bias.map_or(0.0, |b| b[k]);
        match (self.bias.is_some(), self.clamp) {
            (false, None) => {}
            (true, None) => values.iter_mut().for_each(|v| *v += b),
            (_, Some((lo, hi))) => values.iter_mut().for_each(|v| *v = clamp(*v + b, lo, hi)),
        }
    }

    /// One pixel's values, one lane per output channel, in place.
    pub fn apply_lanes(&self, pixel: &mut [f32]) {
        if let Some(bias) = self.bias {
            pixel.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        if let Some((lo, hi)) = self.clamp {
            pixel.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
        }
    }
}

/// flex's `clamp_min` then `clamp_max`: NaN stays NaN.
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// `f` on each item, in parallel where rayon runs flex's loops too (natively, the threaded
/// browser build).
pub fn for_each<T: Send>(items: Vec<T>, f: &(dyn Fn(T) + Sync)) {
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
    }
    #[cfg(all(target_family = "wasm", not(feature = "threads")))]
    items.into_iter().for_each(f);
}

/// How one `gemm` call of `m × n × k` multiply-adds runs: on rayon's threads from flex's size
/// (192³) up, as flex's own products do, where there are threads.
pub fn gemm_parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    #[cfg(any(not(target_family = "wasm"), feature = "threads"))]
    if m.saturating_mul(n).saturating_mul(k) >= 192 * 192 * 192 {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = (m, n, k);
    gemm::Parallelism::None
}
