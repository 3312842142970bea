// ConvLens's side: the wasm builds in pkg/ (make wasm; webgpu and cpu) and pkg/threads/ (make
// wasm-threads; cpu on every core, for a cross-origin-isolated page), driven through the public
// wasm API (src/web.rs) exactly as the page's worker drives it.

import { threadPoolSize } from '/www/js/backend-choice.js';

let wasm = null;
let engine = null;
let info = null;

const MODEL_NAMES = { vgg16: 'vgg16', lite0: 'efficientnet-lite0' };

/** backend: webgpu | cpu | threads (the CPU on the threaded build, `threads` workers or every core). */
export async function setup(backend, { threads = 0 } = {}) {
  const threaded = backend === 'threads';
  if (threaded && !self.crossOriginIsolated) throw new Error('the threaded build needs a cross-origin-isolated page (WASM_THREADS=1)');
  const module = await import(threaded ? '/pkg/threads/convlens.js' : '/pkg/convlens.js');
  wasm = await module.default();
  const pool = threaded ? threads || threadPoolSize() : 1;
  if (threaded) await module.initThreadPool(pool);
  engine = await module.Engine.create(threaded ? 'cpu' : backend);
  const out = { backend: engine.backend, convlens_threads: pool };
  if (backend === 'webgpu' && navigator.gpu) {
    const adapter = await navigator.gpu.requestAdapter();
    const a = adapter?.info || {};
    out.adapter = [a.vendor, a.architecture, a.description].filter(Boolean).join(' ');
  }
  return out;
}

export async function load(kind, buffer) {
  info = engine.load(new Uint8Array(buffer), { model: MODEL_NAMES[kind] });
  return { layers: info.layers, labels: info.labels.length };
}

export function setPhoto({ rgba, width, height }) {
  engine.setPhoto(rgba, width, height);
}

export async function predict(k = 5) {
  return (await engine.predict(k)).map((r) => ({ index: r.index, prob: r.prob }));
}

/** `Engine.gradcam({layer: default, top class, gradcam, jet, 0.4})`: the map and the overlay. */
export async function gradcam(scoreKind = 'probability') {
  if (scoreKind !== 'probability') throw new Error('ConvLens\'s wasm API differentiates the probability only');
  const r = await engine.gradcam({ layer: info.default_cam_layer, method: 'gradcam', colormap: 'jet', opacity: 0.4 });
  const cam = r.info;
  return { class: cam.class, prob: cam.prob, height: cam.height, width: cam.width, map: cam.map, pixels: r.overlay.rgba.length };
}

/** `Engine.filters({layer, first, count, size, steps, classic, seed 0, no previews})`; the loss of the last step. */
export async function filters(layer, first, count, size, steps) {
  let loss = NaN;
  const options = { layer, first, count, size, steps, mode: 'classic', seed: 0, previewEvery: 0 };
  const grid = await engine.filters(options, (step, total, l) => {
    loss = l;
    return true;
  });
  return { final_loss: loss, grid: [grid.width, grid.height] };
}

/** `Engine.activations(layer, 'viridis')` for every conv/pool/block layer: one call per layer, as the page asks.
 *  The same layers as the TF.js peer's hand-written models: EfficientNet's blocks, not the convs inside them
 *  (`_blocks.N._expand_conv`…), which ConvLens's graph also lists. */
export async function activations() {
  const names = info.layers.filter((l) => l.kind !== 'dense' && l.shape[1] * l.shape[2] > 1 && !/\._/.test(l.name)).map((l) => l.name);
  let pixels = 0;
  const means = [];
  for (const name of names) {
    const r = await engine.activations(name, 'viridis');
    pixels += r.grid.width * r.grid.height;
    means.push(r.info.stats.mean);
  }
  return { layers: names.length, grid_pixels: pixels, layer_means: means };
}

export function memory() {
  return { wasm_bytes: wasm.memory.buffer.byteLength };
}
