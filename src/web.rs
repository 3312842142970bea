//! The wasm-bindgen boundary: marshalling only. JavaScript (the page's worker) creates an
//! `Engine` on WebGPU or the CPU, loads a model file's bytes, sets the photo as RGBA pixels and asks
//! for predictions, Grad-CAM, activations and filter patterns. Options come in as one plain object
//! each, results go out as plain objects (serde-wasm-bindgen); pictures as
//! `{width, height, rgba: Uint8ClampedArray}`, ready for `new ImageData(rgba, width, height)`.
//! Errors reject with a `JsError` whose message is the core's one-line `Error`.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use js_sys::{Function, Object, Reflect, Uint8Array, Uint8ClampedArray};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::Backend;
use crate::models::CATALOGUE;
use crate::network::Network;
use crate::open::{import, open, OpenOptions};
use crate::picture::{animated_gif, Colormap, Photo, Rgba};
use crate::predict::{predict, top_k};
use crate::preprocess::Preprocessing;
use crate::viz::activations::{channel_picture, layer_grid, spatial_layers, ActivationWalk, LayerActivation};
use crate::viz::dream::{deep_dream, DreamOptions};
use crate::viz::faithfulness::{faithfulness, sanity_check, MetricOptions};
use crate::viz::filters::{filter_patterns, pattern_grid, AscentMode, FilterOptions, Objective, Progress, DEFAULT_DIVERSITY};
use crate::viz::gradcam::{class_activation_map_of_pass, overlay, smoothed_class_activation_map, Cam, CamMethod, Score, Smoothing, TappedPass};
use crate::viz::guided::{guided_gradcam_picture, guided_gradient};

/// `initThreadPool(n)` for the threaded build: a rayon pool of n threads for flex, the caller
/// and n − 1 Web Workers on the shared wasm memory; the worker calls it once, right after `init()`.
#[cfg(feature = "threads")]
pub use crate::thread_pool::init_thread_pool;

unsafe extern "C" {
    /// The module's static constructors (cubecl registers its IR dialects through `inventory`),
    /// synthesized by wasm-ld.
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
pub fn start() {
    // Run the constructors once, here. A module that never calls them itself is linked as a
    // "command": wasm-ld wraps every export, wasm-bindgen's externref bookkeeping included, in a
    // call to all of them, which made each crossing of the boundary cost ~0.5 ms.
    // SAFETY: wasm-ld's own function; it runs before any other Rust code of this instance.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

/// A result for JavaScript, through JSON: one string crosses the boundary. serde-wasm-bindgen's
/// serializer made one import call per value, which cost about 0.5 ms each in Chromium and Node
/// here (a model's description, 1000 labels and 60 layers, took 1 s; now 1 ms).
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(value).map_err(|e| JsError::new(&format!("cannot encode the result: {e}")))?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("cannot decode the result"))
}

/// An options object from JavaScript; `undefined` or `null` means every default.
fn from_js<T: for<'de> Deserialize<'de> + Default>(value: JsValue, what: &str) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("bad {what} options: {e}")))
}

/// A picture as `{width, height, rgba}` (a typed array, which serde would turn into numbers).
fn picture(p: &Rgba) -> Result<JsValue, JsError> {
    let obj = Object::new();
    set(&obj, "width", &(p.width as u32).into())?;
    set(&obj, "height", &(p.height as u32).into())?;
    // Copied as bytes, then viewed as clamped: a Uint8ClampedArray made straight from the
    // memory's Uint8Array converts value by value (VGG16's 17 M pixels: ~0.2 s; a copy: ~10 ms).
    let bytes = Uint8Array::from(p.data.as_slice());
    set(&obj, "rgba", &Uint8ClampedArray::new(&bytes.buffer()).into())?;
    Ok(obj.into())
}

fn set(obj: &Object, key: &str, value: &JsValue) -> Result<(), JsError> {
    Reflect::set(obj, &key.into(), value).map(drop).map_err(|_| JsError::new(&format!("cannot set '{key}' on a result object")))
}

