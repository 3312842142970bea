//! The wasm-bindgen boundary: marshalling only. JavaScript (the page's worker) creates an
//! `Engine` on WebGPU or the CPU, loads weights bytes, sets the photo as RGBA pixels and asks for
//! predictions, Grad-CAM, activations and filter patterns. Pictures come back as plain objects
//! `{width, height, rgba: Uint8ClampedArray}`; structured results as JSON strings.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use js_sys::{Function, Object, Reflect, Uint8ClampedArray};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::Backend;
use crate::error::Error;
use crate::models::CATALOGUE;
use crate::network::Network;
use crate::open::{open, OpenOptions};
use crate::picture::{Colormap, Photo, Rgba};
use crate::predict::predict;
use crate::preprocess::Preprocessing;
use crate::viz::activations::{channel_picture, layer_grid, spatial_layers, ActivationWalk, LayerActivation};
use crate::viz::filters::{filter_patterns, pattern_grid, AscentMode, FilterOptions};
use crate::viz::gradcam::{class_activation_map, heatmap, overlay, CamMethod, Score};

fn js_err(e: Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// A picture as `{width, height, rgba}` for `new ImageData(rgba, width, height)`.
fn picture(p: &Rgba) -> Result<JsValue, JsValue> {
    let obj = Object::new();
    Reflect::set(&obj, &"width".into(), &(p.width as u32).into())?;
    Reflect::set(&obj, &"height".into(), &(p.height as u32).into())?;
    Reflect::set(&obj, &"rgba".into(), &Uint8ClampedArray::from(p.data.as_slice()).into())?;
    Ok(obj.into())
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()).into())
}

struct State {
    device: Device,
    backend: Backend,
    net: RefCell<Option<Rc<Network>>>,
    photo: RefCell<Option<Rc<Photo>>>,
    /// The current photo's activations computed so far, so switching layers or enlarging a
    /// channel needs no new forward pass (seconds for VGG16). Cleared with the photo or network.
    walk: RefCell<Option<ActivationWalk>>,
}

impl State {
    fn net(&self) -> Result<Rc<Network>, JsValue> {
        self.net.borrow().clone().ok_or_else(|| JsError::new("no model loaded yet").into())
    }
    fn photo(&self) -> Result<Rc<Photo>, JsValue> {
        self.photo.borrow().clone().ok_or_else(|| JsError::new("no photo yet: drop or choose one").into())
    }
    /// The activation of `layer` for the current photo, from the walk through its layers.
    async fn activation(&self, layer: &str) -> Result<Rc<LayerActivation>, JsValue> {
        let (net, photo) = (self.net()?, self.photo()?);
        // Taken out of its cell while it computes, so an overlapping call cannot find it borrowed.
        let mut walk = match self.walk.borrow_mut().take() {
            Some(walk) => walk,
            None => ActivationWalk::new(&net, &photo).map_err(js_err)?,
        };
        let act = walk.get(&net, layer).await;
        // Put back only if neither the photo nor the network changed while it computed.
        let unchanged = self.photo.borrow().as_ref().is_some_and(|p| Rc::ptr_eq(p, &photo)) && self.net.borrow().as_ref().is_some_and(|n| Rc::ptr_eq(n, &net));
        if unchanged {
            *self.walk.borrow_mut() = Some(walk);
        }
        act.map_err(js_err)
    }
}

/// One compute device with at most one network and one photo.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<State>,
}

/// The built-in networks as JSON [{name, title, input_size, bundled, weights_hint,
/// default_cam_layer, default_filter_layer}], for the page's model menu.
#[wasm_bindgen]
pub fn catalogue() -> Result<String, JsValue> {
    let rows: Vec<serde_json::Value> = CATALOGUE
        .iter()
        .map(|m| {
            serde_json::json!({"name": m.name, "title": m.title, "input_size": m.input_size, "bundled": m.bundled,
                "weights_hint": m.weights_hint, "default_cam_layer": m.default_cam_layer, "default_filter_layer": m.default_filter_layer})
        })
        .collect();
    json(&rows)
}

/// What the page says about a file it loads; every field optional.
#[derive(serde::Deserialize, Default)]
struct LoadOptions {
    model: Option<String>,
    preprocessing: Option<String>,
    input_height: Option<usize>,
    input_width: Option<usize>,
    labels: Option<Vec<String>>,
}

