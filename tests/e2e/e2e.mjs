#!/usr/bin/env node
// Browser end-to-end test of the built ConvLens page.
//
//   node tests/e2e/e2e.mjs DIST_DIR        (the bundle `make dist` builds: dist/)
//
// Serves DIST_DIR with tools/serve.mjs on a free port (under $BASE_PATH, default the root) and drives Debian's Chromium with
// playwright-core, once on WebGPU (SwiftShader here: slow, so sizes stay small) and once with WebGPU
// removed (the CPU fallback). Fails on any console.error, page error or unhandled rejection.
// Besides the bundled EfficientNet-Lite0 it drops a Keras 3 model of its own
// (tests/fixtures/keras/seq_aug_128.keras) and files the engine cannot use.
// Screenshots go to tests/e2e/screenshots/. Prints the time of each step per backend.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const dist = path.resolve(process.argv[2] || path.join(repo, 'dist'));
const shots = path.join(here, 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = Number(process.env.E2E_TIMEOUT_MS || 300_000);
const CAT_CLASSES = [281, 282, 283, 284, 285];
const KERAS_DIR = path.join(repo, 'tests/fixtures/keras');
const KERAS_MODEL = path.join(KERAS_DIR, 'seq_aug_128.keras');
const KERAS_BAD = path.join(KERAS_DIR, 'bad_unsupported_layer.keras');
const ONNX_DIR = path.join(repo, 'tests/fixtures/onnx');
const ONNX_MODEL = path.join(ONNX_DIR, 'view_dynamo21_external.onnx');

function fail(message) {
  console.error(`e2e: ${message}`);
  process.exit(1);
}

const pageModules = readdirSync(path.join(repo, 'www/js')).map((file) => `js/${file}`);
for (const file of ['index.html', 'app.js', ...pageModules, 'worker.js', 'sw.js', 'style.css', 'pkg/convlens.js', 'pkg/convlens_bg.wasm', 'weights/manifest.json', 'samples/cat.jpg']) {
  if (!existsSync(path.join(dist, file))) fail(`${path.join(dist, file)} is missing: build the bundle first (make dist)`);
}
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium)`);
mkdirSync(shots, { recursive: true });

// ---------------------------------------------------------------------------------------------
// The static server.

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repo, 'tools/serve.mjs'), dist, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the server printed no URL: ${out}`)), 15_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/http:\/\/[^\s]+\//);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[0] });
      }
    });
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('exit', (code) => reject(new Error(`the server exited (${code}): ${out}`)));
  });
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping.

const problems = []; // console errors, page errors, unhandled rejections
const failures = [];
const timings = {};
let current = '';

async function step(name, fn) {
  const label = `${current}: ${name}`;
  const t0 = Date.now();
  process.stdout.write(`  … ${label}\n`);
  try {
    await fn();
    console.log(`  ok ${label} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return true;
  } catch (err) {
    const message = (err && err.message ? err.message : String(err)).split('\n').slice(0, 6).join('\n      ');
    console.log(`  FAIL ${label}: ${message}`);
    failures.push(`${label}: ${message}`);
    return false;
  }
}

function time(name, ms) {
  (timings[current] ||= {})[name] = ms;
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${current}-${name}.png`), fullPage: true });
}

