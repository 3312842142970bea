// ConvLens page: a thin skin over the wasm core, which runs in ./worker.js. This file reads the
// photo, weights and controls, asks the worker for pictures and numbers, and draws them. It adds no
// math of its own. The URL hash (#model=…&view=…&layer=…&class=…&sample=…&backend=…) mirrors what
// is shown, so a link reproduces the view.

const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => Array.from(document.querySelectorAll(selector));

const VIEWS = ['gradcam', 'activations', 'filters'];
const SAMPLES = ['cat', 'coffee', 'astronaut', 'rocket'];
const MODEL_NAMES = {
  'efficientnet-lite0': 'EfficientNet-Lite0',
  vgg16: 'VGG16',
  'small-convnet': 'the small convnet',
};
const MAX_PHOTO_SIDE = 1024;
const WEIGHTS_EXTENSIONS = /\.(h5|hdf5|keras|pth|pt|safetensors|bin|ckpt)$/i;
// Where the filter-pattern view starts for each model (any conv layer works).
const FILTER_LAYER_DEFAULTS = { vgg16: 'block3_conv1', 'efficientnet-lite0': '_blocks.3', 'small-convnet': 'conv2d_2' };

// ------------------------------------------------------------------------------------------------
// The compute worker.

class ComputeError extends Error {
  constructor(message, { code, detected, fatal } = {}) {
    super(message);
    this.code = code;
    this.detected = detected;
    this.fatal = fatal;
  }
}

// Rejections that only mean "a newer request replaced this one": never shown.
const isQuiet = (err) => err && (err.code === 'superseded' || err.code === 'restarted');

// Capitalized one-line message for the user.
function messageOf(err) {
  const text = (err && err.message) || String(err);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

class Compute {
  constructor() {
    this.worker = null;
    this.pending = new Map();
    this.nextId = 1;
    this.onCrash = () => {};
  }

  start() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      const detail = event.message ? `: ${event.message}` : '';
      this.failAll(new ComputeError(`the compute engine could not be loaded (pkg/convlens.js and its .wasm)${detail}`, { fatal: true }));
      this.onCrash();
    };
    this.worker.onmessageerror = () => this.failAll(new ComputeError('a message from the compute engine could not be read'));
  }

  stop() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.failAll(new ComputeError('restarted', { code: 'restarted' }));
  }

  failAll(err) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }

  receive(message) {
    const entry = this.pending.get(message.id);
    if (!entry) return;
    if (message.progress) {
      if (entry.onProgress) {
        try {
          entry.onProgress(message.progress);
        } catch {
          // Drawing a preview must never break the computation.
        }
      }
      return;
    }
    this.pending.delete(message.id);
    if (message.ok) entry.resolve(message.result);
    else entry.reject(new ComputeError(message.error, message));
  }

  // Runs `op` in the worker. Requests run in order; a queued one is dropped when a newer request
  // with the same `slot` arrives.
  call(op, args = {}, { slot, transfer = [], onProgress } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.worker) {
        reject(new ComputeError('the compute engine is not running'));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args, slot }, transfer);
    });
  }

  cancel() {
    if (this.worker) this.worker.postMessage({ op: 'cancel' });
  }
}

const compute = new Compute();

// ------------------------------------------------------------------------------------------------
// State.

const state = {
  manifest: null,
  backendPref: 'auto',
  backend: null,
  engineReady: false,
  engineGen: 0,
  selectedModel: 'efficientnet-lite0',
  model: null, // the loaded model's description, from the wasm
  weights: null, // how to load the current model again: {model, url, sha256, size} or {model, blob, name}
  supplied: new Map(), // model name → the weights the user gave this session
  modelGen: 0,
  loadGen: 0,
  photo: null, // {name, sample, width, height, canvas, rgba}
  photoGen: 0,
  photoLoadGen: 0,
  photoOnEngine: -1,
  view: 'gradcam',
  gradcam: { layer: null, cls: -1, method: 'gradcam', colormap: 'jet', opacity: 0.4, heatmap: null },
  act: { layer: null, colormap: 'viridis', channel: 0, shape: null, grid: null },
  filters: { layer: null, count: 16, first: 0, size: 64, steps: 40, mode: 'classic', running: false, cancelTimer: 0 },
  rendered: {},
  inflight: {},
  pendingHash: null, // layer/class from the URL, applied once the model is loaded
};

// ------------------------------------------------------------------------------------------------
// Small UI helpers.

function show(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function setError(name, err) {
  const el = $(`#${name}-error`);
  if (!el) return;
  show(el, err ? messageOf(err) : '');
}

function setStatus(name, text, busy = false) {
  const el = $(`#${name}-status`);
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('busy', busy);
}

const seconds = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;

function imageData(picture) {
  return new ImageData(picture.rgba, picture.width, picture.height);
}

// A canvas holding a picture, for scaled drawing.
function pictureCanvas(picture) {
  const canvas = document.createElement('canvas');
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext('2d').putImageData(imageData(picture), 0, 0);
  return canvas;
}

function drawPicture(canvas, picture) {
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext('2d').putImageData(imageData(picture), 0, 0);
}

// Small filter grids are shown enlarged by a whole factor, so each pixel stays a crisp square.
function enlarge(canvas, limit = 760) {
  const factor = Math.max(1, Math.floor(limit / canvas.width));
  canvas.style.width = `${canvas.width * Math.min(factor, 4)}px`;
}

function setCanvasState(canvas, value) {
  canvas.dataset.state = value;
  const download = document.querySelector(`button.download[data-canvas="${canvas.id}"]`);
  if (download && value === 'ready') download.disabled = false;
  if (download && value === 'idle') download.disabled = true;
}

function modelTitle(name) {
  return state.manifest?.models?.[name]?.title || MODEL_NAMES[name] || name;
}

// ------------------------------------------------------------------------------------------------
// The URL hash.

function readHash() {
  return Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, '')));
}

function currentLayer() {
  if (state.view === 'gradcam') return state.gradcam.layer;
  if (state.view === 'activations') return state.act.layer;
  return state.filters.layer;
}