#[wasm_bindgen]
impl Engine {
    /// `backend`: "webgpu" or "cpu". Rejects when WebGPU cannot be initialized.
    pub async fn create(backend: String) -> Result<Engine, JsValue> {
        let backend = Backend::parse(&backend).map_err(js_err)?;
        let device = backend.device_async().await.map_err(js_err)?;
        Ok(Engine { state: Rc::new(State { device, backend, net: RefCell::new(None), photo: RefCell::new(None), walk: RefCell::new(None) }) })
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
    /// built-in. `options` (JSON, all optional): {model, preprocessing, input_height,
    /// input_width, labels}; `companion`: a file given with it (an ONNX model's external weights,
    /// by its file name). Replaces the current network only on success. Returns
    /// `describe()`'s JSON.
    pub fn load(&self, bytes: &[u8], options: &str, companion_name: Option<String>, companion: Option<Vec<u8>>) -> Result<String, JsValue> {
        let o: LoadOptions = if options.trim().is_empty() {
            LoadOptions::default()
        } else {
            serde_json::from_str(options).map_err(|e| JsError::new(&format!("bad load options: {e}")))?
        };
        let preprocessing = o.preprocessing.as_deref().filter(|p| !p.is_empty()).map(Preprocessing::parse).transpose().map_err(js_err)?;
        let input_hw = match (o.input_height, o.input_width) {
            (Some(h), Some(w)) => Some([h, w]),
            (Some(s), None) | (None, Some(s)) => Some([s, s]),
            _ => None,
        };
        let companions = companion_name.zip(companion).into_iter().collect();
        let options = OpenOptions { model: o.model.filter(|m| !m.is_empty()), preprocessing, input_hw, labels: o.labels.filter(|l| !l.is_empty()), companions };
        let net = open(bytes, &options, &self.state.device).map_err(js_err)?;
        let description = json(&net.describe())?;
        *self.state.net.borrow_mut() = Some(Rc::new(net));
        *self.state.walk.borrow_mut() = None;
        Ok(description)
    }

    /// The current model as JSON: {model, title, from_file, origin, preprocessing, input_height,
    /// input_width, default_cam_layer, default_filter_layer, classes, labels, layers: [{name, kind, shape}]}.
    pub fn describe(&self) -> Result<String, JsValue> {
        json(&self.state.net()?.describe())
    }

    /// Replaces the class names (one per line, as many as the model has classes).
    #[wasm_bindgen(js_name = setLabels)]
    pub fn set_labels(&self, text: &str) -> Result<String, JsValue> {
        let labels: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        let mut slot = self.state.net.borrow_mut();
        let current = slot.take().ok_or_else(|| JsError::new("no model loaded yet"))?;
        // The network is shared (Rc) with running work only while it runs; a busy one is refused.
        let mut net = match Rc::try_unwrap(current) {
            Ok(net) => net,
            Err(shared) => {
                *slot = Some(shared);
                return Err(JsError::new("the model is busy; try again when the current work is done").into());
            }
        };
        let result = net.set_labels(labels);
        *self.state.walk.borrow_mut() = None;
        let description = json(&net.describe());
        *slot = Some(Rc::new(net));
        result.map_err(js_err)?;
        description
    }

    /// Sets the photo from RGBA pixels (as from a canvas).
    #[wasm_bindgen(js_name = setPhoto)]
    pub fn set_photo(&self, rgba: &[u8], width: u32, height: u32) -> Result<(), JsValue> {
        if width == 0 || height == 0 || rgba.len() != width as usize * height as usize * 4 {
            return Err(JsError::new(&format!("expected {width}×{height} RGBA pixels, got {} bytes", rgba.len())).into());
        }
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let photo = Photo::from_raw(width, height, rgb).ok_or_else(|| JsError::new("photo buffer has the wrong size"))?;
        *self.state.photo.borrow_mut() = Some(Rc::new(photo));
        *self.state.walk.borrow_mut() = None;
        Ok(())
    }

    /// Top-`top` classes as JSON [{index, label, prob}].
    pub fn predict(&self, top: usize) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let (net, photo) = (state.net()?, state.photo()?);
            let rows = predict(&net, &[(*photo).clone()], top.max(1)).await.map_err(js_err)?;
            Ok(json(&rows[0])?.into())
        })
    }

    /// Class activation map. `class` < 0 means the top class; `method`: gradcam, gradcam++,
    /// layercam. Resolves to {json: {layer, class, label, prob, height, width, map}, overlay, heatmap}.
    pub fn gradcam(&self, layer: String, class: i32, method: String, colormap: String, opacity: f32) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let (net, photo) = (state.net()?, state.photo()?);
            let method = CamMethod::parse(&method).map_err(js_err)?;
            let colormap = Colormap::parse(&colormap).map_err(js_err)?;
            let class = usize::try_from(class).ok();
            let cam = class_activation_map(&net, &photo, &layer, class, method, Score::Probability).await.map_err(js_err)?;
            let obj = Object::new();
            Reflect::set(&obj, &"json".into(), &json(&cam)?.into())?;
            Reflect::set(&obj, &"overlay".into(), &picture(&overlay(&cam, &photo, colormap, opacity))?)?;
            Reflect::set(&obj, &"heatmap".into(), &picture(&heatmap(&cam, photo.width() as usize, photo.height() as usize, colormap))?)?;
            Ok(obj.into())
        })
    }

    /// Every channel of `layer` tiled as in the book. Resolves to {json: {layer, shape, stats}, grid}.
    pub fn activations(&self, layer: String, colormap: String) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let colormap = Colormap::parse(&colormap).map_err(js_err)?;
            let act = state.activation(&layer).await?;
            let grid = layer_grid(&act, colormap).map_err(js_err)?;
            let summary = serde_json::json!({"layer": act.layer, "shape": act.shape, "stats": act.stats});
            let obj = Object::new();
            Reflect::set(&obj, &"json".into(), &json(&summary)?.into())?;
            Reflect::set(&obj, &"grid".into(), &picture(&grid)?)?;
            Ok(obj.into())
        })
    }

    /// One channel of `layer`, standardized as in the book, at its own resolution.
    pub fn channel(&self, layer: String, channel: usize, colormap: String) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let colormap = Colormap::parse(&colormap).map_err(js_err)?;
            let act = state.activation(&layer).await?;
            let [c, h, w] = act.shape;
            let values = act.channel(channel).ok_or_else(|| JsError::new(&format!("layer '{layer}' has channels 0..{}", c - 1)))?;
            picture(&channel_picture(values, h, w, colormap))
        })
    }

    /// Sparsity, mean and max of every conv/pool/block layer, from one forward pass (which also
    /// leaves every layer's activation ready to draw), as JSON [{layer, shape, sparsity, mean, max}].
    #[wasm_bindgen(js_name = layerStats)]
    pub fn layer_stats(&self) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let net = state.net()?;
            let names: Vec<String> = spatial_layers(&net).iter().map(|l| l.name.clone()).collect();
            let mut rows = Vec::with_capacity(names.len());
            // The deepest first: one pass computes them all.
            for name in names.iter().rev() {
                let a = state.activation(name).await?;
                rows.push(serde_json::json!({"layer": a.layer, "shape": a.shape, "sparsity": a.stats.sparsity, "mean": a.stats.mean, "max": a.stats.max}));
            }
            rows.reverse();
            Ok(json(&rows)?.into())
        })
    }

    /// Filter patterns of filters first..first+count of `layer`, optimized as one batch.
    /// `on_progress(step, steps, loss, grid_or_null)` is called after every step (with the current
    /// grid every `preview_every` steps); returning `false` cancels. Resolves to the final grid
    /// picture with an extra `tiles` array holding each filter's picture.
    #[allow(clippy::too_many_arguments)]
    pub fn filters(
        &self,
        layer: String,
        first: usize,
        count: usize,
        size: usize,
        steps: usize,
        mode: String,
        seed: u32,
        preview_every: usize,
        on_progress: Function,
    ) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let net = state.net()?;
            let mode = AscentMode::parse(&mode).map_err(js_err)?;
            let options = FilterOptions { layer, first, count, size, steps, step_size: 1.0, seed: seed as u64, mode, preview_every };
            let report = |p: crate::viz::filters::Progress<'_>| {
                let grid = match p.images {
                    Some(images) => picture(&pattern_grid(images)).unwrap_or(JsValue::NULL),
                    None => JsValue::NULL,
                };
                let args = js_sys::Array::of4(&(p.step as u32).into(), &(p.steps as u32).into(), &p.loss.into(), &grid);
                on_progress.apply(&JsValue::NULL, &args).map(|r| r.as_bool() != Some(false)).unwrap_or(false)
            };
            let patterns = filter_patterns(&net, &options, report).await.map_err(js_err)?;
            let grid = picture(&pattern_grid(&patterns))?;
            let tiles = js_sys::Array::new();
            for p in &patterns {
                tiles.push(&picture(p)?);
            }
            Reflect::set(&grid, &"tiles".into(), &tiles)?;
            Ok(grid)
        })
    }
}
