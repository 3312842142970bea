// The TF.js peer: VGG16 and EfficientNet-Lite0 written with tf ops (NHWC), built from OUR
// safetensors files, and ConvLens's three visualizations with tf.valueAndGrad. Runs on whatever
// backend `setup` selects ('webgpu' or 'wasm'). Expects the UMD bundles (global `tf`) loaded.
//
// Layout notes (see src/models and src/weights):
// - conv weights are stored [out, in, kh, kw] (torch layout) -> tf [kh, kw, in, out];
//   depthwise [C, 1, k, k] -> tf [k, k, C, 1];
// - dense weights are stored [in, out] (as tf wants), but VGG16's fc1 expects the activation
//   flattened channels-first (C, H, W), so the NHWC map is transposed to NCHW before flattening;
// - VGG16: Keras "same" 3×3 convs + ReLU, 2×2 max-pools, caffe preprocessing (RGB -> BGR, minus
//   the ImageNet BGR means); Lite0: TF "SAME" padding (= tf.js 'same'), ReLU6, batch norms stored
//   apart (eps 1e-3) and folded into the convs on the host at load time, as ConvLens does;
//   preprocessing (x − 127) / 128.

import { parseSafetensors, uniformNoise, layerGrid, deprocess, patternGrid, camPictures } from './common.mjs';

/* global tf */

const BN_EPS = 1e-3;
const LITE0_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];

let model = null;