function writeHash() {
  const params = new URLSearchParams();
  params.set('model', state.selectedModel);
  params.set('view', state.view);
  const layer = state.pendingHash?.layer || currentLayer();
  if (layer) params.set('layer', layer);
  const cls = state.pendingHash?.cls ?? state.gradcam.cls;
  if (cls >= 0) params.set('class', String(cls));
  if (state.photo?.sample) params.set('sample', state.photo.sample);
  if (state.backendPref !== 'auto') params.set('backend', state.backendPref);
  const hash = `#${params}`;
  if (hash !== location.hash) history.replaceState(null, '', hash);
}

// Applies a hash: at start, or when the user edits the address.
function applyHash(initial) {
  const h = readHash();
  const backend = ['webgpu', 'cpu'].includes(h.backend) ? h.backend : 'auto';
  const backendChanged = backend !== state.backendPref;
  state.backendPref = backend;
  $('#backend-select').value = backend;

  if (VIEWS.includes(h.view)) selectView(h.view, { quiet: true });

  const cls = h.class !== undefined && /^\d+$/.test(h.class) ? Number(h.class) : -1;
  state.pendingHash = { view: state.view, layer: h.layer || null, cls };

  const model = MODEL_NAMES[h.model] ? h.model : null;
  if (!initial) {
    if (backendChanged) {
      startEngine();
      return;
    }
    if (model && model !== state.selectedModel) {
      $('#model-select').value = model;
      chooseModel(model);
    } else {
      applyPendingHash();
    }
    if (SAMPLES.includes(h.sample) && h.sample !== state.photo?.sample) loadSample(h.sample);
    return;
  }
  if (model) {
    state.selectedModel = model;
    $('#model-select').value = model;
  }
  return SAMPLES.includes(h.sample) ? h.sample : 'cat';
}

// Layer and class from the URL, once the model that has them is loaded.
function applyPendingHash() {
  const pending = state.pendingHash;
  if (!pending || !state.model) return;
  state.pendingHash = null;
  if (pending.layer) {
    const target = { gradcam: '#cam-layer', activations: '#act-layer', filters: '#flt-layer' }[pending.view];
    const select = $(target);
    if ([...select.options].some((o) => o.value === pending.layer)) {
      select.value = pending.layer;
      readControls();
    } else {
      setError(pending.view, `this model has no layer '${pending.layer}' to show here; showing ${select.value} instead`);
    }
  }
  if (pending.cls >= 0) {
    if (pending.cls < state.model.labels.length) setCamClass(pending.cls, { quiet: true });
    else setError('cam-class', `this model has no class ${pending.cls}`);
  }
  writeHash();
  refresh();
}

// ------------------------------------------------------------------------------------------------
// Backend choice.

async function autoBackend() {
  if (!navigator.gpu) return { backend: 'cpu', why: 'this browser does not offer WebGPU' };
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch {
    adapter = null;
  }
  if (!adapter) return { backend: 'cpu', why: 'WebGPU is present but found no usable GPU' };
  let info = adapter.info || {};
  if (!adapter.info && typeof adapter.requestAdapterInfo === 'function') {
    info = await adapter.requestAdapterInfo().catch(() => ({}));
  }
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const software = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render/i.test(text);
  if (info.isFallbackAdapter || adapter.isFallbackAdapter || software) {
    const name = /swiftshader/i.test(text) ? 'SwiftShader' : /llvmpipe|lavapipe/i.test(text) ? 'a Mesa software driver' : 'a software renderer';
    return { backend: 'cpu', why: `WebGPU here runs on ${name}, which is slower than the CPU backend` };
  }
  return { backend: 'webgpu', why: text ? `WebGPU on ${text}` : 'WebGPU' };
}

// The notice of which backend computes and why; `detail` (a raw error) folds away.
function showBackend(backend, text, detail = '') {
  const notice = $('#backend-notice');
  notice.dataset.backend = backend || '';
  notice.classList.toggle('is-cpu', backend === 'cpu');
  const line = $('#backend-text');
  line.textContent = text;
  if (detail) {
    const more = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = 'Details';
    const body = document.createElement('span');
    body.textContent = detail;
    more.append(summary, body);
    line.append(' ', more);
  }
}

// (Re)starts the worker and its engine on the preferred backend, then reloads the current model
// and photo.
async function startEngine() {
  const gen = ++state.engineGen;
  document.documentElement.dataset.engineStarts = String(gen); // lets tests see a restart
  state.engineReady = false;
  state.inflight = {};
  compute.stop();
  compute.start();
  showBackend('', 'Starting the compute engine…');
  let choice;
  if (state.backendPref === 'auto') {
    choice = await autoBackend();
  } else {
    choice = { backend: state.backendPref, why: 'as chosen' };
  }
  if (gen !== state.engineGen) return;
  let notice;
  let detail = '';
  try {
    await compute.call('create', { backend: choice.backend });
    notice =
      choice.backend === 'webgpu'
        ? `Computing on the GPU — ${choice.why === 'as chosen' ? 'WebGPU, as chosen' : choice.why}.`
        : `Computing on the CPU (WebAssembly)${choice.why === 'as chosen' ? ', as chosen' : `: ${choice.why}`}.`;
    state.backend = choice.backend;
  } catch (err) {
    if (gen !== state.engineGen || isQuiet(err)) return;
    if (choice.backend !== 'webgpu' || err.fatal) {
      showBackend('', 'The compute engine could not start.', messageOf(err));
      return;
    }
    try {
      await compute.call('create', { backend: 'cpu' });
    } catch (err2) {
      if (gen !== state.engineGen || isQuiet(err2)) return;
      showBackend('', 'The compute engine could not start.', messageOf(err2));
      return;
    }
    state.backend = 'cpu';
    notice = 'Computing on the CPU (WebAssembly): WebGPU could not start here.';
    detail = messageOf(err);
  }
  if (gen !== state.engineGen) return;
  showBackend(state.backend, notice, detail);
  state.engineReady = true;
  state.photoOnEngine = -1;
  const queued = state.queuedWeights;
  state.queuedWeights = null;
  if (queued) await loadModel(queued.source, queued.options);
  if (state.engineGen !== gen || state.modelEngineGen === gen) return;
  if (state.weights) {
    await loadModel(state.weights, { reload: true });
  } else {
    await loadInitialModel();
  }
}

compute.onCrash = () => {
  showBackend('', 'The compute engine could not be loaded. Check that pkg/convlens.js and pkg/convlens_bg.wasm are served next to this page, then reload.');
  state.engineReady = false;
};