async function openPage(context, url) {
  const page = await context.newPage();
  const tag = current;
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`[${tag}] console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`[${tag}] uncaught: ${err.message}`));
  page.on('crash', () => problems.push(`[${tag}] the page crashed`));
  await page.goto(url);
  return page;
}

async function newContext(browser, { noWebGPU = false, viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  // Any unhandled rejection becomes a console.error, which fails the run.
  await context.addInitScript(() => {
    window.addEventListener('unhandledrejection', (e) => console.error(`unhandled rejection: ${e.reason && e.reason.message ? e.reason.message : e.reason}`));
  });
  if (noWebGPU) {
    await context.addInitScript(() => {
      delete Navigator.prototype.gpu;
    });
  }
  return context;
}

const predictionsFor = (photo) => `[data-testid="predictions"][data-state="ready"][data-photo="${photo}"]`;

async function topPrediction(page) {
  return page.$eval('[data-testid="prediction"]', (li) => ({
    index: Number(li.dataset.index),
    prob: Number(li.dataset.prob),
    label: `${li.querySelector('.label')?.textContent ?? li.textContent} ${(Number(li.dataset.prob) * 100).toFixed(1)}%`,
  }));
}

// Simulates dropping a file from the bundle onto the drop zone.
async function dropSample(page, file) {
  await page.evaluate(async (name) => {
    const blob = await (await fetch(`./samples/${name}`)).blob();
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], name, { type: blob.type || 'image/jpeg' }));
    const zone = document.querySelector('[data-testid="dropzone"]');
    zone.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: transfer }));
    zone.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }, file);
}

// Simulates dropping a file from this machine (bytes read here) on the element `target`.
async function dropFile(page, file, { name = path.basename(file), type = 'application/octet-stream', target = '[data-testid="dropzone"]' } = {}) {
  assert(existsSync(file), `${file} is missing`);
  const data = readFileSync(file).toString('base64');
  await dropBytes(page, { name, data, type, target });
}

async function dropBytes(page, { name, data, type, target }) {
  await dropMany(page, [{ name, data, type }], target);
}

// Drops several files at once ({name, data (base64), type}) on the element `target`.
async function dropMany(page, files, target) {
  await page.evaluate(
    ({ files, target }) => {
      const transfer = new DataTransfer();
      for (const { name, data, type } of files) transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, { type }));
      const el = document.querySelector(target);
      el.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: transfer }));
      el.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }));
    },
    { files, target },
  );
}

// Waits until the page shows the user's model read from `file` (the status names the file it came
// from; another user model may be showing before it).
async function userModelFrom(page, file) {
  await page.waitForFunction(
    (name) => {
      const status = document.querySelector('[data-testid="model-status"]').textContent;
      return /^Your model/.test(status) && status.includes(`from ${name}`);
    },
    path.basename(file),
    { timeout: WAIT },
  );
}

// An ONNX model with its external-data file, dropped together on the page: it opens as the
// user's model, predicts, and Grad-CAM has gradients through it.
async function checkOnnxModel(page, photo) {
  const reference = JSON.parse(readFileSync(ONNX_MODEL.replace(/\.onnx$/, '.json'), 'utf8'));
  const [inH, inW] = reference.input_hw;
  await step('an ONNX model and its .onnx.data dropped together open as “Your model”', async () => {
    const t0 = Date.now();
    const file = (f) => ({ name: path.basename(f), data: readFileSync(f).toString('base64'), type: 'application/octet-stream' });
    await dropMany(page, [file(`${ONNX_MODEL}.data`), file(ONNX_MODEL)], '[data-testid="dropzone"]');
    await userModelFrom(page, ONNX_MODEL);
    time('drop .onnx + .data → model loaded', Date.now() - t0);
    const status = (await page.textContent('[data-testid="model-status"]')).replace(/\s+/g, ' ').trim();
    console.log(`      status: ${status}`);
    assert(status.includes(`${inH}×${inW} input`) && status.includes('5 classes') && /ONNX/.test(status), `the status does not describe the ONNX model: “${status}”`);
    await page.waitForSelector(`[data-testid="predictions"][data-state="ready"][data-from-file="true"][data-photo="${photo}"]`, { timeout: WAIT });
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.length);
    assert(rows === 5, `${rows} predictions for a 5-class model`);
    assert((await page.$eval('[data-testid="preprocessing-select"]', (s) => s.value)) === 'torch', 'an ONNX file is not read with torchvision preprocessing by default');
    await page.click('[role="tab"][data-view="gradcam"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    await shot(page, 'onnx-gradcam');
  });
}

// Mean |overlay − photo| (0–255) over the whole Grad-CAM canvas, against the sample photo.
async function overlayDiff(page, photo) {
  return page.evaluate(async (name) => {
    const canvas = document.querySelector('[data-testid="gradcam-canvas"]');
    const bitmap = await createImageBitmap(await (await fetch(`./samples/${name}`)).blob());
    const ref = new OffscreenCanvas(canvas.width, canvas.height);
    ref.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const a = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const b = ref.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < a.length; i += 4) sum += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
    return sum / (a.length / 4) / 3;
  }, photo);
}

// The model error box's message, once it shows one other than `previous`.
async function modelError(page, previous = '') {
  await page.waitForFunction(
    (prev) => {
      const box = document.querySelector('[data-testid="model-error"]');
      return !box.hidden && box.textContent.trim() && box.textContent.trim() !== prev;
    },
    previous,
    { timeout: WAIT },
  );
  return (await page.textContent('[data-testid="model-error"]')).trim();
}

// One sentence: a capital, one final stop, no second sentence, one line.
function assertOneSentence(message) {
  assert(/^[A-Z"“'‘(]/.test(message), `the message does not start a sentence: “${message}”`);
  assert(/[.!?]$/.test(message), `the message does not end a sentence: “${message}”`);
  assert(!/\n/.test(message), `the message runs over several lines: “${message}”`);
  assert(!/[.!?]\s+["“‘(]?[A-Z]/.test(message), `the message has more than one sentence: “${message}”`);
  assert(message.length < 400, `the message is ${message.length} characters long`);
}

const engineStarts = (page) => page.evaluate(() => document.documentElement.dataset.engineStarts);

// The user's Keras model, dropped on the page (not on the model card): every view works on it.
// Leaves the page showing it, on the Grad-CAM view.
async function checkKerasModel(page, photo) {
  const reference = JSON.parse(readFileSync(KERAS_MODEL.replace(/\.keras$/, '.json'), 'utf8'));
  const [inH, inW] = reference.input_hw;
  const convs = reference.layers.filter((l) => /Conv2D$/.test(l.class_name) && l.shape[1] * l.shape[2] > 1).map((l) => l.name);
  const camLayer = reference.gradcam[0].layer;

  await step('a Keras model dropped on the page opens as “Your model”', async () => {
    const t0 = Date.now();
    await dropFile(page, KERAS_MODEL, { target: '[data-testid="dropzone"]' });
    await userModelFrom(page, KERAS_MODEL);
    time('drop .keras → model loaded', Date.now() - t0);
    const status = (await page.textContent('[data-testid="model-status"]')).replace(/\s+/g, ' ').trim();
    console.log(`      status: ${status}`);
    assert(status.includes(`${inH}×${inW} input`) && status.includes('2 classes') && /Keras/.test(status), `the status does not describe the model: “${status}”`);
    const menu = await page.$eval('[data-testid="model-select"]', (s) => ({ value: s.value, text: s.selectedOptions[0]?.textContent }));
    assert(/^Your model: /.test(menu.text) && menu.text.includes(`${inH}×${inW}`), `the model menu shows “${menu.text}”`);
    assert(await page.$eval('[data-testid="model-error"]', (e) => e.hidden), 'a model error is shown');
    await page.waitForSelector(`[data-testid="predictions"][data-state="ready"][data-from-file="true"][data-photo="${photo}"]`, { timeout: WAIT });
    time('→ first prediction', Date.now() - t0);
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.map((li) => ({ index: Number(li.dataset.index), prob: Number(li.dataset.prob), label: li.querySelector('.label').textContent })));
    console.log(`      predictions: ${rows.map((r) => `${r.label} ${(r.prob * 100).toFixed(1)}%`).join(', ')}`);
    assert(rows.length === 2, `${rows.length} predictions for a 2-class model`);
    const total = rows.reduce((a, r) => a + r.prob, 0);
    assert(Math.abs(total - 1) < 1e-3, `the two probabilities add up to ${total}`);
    assert(await page.isVisible('[data-testid="preprocessing-select"]'), 'no preprocessing choice for a model from a file');
    assert((await page.$eval('[data-testid="preprocessing-select"]', (s) => s.value)) === 'raw', 'a Keras file is not read with raw pixels by default');
  });

  await step('Grad-CAM on the Keras model: default layer, a heatmap, any class', async () => {
    await page.click('[role="tab"][data-view="gradcam"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    const layer = await page.$eval('[data-testid="gradcam-layer"]', (s) => s.value);
    assert(layer === camLayer, `Grad-CAM starts at ${layer}, not the last map ${camLayer}`);
    const caption = await page.textContent('#gradcam-caption');
    console.log(`      ${caption.trim()}`);
    const [, mh, mw] = reference.layers.find((l) => l.name === camLayer).shape;
    assert(caption.includes(`${mh}×${mw} map`), `the caption does not give the ${mh}×${mw} map: “${caption}”`);
    const diff = await overlayDiff(page, photo);
    console.log(`      mean |overlay − photo|: ${diff.toFixed(1)} / 255`);
    assert(diff > 8, `the overlay barely differs from the photo (${diff.toFixed(2)})`);
    const other = await page.$eval('[data-testid="prediction"]:nth-child(2)', (li) => Number(li.dataset.index));
    const t0 = Date.now();
    await page.click('[data-testid="prediction"]:nth-child(2) button');
    await page.waitForSelector(`[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"][data-class="${other}"]`, { timeout: WAIT });
    time('Keras Grad-CAM', Date.now() - t0);
    await page.selectOption('[data-testid="gradcam-layer"]', convs[1]);
    await page.waitForFunction((l) => document.querySelector('#gradcam-caption').textContent.includes(`layer ${l} `), convs[1], { timeout: WAIT });
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
    await shot(page, 'keras-gradcam');
    await page.selectOption('[data-testid="gradcam-layer"]', camLayer);
  });

  await step('activations of every layer with a map; filter patterns of a conv layer', async () => {
    await page.click('[role="tab"][data-view="activations"]');
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    const layers = await page.$$eval('[data-testid="activations-layer"] option', (os) => os.map((o) => o.value));
    console.log(`      ${layers.length} layers with a map: ${layers.join(', ')}`);
    for (const conv of convs) assert(layers.includes(conv), `the activations view does not list the conv layer ${conv}`);
    const t0 = Date.now();
    for (const layer of layers) {
      await page.selectOption('[data-testid="activations-layer"]', layer);
      await page.waitForFunction((l) => {
        const canvas = document.querySelector('[data-testid="activations-canvas"]');
        return canvas.dataset.state === 'ready' && document.querySelector('#activations-caption').textContent.startsWith(`${l}:`);
      }, layer, { timeout: WAIT });
      const stats = await canvasStats(page, 'activations-canvas');
      assert(stats.width > 0, `the activations of ${layer} are empty`);
    }
    time(`Keras activations (${layers.length} layers)`, Date.now() - t0);
    await page.selectOption('[data-testid="activations-layer"]', convs[0]);
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="sparsity-chart"] svg rect.fill', { timeout: WAIT });
    await shot(page, 'keras-activations');

    const filterLayers = await page.$$eval('[data-testid="filters-layer"] option', (os) => os.map((o) => o.value));
    for (const conv of convs) assert(filterLayers.includes(conv), `the filter-pattern view does not list the conv layer ${conv}`);
    await page.click('[role="tab"][data-view="filters"]');
    await page.selectOption('[data-testid="filters-layer"]', convs[1]);
    await page.selectOption('[data-testid="filters-count"]', '4');
    await page.selectOption('[data-testid="filters-size"]', '32');
    await page.fill('[data-testid="filters-steps"]', '4');
    await page.dispatchEvent('[data-testid="filters-steps"]', 'change');
    await page.fill('[data-testid="filters-first"]', '0');
    await page.dispatchEvent('[data-testid="filters-first"]', 'change');
    const t1 = Date.now();
    await page.click('[data-testid="filters-start"]');
    await page.waitForFunction(() => /Done/.test(document.querySelector('#filters-status').textContent) || !document.querySelector('#filters-error').hidden, null, { timeout: WAIT });
    const error = await page.$eval('#filters-error', (e) => (e.hidden ? '' : e.textContent));
    assert(!error, `filter patterns failed: ${error}`);
    time('Keras filters (4 × 32 px, 4 steps)', Date.now() - t1);
    const stats = await canvasStats(page, 'filters-canvas');
    assert(stats.width > 0 && stats.std > 1, `the filter grid looks blank (${JSON.stringify(stats)})`);
    await page.click('[role="tab"][data-view="gradcam"]');
  });

  await step('preprocessing and class names for the Keras model', async () => {
    const before = await page.$eval('[data-testid="prediction"]', (li) => li.dataset.prob);
    const t0 = Date.now();
    await page.selectOption('[data-testid="preprocessing-select"]', 'unit');
    await page.waitForFunction(
      (prob) => {
        const list = document.querySelector('[data-testid="predictions"]');
        const first = list.querySelector('[data-testid="prediction"]');
        return list.dataset.state === 'ready' && first && first.dataset.prob !== prob;
      },
      before,
      { timeout: WAIT },
    );
    time('preprocessing change → prediction', Date.now() - t0);
    assert(/^Your model/.test(await page.textContent('[data-testid="model-status"]')), 'the model changed with its preprocessing');
    await page.selectOption('[data-testid="preprocessing-select"]', 'raw');
    await page.waitForFunction(
      (prob) => {
        const list = document.querySelector('[data-testid="predictions"]');
        const first = list.querySelector('[data-testid="prediction"]');
        return list.dataset.state === 'ready' && first && Math.abs(Number(first.dataset.prob) - Number(prob)) < 1e-4;
      },
      before,
      { timeout: WAIT },
    );

    await page.click('[data-testid="labels-open"]');
    await page.waitForSelector('[data-testid="labels-dialog"][open]');
    await page.fill('[data-testid="labels-text"]', 'cat\ndog\nbird');
    await page.click('[data-testid="labels-apply"]');
    await page.waitForSelector('[data-testid="labels-error"]:not([hidden])', { timeout: 10_000 });
    const wrong = (await page.textContent('[data-testid="labels-error"]')).trim();
    console.log(`      three names for two classes: ${wrong}`);
    assertOneSentence(wrong);
    await page.fill('[data-testid="labels-text"]', 'cat\ndog');
    await page.click('[data-testid="labels-apply"]');
    await page.waitForSelector('[data-testid="labels-dialog"]', { state: 'hidden', timeout: WAIT });
    await page.waitForFunction(() => {
      const labels = [...document.querySelectorAll('[data-testid="prediction"] .label')].map((l) => l.textContent);
      return document.querySelector('[data-testid="predictions"]').dataset.state === 'ready' && labels.length === 2 && labels.includes('cat') && labels.includes('dog');
    }, null, { timeout: WAIT });
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
    const caption = await page.textContent('#gradcam-caption');
    assert(/“(cat|dog)”/.test(caption), `the Grad-CAM caption does not use the new names: “${caption}”`);
    const hash = await page.evaluate(() => decodeURIComponent(location.hash));
    assert(hash.includes('labels=cat\ndog') && hash.includes('model=file'), `the link does not keep the short class names: ${hash}`);
    await shot(page, 'keras-model');
  });
}