/// Runs `work` as a Promise that rejects with the `JsError` it fails with.
fn promise(work: impl std::future::Future<Output = Result<JsValue, JsError>> + 'static) -> js_sys::Promise {
    future_to_promise(async move { work.await.map_err(JsValue::from) })
}

struct State {
    device: Device,
    backend: Backend,
    net: RefCell<Option<Rc<Network>>>,
    photo: RefCell<Option<Rc<Photo>>>,
    /// The current photo's activations computed so far, so switching layers or enlarging a
    /// channel needs no new forward pass (seconds for VGG16). Cleared with the photo or network.
    walk: RefCell<Option<ActivationWalk>>,
    /// The last class activation map, so a new colormap or opacity redraws without recomputing.
    cam: RefCell<Option<Rc<KeptCam>>>,
    /// The predictions' forward pass, tapped at `cam_layer`, until a Grad-CAM there spends it.
    pass: RefCell<Option<TappedPass>>,
    /// The layer of the last Grad-CAM on this network (None: its default layer).
    cam_layer: RefCell<Option<String>>,
}

/// A map and how it was made (the sanity check makes it again the same way).
struct KeptCam {
    cam: Cam,
    method: CamMethod,
    smoothing: Smoothing,
}

impl State {
    fn net(&self) -> Result<Rc<Network>, JsError> {
        self.net.borrow().clone().ok_or_else(|| JsError::new("no model loaded yet"))
    }
    fn photo(&self) -> Result<Rc<Photo>, JsError> {
        self.photo.borrow().clone().ok_or_else(|| JsError::new("no photo yet: drop or choose one"))
    }
    fn kept_cam(&self) -> Result<Rc<KeptCam>, JsError> {
        self.cam.borrow().clone().ok_or_else(|| JsError::new("no Grad-CAM map yet for this photo"))
    }
    /// Forgets what was computed for the previous photo or network.
    fn forget(&self) {
        *self.walk.borrow_mut() = None;
        *self.cam.borrow_mut() = None;
        *self.pass.borrow_mut() = None;
    }
    /// The activation of `layer` for the current photo, from the walk through its layers.
    async fn activation(&self, layer: &str) -> Result<Rc<LayerActivation>, JsError> {
        let (net, photo) = (self.net()?, self.photo()?);
        // Taken out of its cell while it computes, so an overlapping call cannot find it borrowed.
        let mut walk = match self.walk.borrow_mut().take() {
            Some(walk) => walk,
            None => ActivationWalk::new(&net, &photo)?,
        };
        let act = walk.get(&net, layer).await;
        // Put back only if neither the photo nor the network changed while it computed.
        if self.unchanged(&net, &photo) {
            *self.walk.borrow_mut() = Some(walk);
        }
        Ok(act?)
    }
    fn unchanged(&self, net: &Rc<Network>, photo: &Rc<Photo>) -> bool {
        self.photo.borrow().as_ref().is_some_and(|p| Rc::ptr_eq(p, photo)) && self.net.borrow().as_ref().is_some_and(|n| Rc::ptr_eq(n, net))
    }
}

/// The built-in networks [{name, title, input_size, default_cam_layer, default_filter_layer,
/// bundled, weights_hint}], for the page's model menu.
#[wasm_bindgen]
pub fn catalogue() -> Result<JsValue, JsError> {
    to_js(&CATALOGUE)
}

/// Weights of the built-in `model` in any format it reads, rewritten as ConvLens f16
/// `.safetensors`: half the bytes of an f32 download, for the page to keep and cache.
#[wasm_bindgen]
pub fn compact(bytes: &[u8], model: &str) -> Result<Vec<u8>, JsError> {
    Ok(import(bytes, model)?.to_safetensors(true)?)
}