// A request failed with a trap in the wasm: say so, and start a fresh engine.
const crashes = [];
function handleFatal(err) {
  if (!err || !err.fatal || !state.engineReady) return;
  state.engineReady = false;
  const now = Date.now();
  crashes.push(now);
  if (crashes.filter((t) => now - t < 120_000).length > 2) {
    showBackend(state.backend, `The compute engine keeps failing (${err.message}). Try the other backend, or reload the page.`);
    return;
  }
  setTimeout(startEngine, 0);
}

// ------------------------------------------------------------------------------------------------
// Models and weights.

async function loadManifest() {
  try {
    const response = await fetch(new URL('./weights/manifest.json', document.baseURI), { cache: 'no-cache' });
    if (!response.ok) throw new Error(`weights/manifest.json: ${response.status} ${response.statusText}`);
    state.manifest = await response.json();
  } catch (err) {
    state.manifest = { models: {} };
    setError('model', `The list of models could not be read (${err.message}). You can still drop a weights file.`);
  }
  return state.manifest;
}

// The way to load `name` without asking the user, or null.
function knownWeights(name) {
  const entry = state.manifest?.models?.[name];
  if (entry && entry.url) {
    return { model: name, url: new URL(entry.url, document.baseURI).href, sha256: entry.sha256, size: entry.bytes };
  }
  return state.supplied.get(name) || null;
}

function defaultModelName() {
  const models = state.manifest?.models || {};
  return Object.keys(models).find((m) => models[m].default && models[m].url) || 'efficientnet-lite0';
}

async function loadInitialModel() {
  await manifestReady;
  describeSelectedModel();
  const wanted = knownWeights(state.selectedModel);
  if (wanted) return loadModel(wanted);
  // A link to a model whose weights the user must provide: ask, and show the default meanwhile.
  const fallback = knownWeights(defaultModelName());
  if (fallback) await loadModel(fallback, { keepSelection: true });
}

function describeSelectedModel() {
  const name = state.selectedModel;
  const entry = state.manifest?.models?.[name];
  const needsFile = !(entry && entry.url);
  $('#weights-form').hidden = !needsFile;
  const note = entry?.note || (needsFile ? 'Choose or drop a weights file for this model.' : '');
  const licence = entry?.licence ? ` Licence: ${entry.licence}.` : '';
  $('#model-note').textContent = `${note}${licence}`.trim();
  const remembered = localStorage.getItem(`convlens.url.${name}`);
  if (needsFile && remembered && !$('#weights-url').value) $('#weights-url').value = remembered;
}

function chooseModel(name) {
  state.selectedModel = name;
  setError('model', '');
  describeSelectedModel();
  writeHash();
  const weights = knownWeights(name);
  if (weights) {
    loadModel(weights);
  } else if (state.model && state.model.model !== name) {
    $('#model-status').textContent = `Still showing ${modelTitle(state.model.model)} until weights for ${modelTitle(name)} are loaded.`;
  }
}

function showModelProgress(p) {
  const wrap = $('#model-progress-wrap');
  const bar = $('#model-progress');
  const text = $('#model-progress-text');
  wrap.hidden = false;
  if (p.phase === 'download') {
    if (p.total) {
      bar.max = p.total;
      bar.value = p.loaded;
      text.textContent = `Downloading weights… ${(p.loaded / 1e6).toFixed(1)} of ${(p.total / 1e6).toFixed(1)} MB`;
    } else {
      bar.removeAttribute('value');
      text.textContent = `Downloading weights… ${(p.loaded / 1e6).toFixed(1)} MB`;
    }
    return;
  }
  bar.removeAttribute('value');
  text.textContent =
    {
      cache: 'Reading weights from the browser cache…',
      verify: 'Checking the download (SHA-256)…',
      read: 'Reading the weights file…',
      detect: 'Recognising the model…',
      load: 'Loading the network (large files take a while)…',
    }[p.phase] || 'Loading…';
}

// Loads weights into the engine. `strict`: refuse a file holding another model than the one
// selected (with a button to use it anyway).
async function loadModel(source, { strict = false, reload = false, keepSelection = false } = {}) {
  if (!state.engineReady) {
    // The engine is (re)starting: it loads these weights once it is up.
    state.queuedWeights = { source, options: { strict, keepSelection } };
    return;
  }
  const gen = ++state.loadGen;
  const engineGen = state.engineGen;
  setError('model', '');
  showModelProgress({ phase: source.blob ? 'read' : 'cache' });
  const t0 = performance.now();
  try {
    const args = { model: source.model, url: source.url, sha256: source.sha256, size: source.size, blob: source.blob, strict };
    const out = await compute.call('loadWeights', args, { slot: 'weights', onProgress: showModelProgress });
    if (gen !== state.loadGen || engineGen !== state.engineGen) return;
    const info = out.info;
    const previous = state.model?.model;
    state.model = info;
    state.modelEngineGen = engineGen;
    state.weights = { ...source, model: info.model };
    if (source.blob || (source.url && !source.sha256)) state.supplied.set(info.model, state.weights);
    if (source.url && !source.sha256) localStorage.setItem(`convlens.url.${info.model}`, source.url);
    state.modelGen++;
    state.rendered = {};
    if (!keepSelection) {
      state.selectedModel = info.model;
      $('#model-select').value = info.model;
      describeSelectedModel();
    }
    const proof = out.verified ? ', checksum verified' : source.blob ? `, from ${source.name}` : source.url ? ', not verified (no checksum known)' : '';
    const from = out.cached ? ', from the browser cache' : '';
    $('#model-status').textContent =
      `${modelTitle(info.model)}: ${info.labels.length} classes, ${info.input_size}×${info.input_size} input, ` +
      `${info.layers.length} layers${proof}${from}. Loaded in ${seconds(performance.now() - t0)}.`;
    if (keepSelection && state.selectedModel !== info.model) {
      $('#model-status').textContent += ` Showing it until weights for ${modelTitle(state.selectedModel)} are loaded.`;
    }
    if (!reload || previous !== info.model) rebuildModelControls(previous === info.model);
    applyPendingHash();
    writeHash();
    refresh();
  } catch (err) {
    if (isQuiet(err) || gen !== state.loadGen) return;
    handleFatal(err);
    const box = $('#model-error');
    if (err.code === 'wrong-model' && err.detected) {
      box.textContent = `This file holds weights for ${modelTitle(err.detected)}, not ${modelTitle(source.model)}. `;
      const use = document.createElement('button');
      use.type = 'button';
      use.className = 'quiet';
      use.textContent = `Use it as ${modelTitle(err.detected)}`;
      use.addEventListener('click', () => loadModel({ ...source, model: err.detected }));
      box.append(use);
      box.hidden = false;
    } else {
      setError('model', reload ? `Could not reload the weights: ${err.message}` : err);
    }
  } finally {
    if (gen === state.loadGen) $('#model-progress-wrap').hidden = true;
  }
}

