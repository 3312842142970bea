// ConvLens page: a thin skin over the wasm core, which runs in ./worker.js. This file reads the
// photo, weights and controls, asks the worker for pictures and numbers, and draws them. It adds no
// math of its own, and no knowledge of any particular network: names, titles, layers, input sizes
// and default layers all come from the engine (catalogue() and each model's description). The URL
// hash (#model=…&view=…&layer=…&class=…&labels=…&sample=…&backend=…) mirrors what is shown, so a
// link reproduces the view.

const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => Array.from(document.querySelectorAll(selector));

const VIEWS = ['gradcam', 'activations', 'filters'];
const SAMPLES = ['cat', 'coffee', 'astronaut', 'rocket'];
const MAX_PHOTO_SIDE = 1024;
const MODEL_EXTENSIONS = /\.(onnx|keras|h5|hdf5|pth|pt|safetensors|bin|ckpt)$/i;
// The model menu's entry for a model file the user brings (its value in the menu and the hash).
const FILE_ENTRY = 'file';
const FILE_ENTRY_TEXT = 'Your model (.onnx, .keras, .h5, .pth, .safetensors)';
// Class names longer than this (joined, one per line) stay out of the URL.
const MAX_LABELS_IN_LINK = 300;
// Names for the preprocessing an engine may report that the menu does not offer.
const PREPROCESSING_NAMES = { centered127: '(x − 127) ÷ 128', raw: 'Raw pixels, 0–255', unit: '0 to 1 (÷ 255)', tf: '−1 to 1', torch: 'ImageNet mean and std', caffe: 'Caffe' };

// ------------------------------------------------------------------------------------------------
// The compute worker.