/// An animated GIF of `frames` (pictures {width, height, rgba}, all of one size), `frame_ms`
/// apart: the filter patterns' optimization, frame by frame.
#[wasm_bindgen]
pub fn animation(frames: js_sys::Array, frame_ms: u32) -> Result<Vec<u8>, JsError> {
    let field = |frame: &JsValue, key: &str| Reflect::get(frame, &key.into()).map_err(|_| JsError::new(&format!("a frame has no {key}")));
    let mut pictures = Vec::with_capacity(frames.length() as usize);
    for frame in frames.iter() {
        let size = |key| field(&frame, key)?.as_f64().map(|v| v as usize).ok_or_else(|| JsError::new(&format!("a frame's {key} is not a number")));
        let (width, height) = (size("width")?, size("height")?);
        let data = Uint8ClampedArray::from(field(&frame, "rgba")?).to_vec();
        if data.len() != width * height * 4 {
            return Err(JsError::new("a frame has the wrong number of pixels"));
        }
        pictures.push(Rgba { width, height, data });
    }
    Ok(animated_gif(&pictures, frame_ms)?)
}

/// One compute device with at most one network and one photo.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<State>,
}

/// What the page says about a file it loads; every field optional.
#[derive(Deserialize, Default)]
struct LoadOptions {
    model: Option<String>,
    preprocessing: Option<String>,
    input_height: Option<usize>,
    input_width: Option<usize>,
    labels: Option<Vec<String>>,
    /// Files given with the model (an ONNX model's external weights), by file name.
    #[serde(default)]
    companions: Vec<Companion>,
}

#[derive(Deserialize)]
struct Companion {
    name: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// A Grad-CAM request.
#[derive(Deserialize, Default)]
struct CamOptions {
    layer: String,
    /// None (or negative): the top class.
    class: Option<i64>,
    method: Option<String>,
    colormap: Option<String>,
    opacity: Option<f32>,
    /// The first principal component instead of the sum (pytorch-grad-cam's eigen_smooth).
    #[serde(default)]
    eigen_smooth: bool,
    /// The mean map over mirrored and brightened copies (pytorch-grad-cam's aug_smooth).
    #[serde(default)]
    aug_smooth: bool,
}

/// A filter-pattern request.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilterRequest {
    layer: String,
    first: usize,
    count: usize,
    size: usize,
    steps: usize,
    mode: Option<String>,
    /// channel (default), neuron or class.
    objective: Option<String>,
    seed: u64,
    /// Send the current grid with the progress report every this many steps (0: never).
    preview_every: usize,
    /// Images per filter (default 1), pushed apart by the diversity term.
    variants: Option<usize>,
}

/// The overlay's look: the book's jet at 40 % unless the page says otherwise.
fn look(colormap: Option<&str>, opacity: Option<f32>) -> Result<(Colormap, f32), JsError> {
    let colormap = Colormap::parse(colormap.unwrap_or("jet"))?;
    Ok((colormap, opacity.unwrap_or(0.4).clamp(0.0, 1.0)))
}

#[wasm_bindgen]
impl Engine {
    /// `backend`: "webgpu" or "cpu". Rejects when WebGPU cannot be initialized.
    pub async fn create(backend: String) -> Result<Engine, JsError> {
        let backend = Backend::parse(&backend)?;
        let device = backend.device_async().await?;
        let state = State {
            device,
            backend,
            net: RefCell::default(),
            photo: RefCell::default(),
            walk: RefCell::default(),
            cam: RefCell::default(),
            pass: RefCell::default(),
            cam_layer: RefCell::default(),
        };
        Ok(Engine { state: Rc::new(state) })
    }