function loadWeightsFile(file, { strict }) {
  if (!file) return;
  const model = $('#model-select').value;
  loadModel({ model, blob: file, name: file.name }, { strict });
}

// Layer pickers, class list and defaults for the loaded model (keeping the choices when the new
// weights are for the same network).
function rebuildModelControls(sameModel = false) {
  const info = state.model;
  const spatial = info.layers.filter((l) => l.kind !== 'dense' && l.shape[1] * l.shape[2] > 1);
  const optimizable = spatial.filter((l) => l.kind === 'conv' || l.kind === 'block');
  const fill = (select, layers, fallback) => {
    const preferred = sameModel && layers.some((l) => l.name === select.value) ? select.value : fallback;
    select.replaceChildren(
      ...layers.map((l) => {
        const option = document.createElement('option');
        option.value = l.name;
        option.textContent = `${l.name} — ${l.kind}, ${l.shape[0]}×${l.shape[1]}×${l.shape[2]}`;
        return option;
      }),
    );
    if (layers.some((l) => l.name === preferred)) select.value = preferred;
  };
  fill($('#cam-layer'), spatial, info.default_cam_layer);
  fill($('#act-layer'), spatial, spatial[0]?.name);
  fill($('#flt-layer'), optimizable, FILTER_LAYER_DEFAULTS[info.model] || optimizable[0]?.name);

  $('#class-list').replaceChildren(
    ...info.labels.map((label, i) => {
      const option = document.createElement('option');
      option.value = `${label} (${i})`;
      return option;
    }),
  );
  if (!sameModel) {
    state.gradcam.cls = -1;
    $('#cam-class').value = '';
    state.act.channel = 0;
    $('#act-channel').value = '0';
  }
  for (const id of ['gradcam-canvas', 'activations-canvas', 'channel-canvas', 'filters-canvas']) {
    const canvas = document.getElementById(id);
    canvas.width = 0;
    canvas.height = 0;
    setCanvasState(canvas, 'idle');
  }
  $('#sparsity-chart').replaceChildren();
  for (const id of ['gradcam-caption', 'activations-caption', 'channel-caption', 'filters-caption']) $(`#${id}`).textContent = '';
  for (const name of ['gradcam', 'activations', 'filters', 'stats', 'cam-class']) setError(name, '');
  setStatus('filters', 'Choose a layer and press Start.');
  $('#flt-progress').value = 0;
  readControls();
}

// ------------------------------------------------------------------------------------------------
// Photos.

async function decodePhoto(blob, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    const kind = blob.type ? ` (${blob.type})` : '';
    throw new Error(`“${name}”${kind} could not be read as an image: it is damaged or not a photo. Try a JPEG, PNG, WebP or GIF.`);
  }
  const original = { width: bitmap.width, height: bitmap.height };
  const scale = Math.min(1, MAX_PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale < 1) {
    const resized = await createImageBitmap(bitmap, {
      resizeWidth: Math.max(1, Math.round(bitmap.width * scale)),
      resizeHeight: Math.max(1, Math.round(bitmap.height * scale)),
      resizeQuality: 'high',
    });
    bitmap.close();
    bitmap = resized;
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff'; // transparent pixels count as white
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  return { canvas, rgba, width: canvas.width, height: canvas.height, original };
}

async function usePhoto(blob, { name, sample = null }) {
  const gen = ++state.photoLoadGen;
  setError('photo', '');
  try {
    const photo = await decodePhoto(blob, name);
    if (gen !== state.photoLoadGen) return;
    state.photo = { ...photo, name, sample };
    state.photoGen++;
    const preview = $('#photo-preview');
    preview.width = photo.width;
    preview.height = photo.height;
    preview.getContext('2d').drawImage(photo.canvas, 0, 0);
    const resized = photo.original.width !== photo.width ? `, scaled from ${photo.original.width}×${photo.original.height}` : '';
    $('#photo-caption').textContent = `${name} · ${photo.width}×${photo.height}${resized}`;
    $('#photo-figure').hidden = false;
    $('#dropzone').classList.add('has-photo');
    for (const button of $$('.sample')) button.setAttribute('aria-pressed', String(button.dataset.sample === sample));
    writeHash();
    refresh();
  } catch (err) {
    if (gen !== state.photoLoadGen) return;
    setError('photo', err);
  }
}

async function loadSample(sample) {
  try {
    const response = await fetch(new URL(`./samples/${sample}.jpg`, document.baseURI));
    if (!response.ok) throw new Error(`the sample photo samples/${sample}.jpg could not be loaded (${response.status})`);
    await usePhoto(await response.blob(), { name: `${sample}.jpg`, sample });
  } catch (err) {
    setError('photo', err);
  }
}

// A file from the picker, a drop or the clipboard: a photo, or a weights file dropped in the wrong place.
function takeFile(file) {
  if (!file) return;
  if (WEIGHTS_EXTENSIONS.test(file.name) && !file.type.startsWith('image/')) {
    setError('photo', '');
    $('#model-card').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    loadModel({ model: state.selectedModel, blob: file, name: file.name });
    return;
  }
  usePhoto(file, { name: file.name || 'pasted image' });
}

// ------------------------------------------------------------------------------------------------
// Computing and drawing the views.

function keys() {
  const base = `${state.engineGen}|${state.modelGen}|${state.photoGen}`;
  const g = state.gradcam;
  const a = state.act;
  return {
    predict: base,
    gradcam: `${base}|${g.layer}|${g.cls}|${g.method}|${g.colormap}`,
    activations: `${base}|${a.layer}|${a.colormap}`,
    channel: `${base}|${a.layer}|${a.channel}|${a.colormap}`,
    stats: base,
  };
}

