// ConvLens's side: the wasm build in pkg/ (make wasm), driven through its public wasm API
// (src/web.rs) exactly as the page's worker drives it.

import init, { Engine } from '/pkg/convlens.js';

let wasm = null;
let engine = null;
let info = null;

const MODEL_NAMES = { vgg16: 'vgg16', lite0: 'efficientnet-lite0' };

export async function setup(backend) {
  wasm = await init();
  engine = await Engine.create(backend);
  const out = { backend: engine.backend };
  if (backend === 'webgpu' && navigator.gpu) {
    const adapter = await navigator.gpu.requestAdapter();
    const a = adapter?.info || {};
    out.adapter = [a.vendor, a.architecture, a.description].filter(Boolean).join(' ');
  }
  return out;
}

export async function load(kind, buffer) {
  info = JSON.parse(engine.load(new Uint8Array(buffer), JSON.stringify({ model: MODEL_NAMES[kind] })));
  return { layers: info.layers, labels: info.labels.length };
}

export function setPhoto({ rgba, width, height }) {
  engine.setPhoto(rgba, width, height);
}

export async function predict(k = 5) {
  return JSON.parse(await engine.predict(k)).map((r) => ({ index: r.index, prob: r.prob }));
}

/** `Engine.gradcam(default layer, top class, gradcam, jet, 0.4)`: the map, the overlay and the heatmap. */
export async function gradcam(scoreKind = 'probability') {
  if (scoreKind !== 'probability') throw new Error('ConvLens\'s wasm API differentiates the probability only');
  const r = await engine.gradcam(info.default_cam_layer, -1, 'gradcam', 'jet', 0.4);
  const cam = JSON.parse(r.json);
  return { class: cam.class, prob: cam.prob, height: cam.height, width: cam.width, map: cam.map, pixels: r.overlay.rgba.length + r.heatmap.rgba.length };
}

/** `Engine.filters(layer, first, count, size, steps, 'classic', seed 0, no previews)`; the loss of the last step. */
export async function filters(layer, first, count, size, steps) {
  let loss = NaN;
  const grid = await engine.filters(layer, first, count, size, steps, 'classic', 0, 0, (step, total, l) => {
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
    means.push(JSON.parse(r.json).stats.mean);
  }
  return { layers: names.length, grid_pixels: pixels, layer_means: means };
}

export function memory() {
  return { wasm_bytes: wasm.memory.buffer.byteLength };
}
