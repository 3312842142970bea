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
use crate::models::{ModelKind, Network};
use crate::picture::{Colormap, Photo, Rgba};
use crate::predict::predict;
use crate::viz::activations::{channel_picture, layer_grid, spatial_layers, ActivationWalk, LayerActivation};
use crate::viz::filters::{filter_patterns, pattern_grid, AscentMode, FilterOptions};
use crate::viz::gradcam::{class_activation_map, heatmap, overlay, CamMethod, Score};
use crate::weights::convert::{detect_model, import};

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

/// Which model a weights file holds, judged from its content: "vgg16", "small-convnet" or
/// "efficientnet-lite0".
#[wasm_bindgen(js_name = detectModel)]
pub fn detect_model_js(bytes: &[u8]) -> Result<String, JsValue> {
    detect_model(bytes).map(|m| m.name().to_string()).map_err(js_err)
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

    /// Loads weights in any supported format (ConvLens .safetensors, Keras .h5, torch .pth,
    /// torchvision .safetensors) for `model`, replacing the current network. Returns the model
    /// description as JSON: {model, origin, input_size, default_cam_layer, labels, layers:[{name, kind, shape}]}.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&self, bytes: &[u8], model: &str) -> Result<String, JsValue> {
        let kind = ModelKind::parse(model).map_err(js_err)?;
        let weights = import(bytes, kind).map_err(js_err)?;
        let net = Network::from_weights(weights, &self.state.device).map_err(js_err)?;
        let info = serde_json::json!({
            "model": net.kind.name(),
            "origin": net.origin,
            "input_size": net.input_size(),
            "default_cam_layer": net.kind.default_cam_layer(),
            "labels": net.labels,
            "layers": net.layers().iter().map(|l| serde_json::json!({"name": l.name, "kind": l.kind.name(), "shape": l.shape})).collect::<Vec<_>>(),
        });
        *self.state.net.borrow_mut() = Some(Rc::new(net));
        *self.state.walk.borrow_mut() = None;
        json(&info)
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
    pub fn filters(&self, layer: String, first: usize, count: usize, size: usize, steps: usize, mode: String, seed: u32, preview_every: usize, on_progress: Function) -> js_sys::Promise {
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