// Runs `task` unless its result for `key` is already shown or coming. `task` returns false if it
// found its result stale.
async function once(name, key, task) {
  if (state.rendered[name] === key || state.inflight[name] === key) return;
  state.inflight[name] = key;
  try {
    await task(() => keys()[name] === key);
    if (keys()[name] === key) state.rendered[name] = key;
  } finally {
    if (state.inflight[name] === key) state.inflight[name] = null;
  }
}

function refresh() {
  if (!state.engineReady || !state.model || !state.photo) return;
  if (state.photoOnEngine !== state.photoGen) {
    const { rgba, width, height } = state.photo;
    const copy = rgba.slice();
    const gen = state.photoGen;
    compute
      .call('setPhoto', { rgba: copy, width, height }, { slot: 'photo', transfer: [copy.buffer] })
      .catch((err) => {
        if (isQuiet(err)) return;
        handleFatal(err);
        if (gen === state.photoGen) setError('photo', err);
      });
    state.photoOnEngine = state.photoGen;
  }
  updatePredictions();
  if (state.view === 'gradcam') updateGradcam();
  if (state.view === 'activations') {
    updateActivations();
    updateStats();
  }
}

const waitNote = () => (state.filters.running ? ' (after the filter patterns finish)' : '');

function updatePredictions() {
  const list = $('#predictions');
  once('predict', keys().predict, async (current) => {
    list.dataset.state = 'busy';
    setStatus('predict', `Classifying${waitNote()}…`, true);
    setError('predict', '');
    const t0 = performance.now();
    try {
      const rows = await compute.call('predict', { top: 5 }, { slot: 'predict' });
      if (!current()) return;
      list.replaceChildren(...rows.map(predictionRow));
      list.dataset.photo = state.photo.name;
      list.dataset.state = 'ready';
      setStatus('predict', `${state.photo.name}, ${modelTitle(state.model.model)}, ${seconds(performance.now() - t0)}`);
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      list.dataset.state = 'error';
      setStatus('predict', '');
      setError('predict', err);
    }
  });
}

function predictionRow({ index, label, prob }) {
  const li = document.createElement('li');
  li.setAttribute('data-testid', 'prediction');
  li.dataset.index = String(index);
  li.dataset.prob = String(prob);
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'prediction';
  button.title = `Show the Grad-CAM evidence for “${label}”`;
  const name = document.createElement('span');
  name.className = 'label';
  name.textContent = label;
  const bar = document.createElement('span');
  bar.className = 'bar';
  bar.setAttribute('aria-hidden', 'true');
  const fill = document.createElement('span');
  fill.style.width = `${Math.max(0.5, prob * 100).toFixed(1)}%`;
  bar.append(fill);
  const value = document.createElement('span');
  value.className = 'value';
  value.textContent = percent(prob);
  button.append(name, bar, value);
  button.addEventListener('click', () => {
    setCamClass(index);
    selectView('gradcam');
    $('#gradcam-canvas').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  });
  li.append(button);
  return li;
}

// --- Grad-CAM

function setCamClass(index, { quiet = false } = {}) {
  state.gradcam.cls = index;
  $('#cam-class').value = index >= 0 && state.model ? `${state.model.labels[index]} (${index})` : '';
  setError('cam-class', '');
  if (!quiet) {
    writeHash();
    refresh();
  }
}

// Reads the class box: "tabby (281)", "281", or a label; empty means the top prediction.
function parseClass(text) {
  const value = text.trim();
  if (!value) return -1;
  const labels = state.model?.labels || [];
  const byIndex = value.match(/\((\d+)\)\s*$/) || value.match(/^(\d+)$/);
  if (byIndex && Number(byIndex[1]) < labels.length) return Number(byIndex[1]);
  const exact = labels.findIndex((l) => l.toLowerCase() === value.toLowerCase());
  if (exact >= 0) return exact;
  const partial = labels.filter((l) => l.toLowerCase().includes(value.toLowerCase()));
  if (partial.length === 1) return labels.indexOf(partial[0]);
  return null;
}