    /// "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.state.backend {
            Backend::Wgpu => "webgpu".into(),
            Backend::Cpu => "cpu".into(),
        }
    }

    /// Loads a model file in any supported format: an ONNX or Keras `.keras` / `.h5` model (its
    /// own architecture), ConvLens `.safetensors`, Keras `.h5` weights or a PyTorch state dict of a
    /// built-in. `options`: {model, preprocessing, input_height, input_width, labels,
    /// companions: [{name, bytes}]}, all optional. Replaces the current network only on success.
    /// Returns `describe()`.
    pub fn load(&self, bytes: &[u8], options: JsValue) -> Result<JsValue, JsError> {
        let o: LoadOptions = from_js(options, "load")?;
        let preprocessing = o.preprocessing.as_deref().filter(|p| !p.is_empty()).map(Preprocessing::parse).transpose()?;
        let input_hw = match (o.input_height, o.input_width) {
            (Some(h), Some(w)) => Some([h, w]),
            (Some(s), None) | (None, Some(s)) => Some([s, s]),
            _ => None,
        };
        let companions = o.companions.into_iter().map(|c| (c.name, c.bytes)).collect();
        let options = OpenOptions { model: o.model.filter(|m| !m.is_empty()), preprocessing, input_hw, labels: o.labels.filter(|l| !l.is_empty()), companions };
        let net = open(bytes, &options, &self.state.device)?;
        let description = to_js(&net.describe())?;
        *self.state.net.borrow_mut() = Some(Rc::new(net));
        self.state.forget();
        *self.state.cam_layer.borrow_mut() = None;
        Ok(description)
    }

    /// The current model: {model, title, from_file, origin, preprocessing, input_height,
    /// input_width, default_cam_layer, default_filter_layer, classes, labels, layers: [{name, kind, shape}]}.
    pub fn describe(&self) -> Result<JsValue, JsError> {
        to_js(&self.state.net()?.describe())
    }

    /// Replaces the class names (one per line, as many as the model has classes).
    #[wasm_bindgen(js_name = setLabels)]
    pub fn set_labels(&self, text: &str) -> Result<JsValue, JsError> {
        let labels: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        let mut slot = self.state.net.borrow_mut();
        let current = slot.take().ok_or_else(|| JsError::new("no model loaded yet"))?;
        // The network is shared (Rc) with running work only while it runs; a busy one is refused.
        let mut net = match Rc::try_unwrap(current) {
            Ok(net) => net,
            Err(shared) => {
                *slot = Some(shared);
                return Err(JsError::new("the model is busy; try again when the current work is done"));
            }
        };
        let result = net.set_labels(labels);
        let description = to_js(&net.describe());
        *slot = Some(Rc::new(net));
        drop(slot);
        self.state.forget();
        result?;
        description
    }

    /// Sets the photo from RGBA pixels (as from a canvas).
    #[wasm_bindgen(js_name = setPhoto)]
    pub fn set_photo(&self, rgba: &[u8], width: u32, height: u32) -> Result<(), JsError> {
        if width == 0 || height == 0 || rgba.len() != width as usize * height as usize * 4 {
            return Err(JsError::new(&format!("expected {width}×{height} RGBA pixels, got {} bytes", rgba.len())));
        }
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let photo = Photo::from_raw(width, height, rgb).ok_or_else(|| JsError::new("photo buffer has the wrong size"))?;
        *self.state.photo.borrow_mut() = Some(Rc::new(photo));
        self.state.forget();
        Ok(())
    }

    /// The top-`top` classes: [{index, label, prob}]. The forward pass is tapped at the layer the
    /// Grad-CAM that follows will ask for (the last one asked, else the default) and kept for it.
    pub fn predict(&self, top: usize) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let (net, photo) = (state.net()?, state.photo()?);
            let layer = state.cam_layer.borrow().clone().unwrap_or_else(|| net.default_cam_layer().to_string());
            let rows = match TappedPass::of_photo(&net, &photo, &layer).await {
                Ok(pass) => {
                    let rows = top_k(&net, pass.probabilities(), top.max(1));
                    if state.unchanged(&net, &photo) {
                        *state.pass.borrow_mut() = Some(pass);
                    }
                    rows
                }
                // A layer that cannot be tapped (a network without a spatial map): the plain pass.
                Err(_) => predict(&net, &[(*photo).clone()], top.max(1)).await?.remove(0),
            };
            to_js(&rows)
        })
    }

    /// Class activation map: `options` {layer, class (absent or negative: the top class),
    /// method: gradcam | gradcam++ | layercam, eigen_smooth, aug_smooth, colormap, opacity}. Resolves to
    /// {info: {layer, class, label, prob, height, width, map}, overlay: picture} — `map` the 0–1
    /// values at the layer's resolution, row-major (the benchmark compares them); the core's overlay,
    /// the same the CLI writes. The map is kept for `overlay()`.
    pub fn gradcam(&self, options: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let o: CamOptions = from_js(options, "Grad-CAM")?;
            let (net, photo) = (state.net()?, state.photo()?);
            let method = CamMethod::parse(o.method.as_deref().unwrap_or("gradcam"))?;
            let (colormap, opacity) = look(o.colormap.as_deref(), o.opacity)?;
            let class = o.class.and_then(|c| usize::try_from(c).ok());
            let smoothing = Smoothing { eigen: o.eigen_smooth, augment: o.aug_smooth };
            // The predictions' pass, when it is tapped at this layer: a backward, no forward.
            let kept = state.pass.borrow_mut().take().filter(|pass| net.layer(&o.layer).is_ok_and(|l| l.name == pass.layer()));
            let cam = match kept {
                Some(pass) => class_activation_map_of_pass(&net, &photo, pass, class, method, Score::Probability, smoothing).await?,
                None => smoothed_class_activation_map(&net, &photo, &o.layer, class, method, Score::Probability, smoothing).await?,
            };
            *state.cam_layer.borrow_mut() = Some(cam.layer.clone());
            let picture = picture(&overlay(&cam, &photo, colormap, opacity))?;
            let info = serde_json::json!({"layer": cam.layer, "class": cam.class, "label": cam.label, "prob": cam.prob, "height": cam.height, "width": cam.width, "map": cam.map});
            if state.unchanged(&net, &photo) {
                *state.cam.borrow_mut() = Some(Rc::new(KeptCam { cam, method, smoothing }));
            }
            let out = Object::new();
            set(&out, "info", &to_js(&info)?)?;
            set(&out, "overlay", &picture)?;
            Ok(out.into())
        })
    }

    /// The last Grad-CAM map over the photo again, in another colormap or opacity.
    pub fn overlay(&self, colormap: Option<String>, opacity: Option<f32>) -> Result<JsValue, JsError> {
        let kept = self.state.kept_cam()?;
        let (colormap, opacity) = look(colormap.as_deref(), opacity)?;
        picture(&overlay(&kept.cam, &*self.state.photo()?, colormap, opacity))
    }

    /// How faithful the last Grad-CAM map is: {class, prob, deletion, insertion, random_deletion,
    /// random_insertion (curves: {fractions, scores, auc}), road: {percentiles,
    /// most_relevant_first, least_relevant_first, combined}, confidence_change, sanity:
    /// {randomized_after, rank_correlation, randomized_map}}. `steps`: points
    /// of the deletion / insertion curves (each a forward pass).
    pub fn faithfulness(&self, steps: usize) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let kept = state.kept_cam()?;
            let (net, photo) = (state.net()?, state.photo()?);
            let options = MetricOptions { steps, ..MetricOptions::default() };
            let metrics = faithfulness(&net, &photo, &kept.cam, &options).await?;
            let sanity = sanity_check(&net, &photo, &kept.cam, kept.method, kept.smoothing, 0).await?;
            let out = to_js(&metrics)?;
            Reflect::set(&out, &"sanity".into(), &to_js(&sanity)?).map_err(|_| JsError::new("cannot attach the sanity check"))?;
            Ok(out)
        })
    }

    /// Guided Grad-CAM of the kept map for the current photo: guided backpropagation of the map's
    /// class × the map, at the network's input size.
    pub fn guided(&self) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let kept = state.kept_cam()?;
            let (net, photo) = (state.net()?, state.photo()?);
            let (gradient, size) = guided_gradient(&net, &photo, kept.cam.class).await?;
            picture(&guided_gradcam_picture(&gradient, size, &kept.cam))
        })
    }

    /// DeepDream of the current photo at `layer`: `on_progress(step, steps, objective)` after each
    /// step (false cancels). Resolves to the dreamed picture at the network's input size.
    pub fn dream(&self, layer: String, steps: usize, on_progress: Function) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let (net, photo) = (state.net()?, state.photo()?);
            let options = DreamOptions { layer, steps, step_size: 2.0, seed: 0 };
            let report = |step: usize, steps: usize, value: f32| {
                let args = js_sys::Array::of3(&(step as u32).into(), &(steps as u32).into(), &value.into());
                on_progress.apply(&JsValue::NULL, &args).map(|r| r.as_bool() != Some(false)).unwrap_or(false)
            };
            picture(&deep_dream(&net, &photo, &options, report).await?)
        })
    }

    /// Every channel of `layer` tiled as in the book. Resolves to {info: {layer, shape, stats}, grid}.
    pub fn activations(&self, layer: String, colormap: String) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let colormap = Colormap::parse(&colormap)?;
            let act = state.activation(&layer).await?;
            let grid = layer_grid(&act, colormap)?;
            let out = Object::new();
            set(&out, "info", &to_js(&serde_json::json!({"layer": act.layer, "shape": act.shape, "stats": act.stats}))?)?;
            set(&out, "grid", &picture(&grid)?)?;
            Ok(out.into())
        })
    }

    /// One channel of `layer`, standardized as in the book, at its own resolution.
    pub fn channel(&self, layer: String, channel: usize, colormap: String) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let colormap = Colormap::parse(&colormap)?;
            let act = state.activation(&layer).await?;
            let [c, h, w] = act.shape;
            let values = act.channel(channel).ok_or_else(|| JsError::new(&format!("layer '{layer}' has channels 0..{}", c - 1)))?;
            picture(&channel_picture(values, h, w, colormap))
        })
    }

    /// Sparsity, mean and max of every conv/pool/block layer, from one forward pass (which also
    /// leaves every layer's activation ready to draw): [{layer, shape, sparsity, mean, max}].
    #[wasm_bindgen(js_name = layerStats)]
    pub fn layer_stats(&self) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let net = state.net()?;
            let names: Vec<String> = spatial_layers(&net).iter().map(|l| l.name.clone()).collect();
            let mut rows = Vec::with_capacity(names.len());
            // The deepest first: one pass computes them all.
            for name in names.iter().rev() {
                let a = state.activation(name).await?;
                rows.push(serde_json::json!({"layer": a.layer, "shape": a.shape, "sparsity": a.stats.sparsity, "mean": a.stats.mean, "max": a.stats.max}));
            }
            rows.reverse();
            to_js(&rows)
        })
    }

    /// Filter patterns: `options` {layer, first, count, size, steps, mode: classic | regularized |
    /// lucid, objective: channel | neuron | class, variants, seed, previewEvery}, optimized as one batch. `on_progress(step, steps, loss, grid_or_null)`
    /// is called after every step (with the current grid every `previewEvery` steps); returning
    /// `false` cancels. Resolves to the final grid picture with a `tiles` array of each filter's.
    pub fn filters(&self, options: JsValue, on_progress: Function) -> js_sys::Promise {
        let state = self.state.clone();
        promise(async move {
            let o: FilterRequest = from_js(options, "filter")?;
            let net = state.net()?;
            let mode = AscentMode::parse(o.mode.as_deref().unwrap_or("classic"))?;
            let objective = Objective::parse(o.objective.as_deref().unwrap_or("channel"))?;
            let variants = o.variants.unwrap_or(1);
            let options = FilterOptions {
                layer: o.layer,
                first: o.first,
                count: o.count,
                variants,
                diversity: DEFAULT_DIVERSITY,
                size: o.size,
                steps: o.steps,
                step_size: mode.default_step_size(),
                seed: o.seed,
                mode,
                objective,
                preview_every: o.preview_every,
            };
            let report = |p: Progress<'_>| {
                let grid = p.images.and_then(|images| picture(&pattern_grid(images, variants)).ok()).unwrap_or(JsValue::NULL);
                let args = js_sys::Array::of4(&(p.step as u32).into(), &(p.steps as u32).into(), &p.loss.into(), &grid);
                on_progress.apply(&JsValue::NULL, &args).map(|r| r.as_bool() != Some(false)).unwrap_or(false)
            };
            let patterns = filter_patterns(&net, &options, report).await?;
            let grid = picture(&pattern_grid(&patterns, variants))?;
            let tiles = js_sys::Array::new();
            for p in &patterns {
                tiles.push(&picture(p)?);
            }
            Reflect::set(&grid, &"tiles".into(), &tiles).map_err(|_| JsError::new("cannot attach the tiles"))?;
            Ok(grid)
        })
    }
}