class ComputeError extends Error {
  constructor(message, { code, fatal } = {}) {
    super(message);
    this.code = code;
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

// The message as one finished sentence.
function sentence(err) {
  const text = messageOf(err).replace(/\s+/g, ' ').trim();
  return /[.!?…]$/.test(text) ? text : `${text}.`;
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
  catalogue: null, // the built-in networks, from the engine: [{name, title, bundled, …}]
  selectedModel: null, // the model menu's entry: a catalogue name or FILE_ENTRY
  model: null, // the loaded model's description, from the engine
  source: null, // where the loaded model came from: {id, user, model?, url?, sha256?, size?, blob?, name?}
  options: { preprocessing: null, labels: null }, // what the user chose for it
  ownLabels: null, // the class names the loaded model came with
  supplied: new Map(), // menu entry → {source, options, info}: the files the user gave this session
  sourceCount: 0,
  queuedLoad: null,
  modelGen: 0,
  labelsGen: 0,
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

function catalogueEntry(name) {
  return state.catalogue?.find((m) => m.name === name) || null;
}

// A menu entry for people: a built-in's title from the engine, or "your model".
function entryTitle(name) {
  if (name === FILE_ENTRY) return 'your model';
  return catalogueEntry(name)?.title || name;
}

// A loaded model for people.
function modelTitle(info) {
  return info.from_file ? `Your model: ${info.title}` : info.title;
}

// The menu entry a loaded model belongs to.
function entryOf(info) {
  return info.from_file ? FILE_ENTRY : info.model;
}

const hasMap = (layer) => layer.shape[1] * layer.shape[2] > 1;
const sizeOf = (info) => `${info.input_height}×${info.input_width}`;

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
  if (state.selectedModel) params.set('model', state.selectedModel);
  params.set('view', state.view);
  const layer = state.pendingHash?.layer || currentLayer();
  if (layer) params.set('layer', layer);
  const cls = state.pendingHash?.cls ?? state.gradcam.cls;
  if (cls >= 0) params.set('class', String(cls));
  const labels = state.pendingHash?.labels || labelsForLink();
  if (labels) params.set('labels', labels);
  if (state.photo?.sample) params.set('sample', state.photo.sample);
  if (state.backendPref !== 'auto') params.set('backend', state.backendPref);
  // A model the user loaded from a URL travels with the link (a dropped file cannot), and so do
  // the choices made for it.
  const pending = state.pendingHash;
  const weights = pending?.weights || (state.source?.user && state.source.url);
  if (weights) params.set('weights', weights);
  const prep = pending?.prep || (state.source?.user && state.options?.preprocessing);
  if (prep) params.set('prep', prep);
  const method = pending?.method || state.gradcam.method;
  if (method && method !== 'gradcam') params.set('method', method);
  if (state.view === 'filters' || pending?.first !== undefined) {
    const f = state.filters;
    params.set('first', String(pending?.first ?? f.first));
    params.set('count', String(pending?.count ?? f.count));
    const mode = pending?.mode || f.mode;
    if (mode && mode !== 'classic') params.set('mode', mode);
  }
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
  const labels = h.labels && h.labels.trim() && h.labels.length <= MAX_LABELS_IN_LINK ? h.labels : null;
  const model = h.model || null;
  // Only web addresses are fetched from a link (never another scheme).
  const weights = /^https?:\/\//i.test(h.weights || '') ? h.weights : undefined;
  const count = /^\d+$/.test(h.count || '') ? Number(h.count) : undefined;
  const first = /^\d+$/.test(h.first || '') ? Number(h.first) : undefined;
  state.pendingHash = { view: state.view, layer: h.layer || null, cls, model, labels, weights, prep: h.prep || undefined, method: h.method, first, count, mode: h.mode };

  if (!initial) {
    if (backendChanged) {
      startEngine();
      return;
    }
    if (model && isEntry(model) && model !== state.selectedModel) {
      chooseModel(model);
    } else {
      applyPendingHash();
    }
    if (SAMPLES.includes(h.sample) && h.sample !== state.photo?.sample) loadSample(h.sample);
    return;
  }
  // Checked against the catalogue once the engine has given it.
  if (model) state.selectedModel = model;
  return SAMPLES.includes(h.sample) ? h.sample : 'cat';
}

// Whether `name` is an entry of the model menu.
function isEntry(name) {
  return name === FILE_ENTRY || Boolean(catalogueEntry(name));
}

// Whether a link's (or the menu's) entry is the model now loaded.
function isLoaded(name) {
  const info = state.model;
  if (!info || !name) return false;
  return name === FILE_ENTRY ? info.from_file : !info.from_file && info.model === name;
}

// Layer, class and class names from the URL, once the model that has them is loaded.
function applyPendingHash() {
  const pending = state.pendingHash;
  if (!pending || !state.model) return;
  // A link to another model than the one shown waits for it (until the user picks another).
  if (pending.model && isEntry(pending.model) && !isLoaded(pending.model)) return;
  state.pendingHash = null;
  if (pending.labels && pending.labels !== state.model.labels.join('\n')) {
    applyLabels(pending.labels).catch((err) => {
      if (!isQuiet(err)) setError('model', `the link's class names do not fit this model: ${err.message}`);
    });
  }
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
  const choose = (id, value) => {
    const select = $(id);
    if (value === undefined || value === null) return;
    if (select.tagName !== 'SELECT' || [...select.options].some((o) => o.value === String(value))) select.value = String(value);
  };
  choose('#cam-method', pending.method);
  choose('#flt-mode', pending.mode);
  choose('#flt-count', pending.count);
  if (pending.first !== undefined) $('#flt-first').value = String(Math.min(pending.first, Math.max(0, filterChannels() - 1)));
  readControls();
  if (pending.cls >= 0) {
    if (pending.cls < state.model.classes) setCamClass(pending.cls, { quiet: true });
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
  let created;
  try {
    created = await compute.call('create', { backend: choice.backend });
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
      created = await compute.call('create', { backend: 'cpu' });
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
  await manifestReady;
  if (gen !== state.engineGen) return;
  useCatalogue(created.catalogue);
  state.engineReady = true;
  state.photoOnEngine = -1;
  const queued = state.queuedLoad;
  state.queuedLoad = null;
  if (queued) await loadModel(queued.source, queued.options);
  if (state.engineGen !== gen || state.modelEngineGen === gen) return;
  if (state.source) {
    await loadModel(state.source, { options: state.options, reload: true, keepSelection: true });
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
    setError('model', `The list of weights files could not be read (${err.message}), so bundled weights load without a checksum.`);
  }
  return state.manifest;
}

// The built-in networks, as the engine lists them: the model menu, the credits.
function useCatalogue(list) {
  if (state.catalogue || !Array.isArray(list)) return;
  state.catalogue = list;
  if (!isEntry(state.selectedModel)) state.selectedModel = defaultModelName();
  buildModelMenu();
  describeSelectedModel();
  buildCredits();
}

// Whether a built-in's weights come with the page (no file to ask for).
function isBundled(name) {
  return Boolean(state.manifest?.models?.[name]?.url || catalogueEntry(name)?.bundled);
}

function buildModelMenu() {
  const select = $('#model-select');
  const option = (value, text) => {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  };
  select.replaceChildren(
    ...state.catalogue.map((m) => option(m.name, `${m.title} (${isBundled(m.name) ? 'included' : 'your weights'})`)),
    option(FILE_ENTRY, fileEntryText()),
  );
  select.disabled = false;
  select.value = state.selectedModel;
}

// The menu's text for the user's model: what it is, once one is loaded.
function fileEntryText() {
  const info = state.model?.from_file ? state.model : state.supplied.get(FILE_ENTRY)?.info;
  return info ? `Your model: ${info.title}, ${sizeOf(info)}` : FILE_ENTRY_TEXT;
}

function updateFileEntry() {
  const option = $(`#model-select option[value="${FILE_ENTRY}"]`);
  if (option) option.textContent = fileEntryText();
}

// Model credits: each built-in's title (from the engine) and licence (from the manifest).
function buildCredits() {
  const list = $('#credits');
  for (const old of $$('#credits li.model-credit')) old.remove();
  const first = list.firstElementChild;
  for (const m of state.catalogue) {
    const licence = state.manifest?.models?.[m.name]?.licence;
    if (!licence) continue;
    const li = document.createElement('li');
    li.className = 'model-credit';
    const name = document.createElement('strong');
    name.textContent = m.title;
    li.append(name, `: ${licence.replace(/\.?$/, '.')}`);
    list.insertBefore(li, first);
  }
}

// How to load menu entry `name` without asking the user ({source, options}), or null.
function knownWeights(name) {
  if (!name) return null;
  const link = state.pendingHash;
  if (link?.weights && (link.model || FILE_ENTRY) === name) {
    const source = { id: `link:${link.weights}`, user: true, model: name === FILE_ENTRY ? undefined : name, url: link.weights };
    return { source, options: { preprocessing: link.prep || null } };
  }
  if (name !== FILE_ENTRY) {
    const entry = state.manifest?.models?.[name];
    const bundled = catalogueEntry(name)?.bundled;
    if (entry?.url || bundled) {
      const url = new URL(entry?.url || `weights/${bundled}`, document.baseURI).href;
      return { source: { id: `url:${url}`, url, sha256: entry?.sha256, size: entry?.bytes, user: false }, options: {} };
    }
  }
  const supplied = state.supplied.get(name);
  return supplied ? { source: supplied.source, options: supplied.options } : null;
}

function defaultModelName() {
  const models = state.manifest?.models || {};
  const names = (state.catalogue || []).map((m) => m.name);
  return names.find((m) => models[m]?.default && isBundled(m)) || names.find(isBundled) || names[0] || FILE_ENTRY;
}

async function loadInitialModel() {
  describeSelectedModel();
  const wanted = knownWeights(state.selectedModel);
  if (wanted) return loadModel(wanted.source, { options: wanted.options });
  // A link to a model whose file the user must give: ask, and show the default meanwhile.
  const fallback = knownWeights(defaultModelName());
  if (fallback) await loadModel(fallback.source, { options: fallback.options, keepSelection: true });
}

// The note, file form and URL box for the menu's entry.
function describeSelectedModel() {
  const name = state.selectedModel;
  if (!state.catalogue || !name) return;
  const isFile = name === FILE_ENTRY;
  const entry = isFile ? null : state.manifest?.models?.[name];
  const needsFile = isFile || !isBundled(name);
  $('#model-select').value = name;
  $('#weights-form').hidden = !needsFile;
  let note;
  if (isFile) {
    note =
      state.pendingHash?.model === FILE_ENTRY && !state.model?.from_file
        ? state.pendingHash.weights
          ? `This link opens a model from ${new URL(state.pendingHash.weights).host}: it is being downloaded (the server must allow CORS).`
          : 'This link was made with a model file of its own: drop the same file here to see the view it shows.'
        : 'An ONNX model (with its .onnx.data file, if it has one: give both together), a Keras 3 .keras file or a whole-model Keras .h5 (saved with model.save) opens with its own layers and input size. Weights for a built-in network open as that network.';
  } else {
    note = entry?.note || (needsFile ? `Choose or drop a weights file for ${entryTitle(name)}.` : '');
  }
  const licence = entry?.licence && !isFile ? ` Licence: ${entry.licence}.` : '';
  $('#model-note').textContent = `${note}${licence}`.replace(/\.\./g, '.').trim();
  $('#weights-input-label').textContent = isFile ? `Model file (.onnx, .keras, .h5, .pth, .safetensors)` : `Weights for ${entryTitle(name)} (.h5, .pth, .safetensors)`;
  $('#weights-url').placeholder = isFile ? 'https://…/model.onnx' : 'https://…/weights.safetensors';
  let remembered = null;
  try {
    remembered = localStorage.getItem(`convlens.url.${name}`);
  } catch {
    remembered = null;
  }
  if (needsFile && remembered && !$('#weights-url').value) $('#weights-url').value = remembered;
}

function chooseModel(name) {
  if (!isEntry(name)) return;
  state.selectedModel = name;
  if (state.pendingHash?.model && state.pendingHash.model !== name) state.pendingHash = null;
  setError('model', '');
  describeSelectedModel();
  writeHash();
  if (isLoaded(name)) {
    showModelStatus();
    return;
  }
  const known = knownWeights(name);
  if (known) loadModel(known.source, { options: known.options });
  else showModelStatus();
}

const megabytes = (n) => (n < 1e6 ? `${Math.max(1, Math.round(n / 1e3))} kB` : `${(n / 1e6).toFixed(1)} MB`);

function showModelProgress(p) {
  const wrap = $('#model-progress-wrap');
  const bar = $('#model-progress');
  const text = $('#model-progress-text');
  wrap.hidden = false;
  if ((p.phase === 'download' || p.phase === 'read') && p.loaded !== undefined) {
    const verb = p.phase === 'download' ? 'Downloading' : 'Reading';
    if (p.total) {
      bar.max = p.total;
      bar.value = p.loaded;
      text.textContent = `${verb} the file… ${megabytes(p.loaded)} of ${megabytes(p.total)}`;
    } else {
      bar.removeAttribute('value');
      text.textContent = `${verb} the file… ${megabytes(p.loaded)}`;
    }
    return;
  }
  bar.removeAttribute('value');
  text.textContent =
    {
      cache: 'Reading the weights from the browser cache…',
      verify: 'Checking the download (SHA-256)…',
      read: 'Reading the file…',
      load: `Building the network${p.total ? ` from ${megabytes(p.total)}` : ''} (large files take a while)…`,
    }[p.phase] || 'Loading…';
}

// What the model card says about the loaded model (and the menu's entry, when it differs).
function showModelStatus(extra = '') {
  const info = state.model;
  const status = $('#model-status');
  if (!info) {
    status.textContent = '';
    return;
  }
  const src = state.source || {};
  const from = src.blob ? `, from ${src.name}` : src.user && src.url ? `, from ${new URL(src.url).pathname.split('/').pop() || src.url}` : '';
  const proof = state.loadedProof || '';
  let text = `${modelTitle(info)} — ${sizeOf(info)} input, ${info.classes} classes, ${info.layers.length} layers; ${info.origin}${from}${proof}.`;
  if (extra) text += ` ${extra}`;
  const selected = state.selectedModel;
  if (selected && !isLoaded(selected)) {
    const wanted = selected === FILE_ENTRY ? 'you load your model file' : `weights for ${entryTitle(selected)} are loaded`;
    text += ` Showing it until ${wanted}.`;
  }
  status.textContent = text;
}

// Loads a model file into the engine: the bundled weights, a file or URL the user gave, or the
// same bytes again with other options. On failure the engine keeps the model it had.
async function loadModel(source, { options = {}, reload = false, keepSelection = false } = {}) {
  if (!state.engineReady) {
    // The engine is (re)starting: it loads this once it is up.
    state.queuedLoad = { source, options: { options, keepSelection } };
    return;
  }
  const gen = ++state.loadGen;
  const engineGen = state.engineGen;
  setError('model', '');
  showModelProgress(source.blob ? { phase: 'read', loaded: 0, total: source.blob.size } : { phase: 'cache' });
  const t0 = performance.now();
  const loadOptions = {};
  if (source.model) loadOptions.model = source.model;
  if (options.preprocessing) loadOptions.preprocessing = options.preprocessing;
  if (options.labels) loadOptions.labels = options.labels;
  try {
    const args = {
      sourceId: source.id,
      keep: Boolean(source.user),
      url: source.url,
      sha256: source.sha256,
      size: source.size,
      blob: source.blob,
      companion: source.companion,
      options: loadOptions,
      fallback: Boolean(source.user && source.model),
    };
    const out = await compute.call('load', args, { slot: 'load', onProgress: showModelProgress });
    if (gen !== state.loadGen || engineGen !== state.engineGen) return;
    const info = out.info;
    const previous = state.model;
    const asked = source.model;
    // Read again later (another preprocessing, a new engine) as what it turned out to be.
    if (out.opened === 'recognised') delete source.model;
    const sameSource = state.source?.id === source.id;
    state.model = info;
    state.modelEngineGen = engineGen;
    state.source = source;
    state.options = { preprocessing: options.preprocessing || null, labels: options.labels || null };
    const entry = entryOf(info);
    const earlier = state.supplied.get(entry);
    if (!options.labels) state.ownLabels = info.labels;
    else if (!sameSource) state.ownLabels = earlier?.source === source ? earlier.ownLabels : null;
    if (source.user) state.supplied.set(entry, { source, options: state.options, info, ownLabels: state.ownLabels });
    if (source.user && source.url) {
      try {
        localStorage.setItem(`convlens.url.${entry}`, source.url);
      } catch {
        // Only a convenience.
      }
    }
    state.modelGen++;
    state.rendered = {};
    if (!keepSelection || isLoaded(state.selectedModel)) state.selectedModel = entry;
    updateFileEntry();
    describeSelectedModel();
    state.loadedProof = out.verified ? ', checksum verified' : out.cached ? ', from the browser cache' : source.url && !source.sha256 && !source.user ? ', not verified (no checksum known)' : '';
    const recognised = out.opened === 'recognised' ? `The file does not hold ${entryTitle(asked)}, so it was opened as what it holds.` : '';
    showModelStatus(`${recognised} Loaded in ${seconds(performance.now() - t0)}.`.trim());
    const same = sameLayers(previous, info);
    if (!(reload && same)) rebuildModelControls(same);
    else updateModelOptions();
    applyPendingHash();
    writeHash();
    refresh();
  } catch (err) {
    if (isQuiet(err) || gen !== state.loadGen) return;
    handleFatal(err);
    show($('#model-error'), sentence(reload ? `could not read the model again: ${err.message}` : err));
    updateModelOptions(); // a refused preprocessing goes back to the model's
  } finally {
    if (gen === state.loadGen) $('#model-progress-wrap').hidden = true;
  }
}

// Whether two descriptions have the same layers (so the chosen layers and class still apply).
function sameLayers(a, b) {
  if (!a || !b || a.layers.length !== b.layers.length || a.classes !== b.classes) return false;
  return a.layers.every((l, i) => l.name === b.layers[i].name && l.shape.join() === b.layers[i].shape.join());
}

// A model file the user gave (picked, dropped, or by URL). It is read as the menu's built-in when
// that one has no weights of its own; otherwise the engine recognises it by its content.
// Several files given at once: the model, and beside it an ONNX model's external weights (the
// file its name ends in .data, or any second file).
function splitFiles(files) {
  const list = [...(files || [])];
  const isData = (f) => /\.(data|bin)$/i.test(f.name) && list.length > 1;
  const file = list.find((f) => /\.onnx$/i.test(f.name)) || list.find((f) => !isData(f)) || list[0];
  return { file, companion: list.find((f) => f !== file) };
}

function loadUserFile({ file, url, companion }) {
  if (!file && !url) return;
  const selected = state.selectedModel;
  const asModel = selected && selected !== FILE_ENTRY && catalogueEntry(selected) && !isBundled(selected) ? selected : undefined;
  const id = `user:${++state.sourceCount}`;
  const source = file ? { id, user: true, model: asModel, blob: file, companion, name: file.name || 'the dropped file' } : { id, user: true, model: asModel, url };
  loadModel(source, { options: {} });
}

// Reads the same file again with another preprocessing.
function changePreprocessing(value) {
  if (!state.source || !state.model || value === state.model.preprocessing) return;
  loadModel(state.source, { options: { ...state.options, preprocessing: value }, keepSelection: true });
}

// The preprocessing menu and the class-name summary for the loaded model.
function updateModelOptions() {
  const info = state.model;
  $('#model-options').hidden = !info;
  if (!info) return;
  const select = $('#prep-select');
  const canChoose = info.from_file || Boolean(state.source?.user);
  $('#prep-field').hidden = !canChoose;
  for (const o of $$('#prep-select option.extra')) if (o.value !== info.preprocessing) o.remove();
  if (![...select.options].some((o) => o.value === info.preprocessing)) {
    const o = document.createElement('option');
    o.value = info.preprocessing;
    o.className = 'extra';
    o.textContent = `${PREPROCESSING_NAMES[info.preprocessing] || info.preprocessing} (the file's own)`;
    select.append(o);
  }
  select.value = info.preprocessing;
  const n = info.classes;
  const shown = info.labels.slice(0, 3).join(', ');
  $('#labels-summary').textContent = `${n} class${n === 1 ? '' : 'es'}: ${shown}${n > 3 ? ', …' : ''}${state.options.labels ? ' (yours)' : ''}`;
  $('#labels-summary').title = info.labels.slice(0, 40).join('\n') + (n > 40 ? '\n…' : '');
  const joined = state.options.labels?.join('\n') || '';
  const note = $('#labels-note');
  note.textContent = joined.length > MAX_LABELS_IN_LINK ? `Your class names are too long to keep in a link (${joined.length} characters; at most ${MAX_LABELS_IN_LINK}): a shared link shows the model's own names.` : '';
  note.hidden = !note.textContent;
}

// The user's class names as they go in a link, when short enough.
function labelsForLink() {
  const joined = state.options.labels?.join('\n');
  return joined && joined.length <= MAX_LABELS_IN_LINK ? joined : null;
}

// Replaces the class names (one per line; `null`: the model's own). Rejects with a message.
async function applyLabels(text) {
  const info = state.model;
  if (!info || !state.engineReady) throw new Error('the model is not loaded yet');
  const own = text === null;
  if (own && !state.ownLabels) {
    // The model's own names are not known here: read the file again without the user's.
    await loadModel(state.source, { options: { ...state.options, labels: null }, keepSelection: true });
    return;
  }
  const names = own ? state.ownLabels : text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (names.length !== info.classes) {
    throw new Error(`give exactly ${info.classes} class names, one per line, in the order of the model's outputs (there are ${names.length})`);
  }
  const modelGen = state.modelGen;
  const description = await compute.call('setLabels', { text: names.join('\n') }, { slot: 'labels' });
  if (modelGen !== state.modelGen) return;
  state.model = description;
  state.options = { ...state.options, labels: own ? null : names };
  const supplied = state.supplied.get(entryOf(description));
  if (supplied && supplied.source === state.source) supplied.options = state.options;
  if (supplied && supplied.source === state.source) supplied.info = description;
  state.labelsGen++;
  fillClassList();
  if (state.gradcam.cls >= 0) setCamClass(state.gradcam.cls, { quiet: true });
  updateModelOptions();
  writeHash();
  refresh();
}

// The class-names dialog.
function openLabelsDialog() {
  const info = state.model;
  if (!info) return;
  const dialog = $('#labels-dialog');
  $('#labels-text').value = info.labels.join('\n');
  $('#labels-hint').textContent = `One name per line, in the order of the model's outputs: ${info.classes} names for ${modelTitle(info)}.`;
  show($('#labels-error'), '');
  $('#labels-reset').disabled = !state.options.labels;
  countLabels();
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
  const text = $('#labels-text');
  text.focus();
  text.setSelectionRange(0, 0);
  text.scrollTop = 0;
}

function closeLabelsDialog() {
  const dialog = $('#labels-dialog');
  if (typeof dialog.close === 'function') dialog.close();
  else dialog.removeAttribute('open');
}

function countLabels() {
  const n = $('#labels-text').value.split('\n').filter((l) => l.trim()).length;
  const want = state.model?.classes ?? 0;
  $('#labels-count').textContent = `${n} of ${want} name${want === 1 ? '' : 's'}${n === want ? '.' : n > want ? ': too many.' : '.'}`;
}

async function submitLabels(text) {
  show($('#labels-error'), '');
  $('#labels-apply').disabled = true;
  try {
    await applyLabels(text);
    closeLabelsDialog();
  } catch (err) {
    if (!isQuiet(err)) show($('#labels-error'), sentence(err));
  } finally {
    $('#labels-apply').disabled = false;
  }
}

// Layer pickers, class list and defaults for the loaded model, all from its description (keeping
// the choices when the new model has the same layers). Grad-CAM and activations: every layer with
// a spatial map; filter patterns: the conv layers with one (and the model's default for it).
function rebuildModelControls(sameModel = false) {
  const info = state.model;
  const mapped = info.layers.filter(hasMap);
  const convs = mapped.filter((l) => l.kind === 'conv' || l.name === info.default_filter_layer);
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
  fill($('#cam-layer'), mapped, info.default_cam_layer);
  fill($('#act-layer'), mapped, (mapped.find((l) => l.kind === 'conv') || mapped[0])?.name);
  fill($('#flt-layer'), convs, info.default_filter_layer);
  fillClassList();
  updateModelOptions();
  const n = info.classes;
  $('#pred-hint').textContent = `${n <= 5 ? (n === 2 ? 'Both classes' : `All ${n} classes`) : 'The five most likely classes'}. Choose one to see its evidence with Grad-CAM.`;

  if (!sameModel) {
    state.gradcam.cls = -1;
    $('#cam-class').value = '';
    state.act.channel = 0;
    $('#act-channel').value = '0';
    $('#predictions').replaceChildren();
    $('#predictions').dataset.state = 'idle';
    setStatus('predict', '');
  }
  for (const id of ['gradcam-canvas', 'activations-canvas', 'channel-canvas', 'filters-canvas']) {
    const canvas = document.getElementById(id);
    canvas.width = 0;
    canvas.height = 0;
    setCanvasState(canvas, 'idle');
  }
  $('#sparsity-chart').replaceChildren();
  for (const id of ['gradcam-caption', 'activations-caption', 'channel-caption', 'filters-caption']) $(`#${id}`).textContent = '';
  for (const name of ['gradcam', 'activations', 'filters', 'stats', 'cam-class', 'predict']) setError(name, '');
  setStatus('filters', 'Choose a layer and press Start.');
  $('#flt-progress').value = 0;
  readControls();
  if (sameModel && state.gradcam.cls >= 0) setCamClass(state.gradcam.cls, { quiet: true });
}

// The class box's suggestions: "name (index)".
function fillClassList() {
  $('#class-list').replaceChildren(
    ...state.model.labels.map((label, i) => {
      const option = document.createElement('option');
      option.value = `${label} (${i})`;
      return option;
    }),
  );
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
function takeFile(file, companion) {
  if (!file) return;
  if (MODEL_EXTENSIONS.test(file.name) && !file.type.startsWith('image/')) {
    setError('photo', '');
    $('#model-card').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    loadUserFile({ file, companion });
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
    predict: `${base}|${state.labelsGen}`,
    gradcam: `${base}|${state.labelsGen}|${g.layer}|${g.cls}|${g.method}|${g.colormap}`,
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
      list.dataset.model = state.model.model;
      list.dataset.fromFile = String(state.model.from_file);
      list.dataset.state = 'ready';
      setStatus('predict', `${state.photo.name}, ${modelTitle(state.model)}, ${seconds(performance.now() - t0)}`);
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
      canvas.dataset.model = state.model.model;
      canvas.dataset.fromFile = String(state.model.from_file);
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
      canvas.dataset.model = state.model.model;
      canvas.dataset.fromFile = String(state.model.from_file);
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
    const files = [...e.dataTransfer.files];
    if (!files.length) return;
    // A file dropped on the model card is a model; elsewhere a photo, unless its name says model
    // (several files at once: a model and its external weights).
    const { file, companion } = splitFiles(files);
    if (modelCard.contains(e.target)) loadUserFile({ file, companion });
    else takeFile(file, companion);
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
    loadUserFile(splitFiles(e.target.files));
    e.target.value = '';
  });
  $('#prep-select').addEventListener('change', (e) => changePreprocessing(e.target.value));
  $('#labels-open').addEventListener('click', openLabelsDialog);
  $('#labels-text').addEventListener('input', countLabels);
  $('#labels-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submitLabels($('#labels-text').value);
  });
  $('#labels-reset').addEventListener('click', () => submitLabels(null));
  $('#labels-cancel').addEventListener('click', closeLabelsDialog);
  $('#weights-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('#weights-url').value.trim();
    let url;
    try {
      url = new URL(text, document.baseURI);
      if (!/^https?:$/.test(url.protocol)) throw new Error();
    } catch {
      setError('model', 'Enter the web address (http:// or https://) of a model or weights file.');
      return;
    }
    loadUserFile({ url: url.href });
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

// The service worker (www/sw.js) keeps a copy of what the page loads, so it opens offline after
// the first visit. Registration failing (file://, private modes) changes nothing else.
function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || !/^https?:$/.test(location.protocol)) return;
  navigator.serviceWorker.register('./sw.js').catch(() => {});
}

function boot() {
  registerServiceWorker();
  wire();
  readControls();
  const sample = applyHash(true);
  manifestReady = loadManifest();
  loadSample(sample);
  startEngine().catch((err) => showBackend('', `The compute engine could not start. ${messageOf(err)}`));
}

boot();