function drawGradcam() {
  const canvas = $('#gradcam-canvas');
  const { photo } = state;
  const heatmap = state.gradcam.heatmap;
  if (!photo || !heatmap) return;
  canvas.width = photo.width;
  canvas.height = photo.height;
  const ctx = canvas.getContext('2d');
  ctx.globalAlpha = 1;
  ctx.drawImage(photo.canvas, 0, 0);
  ctx.globalAlpha = state.gradcam.opacity;
  ctx.drawImage(heatmap, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function updateGradcam() {
  const canvas = $('#gradcam-canvas');
  const g = state.gradcam;
  once('gradcam', keys().gradcam, async (current) => {
    setCanvasState(canvas, 'busy');
    setStatus('gradcam', `Computing ${$('#cam-method').selectedOptions[0].textContent} at ${g.layer}${waitNote()}…`, true);
    setError('gradcam', '');
    const t0 = performance.now();
    try {
      const out = await compute.call('gradcam', { layer: g.layer, cls: g.cls, method: g.method, colormap: g.colormap }, { slot: 'gradcam' });
      if (!current()) return;
      state.gradcam.heatmap = pictureCanvas(out.heatmap);
      drawGradcam();
      const { info } = out;
      canvas.dataset.photo = state.photo.name;
      canvas.dataset.class = String(info.class);
      canvas.dataset.method = g.method;
      canvas.setAttribute('aria-label', `Grad-CAM heatmap for “${info.label}” over the photo`);
      $('#gradcam-caption').textContent =
        `Evidence for “${info.label}” (class ${info.class}, probability ${percent(info.prob)}), ` +
        `from layer ${info.layer} (${info.height}×${info.width} map).`;
      setCanvasState(canvas, 'ready');
      setStatus('gradcam', `Computed in ${seconds(performance.now() - t0)}.`);
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setStatus('gradcam', '');
      setError('gradcam', err);
    }
  });
}

// --- Activations

// The channel under a point of the grid canvas, from the grid's documented layout: 16 tiles per
// row, each upscaled by max(1, floor(32 / max(H, W))), 1 px gaps and margin.
function tileGeometry() {
  const [c, h, w] = state.act.shape;
  const factor = Math.max(1, Math.floor(32 / Math.max(h, w)));
  return { c, tw: w * factor, th: h * factor, cols: Math.min(16, c), gap: 1 };
}

function channelAt(x, y) {
  if (!state.act.shape) return null;
  const { c, tw, th, cols, gap } = tileGeometry();
  const col = Math.floor((x - gap) / (tw + gap));
  const row = Math.floor((y - gap) / (th + gap));
  if (col < 0 || row < 0 || col >= cols) return null;
  const index = row * cols + col;
  return index < c ? index : null;
}

function drawActivationGrid() {
  const canvas = $('#activations-canvas');
  const grid = state.act.grid;
  if (!grid) return;
  drawPicture(canvas, grid);
  const { tw, th, cols, gap } = tileGeometry();
  const i = state.act.channel;
  const ctx = canvas.getContext('2d');
  const scale = canvas.width / Math.max(1, canvas.getBoundingClientRect().width || canvas.width);
  ctx.lineWidth = Math.max(2, Math.round(2 * scale));
  ctx.strokeStyle = '#ffd23f';
  const x = gap + (i % cols) * (tw + gap);
  const y = gap + Math.floor(i / cols) * (th + gap);
  ctx.strokeRect(x - ctx.lineWidth / 2 + 0.5, y - ctx.lineWidth / 2 + 0.5, tw + ctx.lineWidth - 1, th + ctx.lineWidth - 1);
}

function describeChannel() {
  const stats = state.act.info?.stats;
  const i = state.act.channel;
  if (!stats) return;
  const mean = stats.channel_means?.[i];
  const max = stats.channel_maxes?.[i];
  const numbers = mean !== undefined ? `: mean ${mean.toPrecision(3)}, max ${max.toPrecision(3)}${max === 0 ? ' (silent for this photo)' : ''}` : '';
  $('#channel-caption').textContent = `Channel ${i} of ${state.act.layer}${numbers}.`;
}

function updateActivations() {
  const canvas = $('#activations-canvas');
  const a = state.act;
  once('activations', keys().activations, async (current) => {
    setCanvasState(canvas, 'busy');
    setStatus('activations', `Computing the activations of ${a.layer}${waitNote()}…`, true);
    setError('activations', '');
    const t0 = performance.now();
    try {
      const out = await compute.call('activations', { layer: a.layer, colormap: a.colormap }, { slot: 'activations' });
      if (!current()) return;
      const { info } = out;
      state.act.info = info;
      state.act.shape = info.shape;
      state.act.grid = out.grid;
      const [c, h, w] = info.shape;
      const input = $('#act-channel');
      input.max = String(c - 1);
      if (state.act.channel > c - 1) {
        state.act.channel = 0;
        input.value = '0';
      }
      drawActivationGrid();
      canvas.dataset.photo = state.photo.name;
      canvas.setAttribute('aria-label', `The ${c} channels of ${info.layer}, tiled`);
      const s = info.stats;
      $('#activations-caption').textContent =
        `${info.layer}: ${c} channels of ${h}×${w}. Sparsity ${percent(s.sparsity)} (exact zeros), mean ${s.mean.toPrecision(3)}, max ${s.max.toPrecision(3)}.`;
      setCanvasState(canvas, 'ready');
      setStatus('activations', `Computed in ${seconds(performance.now() - t0)}.`);
      updateChannel();
      markChartLayer();
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setStatus('activations', '');
      setError('activations', err);
    }
  });
}

function updateChannel() {
  const canvas = $('#channel-canvas');
  const a = state.act;
  if (!a.shape) return;
  drawActivationGrid();
  describeChannel();
  once('channel', keys().channel, async (current) => {
    setCanvasState(canvas, 'busy');
    try {
      const picture = await compute.call('channel', { layer: a.layer, index: a.channel, colormap: a.colormap }, { slot: 'channel' });
      if (!current()) return;
      // Enlarged without smoothing, so each activation stays one visible square.
      const scale = Math.max(1, Math.floor(256 / Math.max(picture.width, picture.height)));
      canvas.width = picture.width * scale;
      canvas.height = picture.height * scale;
      const ctx = canvas.getContext('2d');
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(pictureCanvas(picture), 0, 0, canvas.width, canvas.height);
      canvas.setAttribute('aria-label', `Channel ${a.channel} of ${a.layer}, enlarged`);
      setCanvasState(canvas, 'ready');
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setError('activations', err);
    }
  });
}

function setChannel(index) {
  const c = state.act.shape ? state.act.shape[0] : 1;
  if (!Number.isInteger(index) || index < 0 || index >= c) {
    setError('activations', `choose a channel from 0 to ${c - 1}`);
    return;
  }
  setError('activations', '');
  state.act.channel = index;
  $('#act-channel').value = String(index);
  updateChannel();
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawSparsityChart(rows) {
  const box = $('#sparsity-chart');
  const bar = 18;
  const gap = 4;
  const top = 12;
  const plot = 90;
  const labelSpace = 96;
  const left = 34;
  const width = left + rows.length * (bar + gap) + gap;
  const height = top + plot + labelSpace;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'sparsity' });
  const summary = rows.map((r) => `${r.layer} ${percent(r.sparsity, 0)}`).join(', ');
  chart.setAttribute('aria-label', `Sparsity by layer: ${summary}`);
  for (const level of [0, 0.5, 1]) {
    const y = top + plot * (1 - level);
    chart.append(svg('line', { x1: left - 4, x2: width, y1: y, y2: y, class: 'grid' }));
    chart.append(svg('text', { x: left - 7, y: y + 3.5, class: 'axis', 'text-anchor': 'end' }, `${level * 100}%`));
  }
  rows.forEach((r, i) => {
    const x = left + gap + i * (bar + gap);
    const h = Math.max(0.5, plot * r.sparsity);
    const g = svg('g', { class: 'bar', 'data-layer': r.layer });
    g.append(svg('title', {}, `${r.layer}: ${percent(r.sparsity)} zeros, mean ${r.mean.toPrecision(3)}, max ${r.max.toPrecision(3)}`));
    g.append(svg('rect', { x: x - gap / 2, y: top, width: bar + gap, height: plot, class: 'hit' }));
    g.append(svg('rect', { x, y: top + plot - h, width: bar, height: h, class: 'fill' }));
    const ly = top + plot + 6;
    g.append(svg('text', { x: x + bar / 2, y: ly, class: 'tick', transform: `rotate(-60 ${x + bar / 2} ${ly})`, 'text-anchor': 'end' }, r.layer));
    g.addEventListener('click', () => {
      const select = $('#act-layer');
      if ([...select.options].some((o) => o.value === r.layer)) {
        select.value = r.layer;
        onControlChange();
      }
    });
    chart.append(g);
  });
  box.replaceChildren(chart);
  markChartLayer();
}

function markChartLayer() {
  for (const g of $$('#sparsity-chart g.bar')) g.classList.toggle('current', g.dataset.layer === state.act.layer);
}

function updateStats() {
  once('stats', keys().stats, async (current) => {
    setError('stats', '');
    try {
      const rows = await compute.call('layerStats', {}, { slot: 'stats' });
      if (!current()) return;
      drawSparsityChart(rows);
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setError('stats', err);
    }
  });
}

// --- Filter patterns

function filterChannels() {
  const layer = state.model?.layers.find((l) => l.name === state.filters.layer);
  return layer ? layer.shape[0] : 0;
}

async function startFilters() {
  const f = state.filters;
  if (f.running) return;
  setError('filters', '');
  if (!state.engineReady || !state.model) {
    setError('filters', 'the model is not loaded yet');
    return;
  }
  const channels = filterChannels();
  const count = Math.min(f.count, channels);
  if (!Number.isInteger(f.steps) || f.steps < 1 || f.steps > 500) {
    setError('filters', 'steps must be a whole number from 1 to 500');
    return;
  }
  if (!Number.isInteger(f.first) || f.first < 0 || f.first + count > channels) {
    setError('filters', `${f.layer} has ${channels} filters: start from 0 to ${channels - count}`);
    return;
  }
  const canvas = $('#filters-canvas');
  const progress = $('#flt-progress');
  const engineGen = state.engineGen;
  f.running = true;
  f.cancelled = false;
  f.stepMs = 0;
  $('#flt-start').disabled = true;
  $('#flt-cancel').disabled = false;
  progress.max = f.steps;
  progress.value = 0;
  setCanvasState(canvas, 'busy');
  const what = `${count} pattern${count === 1 ? '' : 's'} of ${f.layer} (filters ${f.first}–${f.first + count - 1})`;
  setStatus('filters', `Starting ${what}…`, true);
  const t0 = performance.now();
  const previewEvery = Math.max(1, Math.round(f.steps / 10));
  try {
    const out = await compute.call(
      'filters',
      { layer: f.layer, first: f.first, count, size: f.size, steps: f.steps, mode: f.mode, seed: 0, previewEvery },
      {
        onProgress: (p) => {
          progress.value = p.step;
          const elapsed = performance.now() - t0;
          f.stepMs = elapsed / Math.max(1, p.step);
          const left = p.step > 0 ? (elapsed / p.step) * (p.steps - p.step) : 0;
          const loss = Number.isFinite(p.loss) ? `, mean activation ${p.loss.toPrecision(3)}` : '';
          setStatus('filters', `Step ${p.step} of ${p.steps}${loss} — about ${seconds(left)} left`, true);
          if (p.grid) {
            drawPicture(canvas, p.grid);
            enlarge(canvas);
          }
        },
      },
    );
    drawPicture(canvas, out.grid);
    enlarge(canvas);
    progress.value = f.steps;
    canvas.setAttribute('aria-label', `Filter patterns: ${what}`);
    $('#filters-caption').textContent = `${what}, ${f.size}×${f.size} px, ${f.steps} steps, ${f.mode === 'classic' ? 'classic' : 'regularized'}.`;
    setCanvasState(canvas, 'ready');
    setStatus('filters', `Done in ${seconds(performance.now() - t0)}.`);
  } catch (err) {
    const cancelled = f.cancelled && (isQuiet(err) || /cancel/i.test(err.message));
    if (cancelled) {
      setStatus('filters', 'Cancelled.');
      setCanvasState(canvas, canvas.width ? 'ready' : 'idle');
    } else if (!isQuiet(err) || engineGen === state.engineGen) {
      handleFatal(err);
      setStatus('filters', '');
      setCanvasState(canvas, 'error');
      setError('filters', isQuiet(err) ? 'the compute engine was restarted; press Start again' : err);
    } else {
      setStatus('filters', '');
    }
  } finally {
    clearTimeout(f.cancelTimer);
    f.running = false;
    $('#flt-start').disabled = false;
    $('#flt-cancel').disabled = true;
    refresh(); // anything that waited for the engine
  }
}

// Asks the running job to stop (the worker hears it between ascent steps); if a step takes too
// long to wait for, starts a fresh engine instead, which reloads the model and photo.
function cancelFilters() {
  const f = state.filters;
  if (!f.running) return;
  f.cancelled = true;
  $('#flt-cancel').disabled = true;
  setStatus('filters', 'Cancelling…', true);
  compute.cancel();
  clearTimeout(f.cancelTimer);
  const patience = Math.min(15000, Math.max(1000, 1.5 * (f.stepMs || 0) + 500));
  f.cancelTimer = setTimeout(() => {
    if (f.running) startEngine();
  }, patience);
}

// ------------------------------------------------------------------------------------------------
// Controls.

function readControls() {
  const g = state.gradcam;
  g.layer = $('#cam-layer').value || null;
  g.method = $('#cam-method').value;
  g.colormap = $('#cam-colormap').value;
  g.opacity = Number($('#cam-opacity').value);
  const a = state.act;
  const actLayer = $('#act-layer').value || null;
  if (actLayer !== a.layer) {
    a.layer = actLayer;
    a.shape = null;
    a.grid = null;
    a.channel = 0;
    $('#act-channel').value = '0';
  }
  a.colormap = $('#act-colormap').value;
  const f = state.filters;
  f.layer = $('#flt-layer').value || null;
  f.count = Number($('#flt-count').value);
  f.first = Number($('#flt-first').value);
  f.size = Number($('#flt-size').value);
  f.steps = Number($('#flt-steps').value);
  f.mode = $('#flt-mode').value;
  $('#flt-first').max = String(Math.max(0, filterChannels() - 1));
}

function onControlChange() {
  readControls();
  markChartLayer();
  writeHash();
  refresh();
}

function selectView(view, { quiet = false, focus = false } = {}) {
  state.view = view;
  for (const tab of $$('[role="tab"]')) {
    const selected = tab.dataset.view === view;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && focus) tab.focus();
  }
  for (const v of VIEWS) $(`#panel-${v}`).hidden = v !== view;
  if (!quiet) {
    writeHash();
    refresh();
  }
}