// Files the engine cannot use: one sentence in the model's error box, and the model loaded
// before them keeps working.
async function checkBadModelFiles(page) {
  await step('unusable model files: one sentence, the previous model still predicts', async () => {
    const starts = await engineStarts(page);
    const status = (await page.textContent('[data-testid="model-status"]')).trim();
    await dropFile(page, KERAS_BAD, { target: '#model-card' });
    const first = await modelError(page);
    console.log(`      ${path.basename(KERAS_BAD)}: ${first}`);
    assertOneSentence(first);
    assert((await page.textContent('[data-testid="model-status"]')).trim() === status, 'the model status changed after a refused file');
    await dropSample(page, 'cat.jpg');
    await page.waitForSelector(`${predictionsFor('cat.jpg')}[data-from-file="true"]`, { timeout: WAIT });

    await dropBytes(page, { name: 'notes.txt', data: Buffer.from('not a model\n').toString('base64'), type: 'text/plain', target: '#model-card' });
    const second = await modelError(page, first);
    console.log(`      notes.txt: ${second}`);
    assertOneSentence(second);
    await shot(page, 'bad-model');
    await page.click('.sample[data-sample="coffee"]');
    await page.waitForSelector(`${predictionsFor('coffee.jpg')}[data-from-file="true"]`, { timeout: WAIT });
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.length);
    assert(rows === 2, `the previous (2-class) model gave ${rows} predictions`);
    assert((await engineStarts(page)) === starts, 'the engine had to restart after a bad file (a panic in the wasm?)');
  });
}