export async function setup(backend, { threads = 0 } = {}) {
  if (backend === 'wasm') {
    tf.wasm.setWasmPaths('/bench/browser/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
    if (threads > 1) tf.wasm.setThreadsCount(threads); // used by the threaded binary only
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  await tf.ready();
  const info = { tfjs: tf.version.tfjs, backend: tf.getBackend() };
  if (backend === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    info.wasm_binary = simd && threads ? 'tfjs-backend-wasm-threaded-simd.wasm' : simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
    info.wasm_threads = threads && typeof tf.wasm.getThreadsCount === 'function' ? tf.wasm.getThreadsCount() : 1;
  }
  if (backend === 'webgpu') {
    const adapter = tf.backend().adapterInfo || {};
    info.adapter = [adapter.vendor, adapter.architecture, adapter.description].filter(Boolean).join(' ');
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Models: an ordered list of named layers, each a function of the previous activation.

function convWeight(w, key) {
  const { shape, data } = w.get(`${key}.weight`);
  return { shape, data };
}

/** [out, in, kh, kw] values -> tf filter [kh, kw, in, out] (depthwise: [kh, kw, C, 1]). */
function toFilter({ shape, data }, depthwise) {
  return tf.tidy(() => tf.tensor4d(data, shape).transpose(depthwise ? [2, 3, 0, 1] : [2, 3, 1, 0]));
}

function vgg16(w) {
  const layers = [];
  const blocks = [[1, 2], [2, 2], [3, 3], [4, 3], [5, 3]];
  for (const [b, n] of blocks) {
    for (let i = 1; i <= n; i++) {
      const name = `block${b}_conv${i}`;
      const filter = toFilter(convWeight(w, name), false);
      const bias = tf.tensor1d(w.get(`${name}.bias`).data);
      const out = bias.shape[0];
      layers.push({ name, kind: 'conv', out: ([n, h, w]) => [n, h, w, out], run: (x) => tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 'same', activation: 'relu' }) });
    }
    layers.push({ name: `block${b}_pool`, kind: 'pool', out: ([n, h, w, c]) => [n, h >> 1, w >> 1, c], run: (x) => tf.maxPool(x, 2, 2, 'valid') });
  }
  const dense = (name, activation, nchwFlatten) => {
    const { shape, data } = w.get(`${name}.weight`);
    const b = tf.tensor2d(data, shape);
    const bias = tf.tensor1d(w.get(`${name}.bias`).data);
    return {
      name,
      kind: 'dense',
      out: ([n]) => [n, shape[1]],
      run: (x) => {
        const a = x.rank === 4 ? (nchwFlatten ? x.transpose([0, 3, 1, 2]) : x).reshape([x.shape[0], -1]) : x;
        return tf.fused.matMul({ a, b, bias, activation });
      },
    };
  };
  layers.push(dense('fc1', 'relu', true), dense('fc2', 'relu'), dense('predictions', 'linear'));
  const means = tf.tensor1d([103.939, 116.779, 123.68]);
  const preprocess = (x) => tf.reverse(x, -1).sub(means); // RGB -> BGR, minus the BGR means
  return { layers, preprocess, camLayer: 'block5_conv3' };
}

/** A bias-free conv followed by batch norm, folded on the host: w' = w·γ/√(σ²+ε), b' = β − μ·that. */
function foldedConv(w, key, bnKey, depthwise) {
  const { shape, data } = convWeight(w, key);
  const out = shape[0];
  const per = data.length / out;
  const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((f) => w.get(`${bnKey}.${f}`).data);
  const folded = new Float32Array(data.length);
  const bias = new Float32Array(out);
  for (let c = 0; c < out; c++) {
    const scale = gamma[c] / Math.sqrt(variance[c] + BN_EPS);
    for (let i = c * per; i < (c + 1) * per; i++) folded[i] = data[i] * scale;
    bias[c] = beta[c] - mean[c] * scale;
  }
  return { filter: toFilter({ shape, data: folded }, depthwise), bias: tf.tensor1d(bias) };
}

function lite0(w) {
  const layers = [];
  const w0 = (key) => w.get(`${key}.weight`).shape[0];
  const conv = ({ filter, bias }, strides, activation) => (x) => tf.fused.conv2d({ x, filter, bias, strides, pad: 'same', activation });
  const dwconv = ({ filter, bias }, strides, activation) => (x) => tf.fused.depthwiseConv2d({ x, filter, bias, strides, pad: 'same', activation });
  const same = (size, s) => Math.ceil(size / s);
  layers.push({ name: '_conv_stem', kind: 'conv', out: ([n, h, w]) => [n, same(h, 2), same(w, 2), w0('_conv_stem')], run: conv(foldedConv(w, '_conv_stem', '_bn0'), 2, 'relu6') });
  for (let i = 0; i < LITE0_STRIDES.length; i++) {
    const key = (n) => `_blocks.${i}.${n}`;
    const stride = LITE0_STRIDES[i];
    const expand = w.has(key('_expand_conv.weight')) ? conv(foldedConv(w, key('_expand_conv'), key('_bn0')), 1, 'relu6') : null;
    const depthwise = dwconv(foldedConv(w, key('_depthwise_conv'), key('_bn1'), true), stride, 'relu6');
    const project = conv(foldedConv(w, key('_project_conv'), key('_bn2')), 1, 'linear');
    const inChannels = expand ? w.get(key('_expand_conv.weight')).shape[1] : w.get(key('_depthwise_conv.weight')).shape[0];
    const skip = stride === 1 && inChannels === w.get(key('_project_conv.weight')).shape[0];
    layers.push({
      name: `_blocks.${i}`,
      kind: 'block',
      out: ([n, h, wd]) => [n, same(h, stride), same(wd, stride), w0(key('_project_conv'))],
      run: (x) => {
        const h = project(depthwise(expand ? expand(x) : x));
        return skip ? h.add(x) : h;
      },
    });
  }
  layers.push({ name: '_conv_head', kind: 'conv', out: ([n, h, wd]) => [n, h, wd, w0('_conv_head')], run: conv(foldedConv(w, '_conv_head', '_bn1'), 1, 'relu6') });
  layers.push({ name: '_avg_pooling', kind: 'pool', out: ([n, , , c]) => [n, c], run: (x) => x.mean([1, 2]) });
  const { shape, data } = w.get('_fc.weight');
  const fc = tf.tensor2d(data, shape);
  const fcBias = tf.tensor1d(w.get('_fc.bias').data);
  layers.push({ name: '_fc', kind: 'dense', out: ([n]) => [n, shape[1]], run: (x) => tf.fused.matMul({ a: x, b: fc, bias: fcBias }) });
  return { layers, preprocess: (x) => x.sub(127).div(128), camLayer: '_conv_head' };
}

function indexOf(name) {
  const i = model.layers.findIndex((l) => l.name === name);
  if (i < 0) throw new Error(`unknown layer '${name}'`);
  return i;
}

/** 0–255 RGB NHWC -> the activations at `names` (one forward). */
function forwardMany(pixels, names) {
  const wanted = names.map(indexOf);
  const stop = Math.max(...wanted);
  const found = new Array(names.length);
  let x = model.preprocess(pixels);
  for (let i = 0; i <= stop; i++) {
    x = model.layers[i].run(x);
    wanted.forEach((j, k) => {
      if (j === i) found[k] = x;
    });
  }
  return found;
}

const forwardUntil = (pixels, name) => forwardMany(pixels, [name])[0];

function forwardFrom(activation, name) {
  let x = activation;
  for (let i = indexOf(name) + 1; i < model.layers.length; i++) x = model.layers[i].run(x);
  return x;
}

/** Spatial layers (conv, pool, block with H×W > 1), as ConvLens's `spatial_layers`. */
function spatialLayers() {
  return model.layers.filter((l) => l.kind !== 'dense' && l.spatial > 1).map((l) => l.name);
}

export async function load(kind, buffer) {
  const parsed = parseSafetensors(buffer);
  const w = {
    get(n) {
      const t = parsed.tensors.get(n);
      if (!t) throw new Error(`no tensor '${n}'`);
      return t;
    },
    has: (n) => parsed.tensors.has(n),
  };
  model = kind === 'vgg16' ? vgg16(w) : lite0(w);
  // Output shape of each layer for one 224×224 image ('same' convs: ⌈size / stride⌉).
  let shape = [1, 224, 224, 3];
  for (const l of model.layers) {
    shape = l.out(shape);
    l.shape = shape;
    l.spatial = shape.length === 4 ? shape[1] * shape[2] : 1;
  }
  return { layers: model.layers.map((l) => ({ name: l.name, kind: l.kind, shape: l.shape })), labels: JSON.parse(parsed.meta.labels || '[]').length };
}

// ---------------------------------------------------------------------------------------------
// The operations.

let photo = null; // {width, height, rgba}

export function setPhoto(p) {
  photo = p;
}

function photoTensor() {
  const { width, height, rgba } = photo;
  const rgb = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[i * 3] = rgba[i * 4];
    rgb[i * 3 + 1] = rgba[i * 4 + 1];
    rgb[i * 3 + 2] = rgba[i * 4 + 2];
  }
  return tf.tensor4d(rgb, [1, height, width, 3]);
}

/** Top-k of the softmax, as ConvLens's predict: [{index, prob}]. */
export async function predict(k = 5) {
  const probs = tf.tidy(() => tf.softmax(forwardFrom(forwardUntil(photoTensor(), model.layers[0].name), model.layers[0].name)));
  const p = await probs.data();
  probs.dispose();
  return [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, k).map((i) => ({ index: i, prob: p[i] }));
}

/**
 * Grad-CAM, Chollet's formula, as ConvLens's `Engine.gradcam` computes it: forward to the layer,
 * the layer's output as the leaf, forward from it to the softmax, gradient of the top class's
 * probability w.r.t. the leaf, channel weights = mean gradient over space, channel-weighted mean,
 * ReLU, ÷ max; then the jet heatmap and the overlay at the photo's size.
 */
export async function gradcam(scoreKind = 'probability') {
  const layer = model.camLayer;
  const activation = tf.tidy(() => forwardUntil(photoTensor(), layer));
  let top = null;
  const score = (a) => {
    const logits = forwardFrom(a, layer);
    const probs = tf.softmax(logits);
    const index = tf.argMax(probs, 1); // no gradient flows through argMax / oneHot
    top = tf.keep(index);
    return (scoreKind === 'logit' ? logits : probs).mul(tf.oneHot(index, probs.shape[1])).sum();
  };
  const { value, grad } = tf.valueAndGrad(score)(activation);
  const cam = tf.tidy(() => activation.mul(grad.mean([0, 1, 2])).mean(3).squeeze([0]));
  const [h, w] = cam.shape;
  const map = await cam.data();
  const cls = (await top.data())[0];
  const prob = (await value.data())[0];
  tf.dispose([activation, value, grad, cam, top]);
  let max = 0;
  for (let i = 0; i < map.length; i++) {
    map[i] = Math.max(map[i], 0);
    max = Math.max(max, map[i]);
  }
  if (max > 0) for (let i = 0; i < map.length; i++) map[i] /= max;
  const pictures = camPictures(map, h, w, photo, 0.4);
  return { class: cls, prob, height: h, width: w, map: Array.from(map), pixels: pictures.overlay.rgba.length + pictures.heatmap.rgba.length };
}

/** The book's gradient ascent for filters first..first+count of `layer`, as one batch. */
export async function filters(layer, first, count, size, steps) {
  const channels = model.layers[indexOf(layer)].shape[3];
  const noise = uniformNoise(0, count * 3 * size * size).map((u) => u * 20 + 128);
  let x = tf.tidy(() => tf.tensor4d(noise, [count, 3, size, size]).transpose([0, 2, 3, 1]));
  const select = tf.tidy(() => tf.oneHot(tf.range(first, first + count, 1, 'int32'), channels).reshape([count, 1, 1, channels]));
  let loss = 0;
  for (let step = 1; step <= steps; step++) {
    let perImage = null;
    const objective = (input) => {
      const a = forwardUntil(input, layer);
      const p = a.mul(select).sum([1, 2, 3]).div(a.shape[1] * a.shape[2]);
      perImage = tf.keep(p);
      return p.sum();
    };
    const grad = tf.grad(objective)(x);
    const next = tf.tidy(() => x.add(grad.div(grad.square().mean([1, 2, 3], true).sqrt().add(1e-5))));
    tf.dispose([x, grad]);
    x = next;
    const values = await perImage.data();
    perImage.dispose();
    loss = values.reduce((a, b) => a + b, 0) / count;
  }
  const pixels = await x.data();
  tf.dispose([x, select]);
  const per = size * size * 3;
  const tiles = [];
  for (let i = 0; i < count; i++) tiles.push(deprocess(pixels.subarray(i * per, (i + 1) * per), size));
  const grid = patternGrid(tiles);
  return { final_loss: loss, grid: [grid.width, grid.height] };
}

/** Every spatial layer's activation from one forward, rendered to the book's grids. */
export async function activations() {
  const names = spatialLayers();
  const outputs = tf.tidy(() => forwardMany(photoTensor(), names));
  let pixels = 0;
  const means = [];
  for (let i = 0; i < names.length; i++) {
    const [, h, w, c] = outputs[i].shape;
    const values = await outputs[i].data();
    const grid = layerGrid(values, h, w, c);
    pixels += grid.width * grid.height;
    means.push(grid.mean);
  }
  tf.dispose(outputs);
  return { layers: names.length, grid_pixels: pixels, layer_means: means };
}

export function memory() {
  const m = tf.memory();
  const out = { tf_num_tensors: m.numTensors, tf_num_bytes: m.numBytes };
  if (m.numBytesInGPU !== undefined) out.tf_bytes_in_gpu = m.numBytesInGPU;
  if (m.numBytesInGPUAllocated !== undefined) out.tf_bytes_in_gpu_allocated = m.numBytesInGPUAllocated;
  const wasm = tf.backend().wasm;
  if (wasm && wasm.HEAPU8) out.wasm_bytes = wasm.HEAPU8.buffer.byteLength;
  return out;
}

/** For one-off probes (not used by the benchmark). */
export const internals = { forwardUntil, forwardFrom, photoTensor, get model() { return model; } };