function downloadCanvas(canvas) {
  const parts = ['convlens', state.model?.model];
  if (canvas.id === 'gradcam-canvas') parts.push('gradcam', state.gradcam.layer, canvas.dataset.class);
  if (canvas.id === 'activations-canvas') parts.push('activations', state.act.layer);
  if (canvas.id === 'channel-canvas') parts.push(state.act.layer, `channel${state.act.channel}`);
  if (canvas.id === 'filters-canvas') parts.push('filters', state.filters.layer);
  const name = `${parts.filter((p) => p !== undefined && p !== null && p !== '').join('-').replace(/[^\w.-]+/g, '_')}.png`;
  canvas.toBlob((blob) => {
    if (!blob) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 30000);
  }, 'image/png');
}

function wire() {
  // Photo: picker, drop, paste, samples.
  const input = $('#photo-input');
  input.addEventListener('change', () => {
    takeFile(input.files[0]);
    input.value = '';
  });
  const zone = $('#dropzone');
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  const modelCard = $('#model-card');
  // Files may be dropped anywhere: on the model card they are weights, elsewhere photos.
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    const onModel = modelCard.contains(e.target);
    modelCard.classList.toggle('dragging', onModel);
    zone.classList.toggle('dragging', !onModel);
  });
  const endDrag = () => {
    zone.classList.remove('dragging');
    modelCard.classList.remove('dragging');
  };
  window.addEventListener('dragleave', (e) => {
    if (!e.relatedTarget) endDrag();
  });
  window.addEventListener('drop', (e) => {
    endDrag();
    if (!hasFiles(e)) return;
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (!file) return;
    // Weights dropped on the model card go to the model; anything else is taken as a photo.
    if (modelCard.contains(e.target)) loadWeightsFile(file, { strict: true });
    else takeFile(file);
  });
  document.addEventListener('paste', (e) => {
    const items = [...(e.clipboardData?.items || [])];
    const image = items.find((item) => item.kind === 'file' && item.type.startsWith('image/'));
    if (image) {
      e.preventDefault();
      const file = image.getAsFile();
      if (file) usePhoto(file, { name: file.name && file.name !== 'image.png' ? file.name : 'pasted image' });
      return;
    }
    const inField = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (!inField && items.some((item) => item.kind === 'file')) setError('photo', 'the clipboard holds a file that is not an image');
  });
  for (const button of $$('.sample')) button.addEventListener('click', () => loadSample(button.dataset.sample));

  // Backend and model.
  $('#backend-select').addEventListener('change', (e) => {
    state.backendPref = e.target.value;
    writeHash();
    startEngine();
  });
  $('#model-select').addEventListener('change', (e) => chooseModel(e.target.value));
  $('#weights-input').addEventListener('change', (e) => {
    loadWeightsFile(e.target.files[0], { strict: true });
    e.target.value = '';
  });
  $('#weights-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('#weights-url').value.trim();
    let url;
    try {
      url = new URL(text, document.baseURI);
      if (!/^https?:$/.test(url.protocol)) throw new Error();
    } catch {
      setError('model', 'enter a web address (http:// or https://) of a weights file');
      return;
    }
    loadModel({ model: state.selectedModel, url: url.href }, { strict: true });
  });

  // Views.
  const tabs = $$('[role="tab"]');
  for (const tab of tabs) {
    tab.addEventListener('click', () => selectView(tab.dataset.view));
    tab.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectView(tabs[(next + tabs.length) % tabs.length].dataset.view, { focus: true });
    });
  }
  for (const id of ['#cam-layer', '#cam-method', '#cam-colormap', '#act-layer', '#act-colormap', '#flt-layer', '#flt-count', '#flt-size', '#flt-mode', '#flt-first', '#flt-steps']) {
    $(id).addEventListener('change', onControlChange);
  }
  $('#cam-opacity').addEventListener('input', () => {
    state.gradcam.opacity = Number($('#cam-opacity').value);
    $('#cam-opacity-value').textContent = percent(state.gradcam.opacity, 0);
    drawGradcam();
  });
  $('#cam-class').addEventListener('change', () => {
    const index = parseClass($('#cam-class').value);
    if (index === null) {
      setError('cam-class', `no single class matches “${$('#cam-class').value.trim()}”: pick one from the list`);
      return;
    }
    setCamClass(index);
  });
  $('#cam-class-top').addEventListener('click', () => setCamClass(-1));
  $('#act-channel').addEventListener('change', () => setChannel(Number($('#act-channel').value)));
  $('#activations-canvas').addEventListener('click', (e) => {
    const canvas = e.currentTarget;
    const rect = canvas.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((e.clientY - rect.top) * canvas.height) / rect.height;
    const index = channelAt(x, y);
    if (index !== null) setChannel(index);
  });
  $('#flt-start').addEventListener('click', startFilters);
  $('#flt-cancel').addEventListener('click', cancelFilters);
  for (const button of $$('button.download')) {
    button.addEventListener('click', () => downloadCanvas(document.getElementById(button.dataset.canvas)));
  }
  $('#copy-link').addEventListener('click', async () => {
    writeHash();
    try {
      await navigator.clipboard.writeText(location.href);
      $('#copy-status').textContent = 'Link copied.';
    } catch {
      $('#copy-status').textContent = 'Copy the address bar: it holds this view.';
    }
    setTimeout(() => ($('#copy-status').textContent = ''), 4000);
  });
  window.addEventListener('hashchange', () => applyHash(false));
  window.addEventListener('unhandledrejection', (e) => {
    // Last resort: every promise is caught where it fails, but never let one escape silently.
    e.preventDefault();
    showBackend(state.backend, 'Something went wrong that the page did not expect; if a view stops updating, reload the page.', messageOf(e.reason));
  });
}

// ------------------------------------------------------------------------------------------------
// Start.

let manifestReady;

function boot() {
  wire();
  readControls();
  const sample = applyHash(true);
  manifestReady = loadManifest();
  manifestReady.then(describeSelectedModel);
  loadSample(sample);
  startEngine().catch((err) => showBackend('', `The compute engine could not start. ${messageOf(err)}`));
}

boot();