// Mean and spread of a canvas's pixels, and its size.
async function canvasStats(page, testid) {
  return page.$eval(`[data-testid="${testid}"]`, (canvas) => {
    if (!canvas.width || !canvas.height) return { width: 0, height: 0, mean: 0, std: 0 };
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    let sq = 0;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
      sum += v;
      sq += v * v;
      n++;
    }
    const mean = sum / n;
    return { width: canvas.width, height: canvas.height, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
  });
}

// ---------------------------------------------------------------------------------------------
// The checks, for one backend.

async function checkBackend(browser, base, backend) {
  current = backend;
  console.log(`\n${backend === 'webgpu' ? 'WebGPU (forced with #backend=webgpu)' : 'CPU fallback (navigator.gpu removed, backend Auto)'}`);
  const context = await newContext(browser, { noWebGPU: backend === 'cpu' });
  const hash = backend === 'webgpu' ? '#backend=webgpu&sample=coffee' : '#sample=coffee';
  const tOpen = Date.now();
  const page = await openPage(context, `${base}${hash}`);

  await step('backend notice', async () => {
    await page.waitForSelector(`[data-testid="backend-notice"][data-backend="${backend}"]`, { timeout: WAIT });
    const text = await page.textContent('#backend-text');
    if (backend === 'cpu') assert(/CPU/.test(text) && /WebGPU/.test(text), `the CPU notice does not say why: “${text.trim()}”`);
    else assert(/GPU/.test(text), `the notice does not name the GPU: “${text.trim()}”`);
    console.log(`      notice: ${text.replace(/\s+/g, ' ').trim()}`);
  });

  await step('first prediction (sample from the URL)', async () => {
    await page.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
    time('page open → first prediction', Date.now() - tOpen);
    // Let the Grad-CAM the page starts for this photo finish, so the next timing is the drop's own.
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-photo="coffee.jpg"]', { timeout: WAIT });
  });

  // 1. The cat, dropped.
  await step('drop the cat → top-1 is a cat class', async () => {
    const t0 = Date.now();
    await dropSample(page, 'cat.jpg');
    await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
    time('drop → prediction', Date.now() - t0);
    const top = await topPrediction(page);
    console.log(`      top-1: ${top.label.replace(/\s+/g, ' ').trim()} (index ${top.index})`);
    assert(CAT_CLASSES.includes(top.index), `top-1 class ${top.index} is not a cat class (281–285)`);
    await shot(page, '1-prediction');
  });

  // 2. Grad-CAM for the top class, chosen from the prediction list.
  await step('Grad-CAM overlay differs from the photo on the cat', async () => {
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-photo="cat.jpg"]', { timeout: WAIT });
    const top = await topPrediction(page);
    const t0 = Date.now();
    await page.click('[data-testid="prediction"] button');
    await page.waitForSelector(`[data-testid="gradcam-canvas"][data-state="ready"][data-class="${top.index}"]`, { timeout: WAIT });
    time('Grad-CAM', Date.now() - t0);
    const hash = await page.evaluate(() => location.hash);
    assert(hash.includes(`class=${top.index}`) && hash.includes('view=gradcam'), `the URL hash does not follow the view: ${hash}`);
    const diff = await page.evaluate(async () => {
      const canvas = document.querySelector('[data-testid="gradcam-canvas"]');
      const bitmap = await createImageBitmap(await (await fetch('./samples/cat.jpg')).blob());
      const ref = new OffscreenCanvas(canvas.width, canvas.height);
      ref.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const [x, y, w, h] = [canvas.width * 0.3, canvas.height * 0.25, canvas.width * 0.4, canvas.height * 0.5].map(Math.round);
      const a = canvas.getContext('2d').getImageData(x, y, w, h).data;
      const b = ref.getContext('2d').getImageData(x, y, w, h).data;
      let sum = 0;
      for (let i = 0; i < a.length; i += 4) sum += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
      return sum / (a.length / 4) / 3;
    });
    console.log(`      mean |overlay − photo| in the cat region: ${diff.toFixed(1)} / 255`);
    assert(diff > 8, `the overlay barely differs from the photo (${diff.toFixed(2)})`);
    await shot(page, '2-gradcam');
  });

  // 3. Activations of the first layer, a channel chosen by clicking its tile, the sparsity chart.
  await step('activations render, a click enlarges a channel', async () => {
    const t0 = Date.now();
    await page.click('[role="tab"][data-view="activations"]');
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-photo="cat.jpg"]', { timeout: WAIT });
    time('activations', Date.now() - t0);
    const stats = await canvasStats(page, 'activations-canvas');
    assert(stats.width > 0 && stats.std > 5, `the activation grid looks blank (${JSON.stringify(stats)})`);
    // Click the middle of tile 2 (grid: 16 per row, 1 px margin and gaps).
    const box = await page.$eval('[data-testid="activations-canvas"]', (c) => {
      const r = c.getBoundingClientRect();
      return { left: r.left, top: r.top, w: r.width, h: r.height, cw: c.width, ch: c.height };
    });
    const layer = await page.$eval('[data-testid="activations-layer"]', (s) => s.value);
    const shape = await page.evaluate((name) => {
      const option = [...document.querySelectorAll('[data-testid="activations-layer"] option')].find((o) => o.value === name);
      return option.textContent.match(/(\d+)×(\d+)×(\d+)/).slice(1).map(Number);
    }, layer);
    const factor = Math.max(1, Math.floor(32 / Math.max(shape[1], shape[2])));
    const tile = shape[2] * factor;
    const cx = 1 + 2 * (tile + 1) + tile / 2;
    const cy = 1 + (shape[1] * factor) / 2;
    await page.mouse.click(box.left + (cx * box.w) / box.cw, box.top + (cy * box.h) / box.ch);
    await page.waitForFunction(() => document.querySelector('[data-testid="activations-channel"]').value === '2', null, { timeout: 10_000 });
    await page.waitForSelector('[data-testid="channel-canvas"][data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="sparsity-chart"] svg rect.fill', { timeout: WAIT });
    const bars = await page.$$eval('[data-testid="sparsity-chart"] rect.fill', (r) => r.length);
    assert(bars > 3, `the sparsity chart has ${bars} bars`);
    await shot(page, '3-activations');
  });

  // 4. Four filter patterns with visible progress.
  await step('4 filter patterns with live progress', async () => {
    await page.click('[role="tab"][data-view="filters"]');
    await page.selectOption('[data-testid="filters-layer"]', '_blocks.1');
    await page.selectOption('[data-testid="filters-count"]', '4');
    await page.selectOption('[data-testid="filters-size"]', '32');
    await page.fill('[data-testid="filters-steps"]', '8');
    await page.dispatchEvent('[data-testid="filters-steps"]', 'change');
    await page.evaluate(() => {
      const progress = document.querySelector('[data-testid="filters-progress"]');
      window.__progressSeen = [];
      new MutationObserver(() => window.__progressSeen.push(progress.value)).observe(progress, { attributes: true, attributeFilter: ['value'] });
    });
    const t0 = Date.now();
    await page.click('[data-testid="filters-start"]');
    await page.waitForSelector('[data-testid="filters-canvas"][data-state="ready"]', { timeout: WAIT });
    time('filters (4 × 32 px, 8 steps)', Date.now() - t0);
    const seen = await page.evaluate(() => window.__progressSeen);
    const { value, max } = await page.$eval('[data-testid="filters-progress"]', (p) => ({ value: p.value, max: p.max }));
    assert(max === 8 && value === max, `the progress bar ended at ${value} of ${max}`);
    assert(seen.some((v) => v > 0 && v < max), `no intermediate progress was shown (values seen: ${seen.join(', ')})`);
    const stats = await canvasStats(page, 'filters-canvas');
    assert(stats.width > 0 && stats.std > 3, `the filter grid looks blank (${JSON.stringify(stats)})`);
    console.log(`      progress values seen: ${[...new Set(seen)].join(', ')}`);
    await shot(page, '4-filters');
  });

  if (backend === 'webgpu') await checkKerasModel(page, 'cat.jpg');

  if (backend === 'cpu') {
    await step('Cancel stops a long run, the page keeps working', async () => {
      await page.fill('[data-testid="filters-steps"]', '400');
      await page.dispatchEvent('[data-testid="filters-steps"]', 'change');
      await page.selectOption('[data-testid="filters-size"]', '64');
      await page.click('[data-testid="filters-start"]');
      await page.waitForFunction(() => document.querySelector('[data-testid="filters-progress"]').value >= 1, null, { timeout: WAIT });
      const starts = () => page.evaluate(() => document.documentElement.dataset.engineStarts);
      const before = await starts();
      const t0 = Date.now();
      await page.click('[data-testid="filters-cancel"]');
      await page.waitForFunction(() => /Cancelled/.test(document.querySelector('#filters-status').textContent), null, { timeout: 30_000 });
      time('cancel', Date.now() - t0);
      assert((await starts()) === before, 'the worker did not hear the cancel: the page had to restart the engine');
      await page.click('[role="tab"][data-view="gradcam"]');
      await page.selectOption('[data-testid="gradcam-method"]', 'layercam');
      await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="layercam"]', { timeout: WAIT });
      await shot(page, '4b-after-cancel');
    });

    // 5. A text file on the photo input: a message by the drop zone; then a real photo works.
    await step('a text file shows an error; a photo after it still works', async () => {
      await page.setInputFiles('[data-testid="photo-input"]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo\n') });
      await page.waitForSelector('[data-testid="photo-error"]:not([hidden])', { timeout: 10_000 });
      const message = await page.textContent('[data-testid="photo-error"]');
      console.log(`      message: ${message.trim()}`);
      assert(/notes\.txt/.test(message) && /image/.test(message), `unclear message: “${message}”`);
      await shot(page, '5-bad-file');
      await page.setInputFiles('[data-testid="photo-input"]', path.join(dist, 'samples/rocket.jpg'));
      await page.waitForSelector(predictionsFor('rocket.jpg'), { timeout: WAIT });
      assert(await page.$eval('[data-testid="photo-error"]', (e) => e.hidden), 'the error message stayed after a good photo');
    });

    // 6. The user's own Keras model, then files that cannot be used.
    await checkOnnxModel(page, 'rocket.jpg');
    await checkKerasModel(page, 'rocket.jpg');
    await checkBadModelFiles(page);

    // 7. A shared link reproduces its view.
    await step('a link reproduces model, view, layer, sample', async () => {
      const linked = await openPage(context, `${base}#model=efficientnet-lite0&view=activations&layer=_blocks.2&sample=astronaut`);
      await linked.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-photo="astronaut.jpg"]', { timeout: WAIT });
      const layer = await linked.$eval('[data-testid="activations-layer"]', (s) => s.value);
      const selected = await linked.$eval('[role="tab"][aria-selected="true"]', (t) => t.dataset.view);
      assert(layer === '_blocks.2' && selected === 'activations', `the link opened ${selected} at ${layer}`);
      await linked.close();
    });

    await step("a link made with the user's own model waits for that file", async () => {
      const linked = await openPage(context, `${base}#model=file&view=gradcam&layer=conv2d&class=1&sample=cat`);
      await linked.waitForSelector(`${predictionsFor('cat.jpg')}[data-from-file="false"]`, { timeout: WAIT });
      const note = await linked.textContent('[data-testid="model-note"]');
      const status = await linked.textContent('[data-testid="model-status"]');
      assert(/link/.test(note) && /your model file/.test(status), `the page does not ask for the file: “${note.trim()}” / “${status.trim()}”`);
      assert((await linked.$eval('[data-testid="model-select"]', (s) => s.value)) === 'file', 'the menu does not show “Your model”');
      await dropFile(linked, KERAS_MODEL, { target: '#model-card' });
      await linked.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"][data-class="1"]', { timeout: WAIT });
      const layer = await linked.$eval('[data-testid="gradcam-layer"]', (s) => s.value);
      assert(layer === 'conv2d', `the link's layer was not applied: ${layer}`);
      await linked.close();
    });

    await step("a link to a model at a URL opens it, with the sender's method and filter range", async () => {
      // A stand-in for a public, CORS-enabled host (no network in tests).
      const url = 'https://models.example.test/shared/seq_aug_128.keras';
      await context.route(url, (route) =>
        route.fulfill({ status: 200, headers: { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/octet-stream' }, body: readFileSync(KERAS_MODEL) }),
      );
      const hash = new URLSearchParams({ model: 'file', weights: url, view: 'filters', first: '3', count: '4', mode: 'regularized', method: 'layercam', sample: 'cat' });
      const linked = await openPage(context, `${base}#${hash}`);
      await linked.waitForFunction(() => /from seq_aug_128\.keras/.test(document.querySelector('[data-testid="model-status"]').textContent), null, { timeout: WAIT });
      await linked.waitForSelector(`${predictionsFor('cat.jpg')}[data-from-file="true"]`, { timeout: WAIT });
      const controls = await linked.evaluate(() => ({
        method: document.querySelector('[data-testid="gradcam-method"]').value,
        mode: document.querySelector('[data-testid="filters-mode"]').value,
        count: document.querySelector('[data-testid="filters-count"]').value,
        first: document.querySelector('[data-testid="filters-first"]').value,
        hash: location.hash,
      }));
      console.log(`      controls: ${JSON.stringify(controls)}`);
      assert(controls.method === 'layercam' && controls.mode === 'regularized' && controls.count === '4' && controls.first === '3', `the link's choices were not applied: ${JSON.stringify(controls)}`);
      const again = new URLSearchParams(controls.hash.slice(1));
      assert(again.get('weights') === url && again.get('method') === 'layercam', `the page's own link drops the model's URL: ${controls.hash}`);
      await linked.close();
      await context.unroute(url);
    });

    await step('after one visit the page opens and predicts offline (service worker)', async () => {
      const visit = await openPage(context, `${base}#sample=coffee`);
      await visit.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
      const controlled = await visit.evaluate(async () => {
        const registration = await navigator.serviceWorker.ready;
        return Boolean(registration.active);
      });
      assert(controlled, 'no active service worker');
      await context.setOffline(true);
      try {
        await visit.reload();
        await visit.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
      } finally {
        await context.setOffline(false);
      }
      await visit.close();
    });

    await step('phone-sized screenshot', async () => {
      const phone = await newContext(browser, { noWebGPU: true, viewport: { width: 390, height: 844 } });
      const small = await openPage(phone, `${base}#sample=cat`);
      await small.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
      await small.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
      const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await shot(small, '7-phone');
      await small.locator('#views').screenshot({ path: path.join(shots, `${current}-7-phone-views.png`) });
      assert(overflow <= 1, `the page scrolls sideways on a phone (${overflow} px too wide)`);
      await phone.close();
    });
  } else {
    await step('Auto avoids the software GPU', async () => {
      const auto = await openPage(context, `${base}#sample=cat`);
      const hasAdapter = await auto.evaluate(async () => Boolean(navigator.gpu && (await navigator.gpu.requestAdapter())));
      await auto.waitForSelector('[data-testid="backend-notice"][data-backend]:not([data-backend=""])', { timeout: WAIT });
      const { backend: chosen, text } = await auto.$eval('[data-testid="backend-notice"]', (n) => ({ backend: n.dataset.backend, text: n.querySelector('#backend-text').textContent }));
      console.log(`      Auto chose ${chosen}: ${text.replace(/\s+/g, ' ').trim()}`);
      if (hasAdapter) {
        const info = await auto.evaluate(async () => {
          const a = await navigator.gpu.requestAdapter();
          return `${a.info?.vendor} ${a.info?.architecture} ${a.info?.description}`;
        });
        if (/swiftshader|llvmpipe|lavapipe/i.test(info)) assert(chosen === 'cpu', `Auto picked ${chosen} on a software adapter (${info})`);
      }
      await auto.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
      await auto.close();
    });
  }
  await context.close();
}

// ---------------------------------------------------------------------------------------------

const { child: server, url } = await startServer().catch((e) => fail(e.message));
console.log(`serving ${dist} at ${url}`);
const args = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
if (process.env.E2E_VULKAN) args.push('--enable-features=Vulkan');
let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const version = browser.version();
  console.log(`Chromium ${version}; playwright-core ${JSON.parse(readFileSync(path.join(repo, 'node_modules/playwright-core/package.json'), 'utf8')).version}`);
  const only = process.env.E2E_BACKEND;
  for (const backend of ['webgpu', 'cpu']) {
    if (!only || only === backend) await checkBackend(browser, url, backend);
  }
} catch (err) {
  failures.push(`the run stopped: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  server.kill();
}

console.log('\nTimings (seconds):');
for (const [backend, steps] of Object.entries(timings)) {
  console.log(`  ${backend}`);
  for (const [name, ms] of Object.entries(steps)) console.log(`    ${name.padEnd(34)} ${(ms / 1000).toFixed(2)}`);
}
console.log(`Screenshots: ${path.relative(process.cwd(), shots) || shots}/`);

for (const p of problems) failures.push(p);
if (failures.length) {
  console.error(`\ne2e FAILED (${failures.length}):`);
  for (const f of failures) console.error(`  - ${f}`);
  process.exit(1);
}
console.log('\ne2e passed');
