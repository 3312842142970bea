// Model loading: the weights manifest, the model menu and credits, the bundled weights, a file
// the user picks or drops, weights from a web address, and the preprocessing menu.

import { megabytes, seconds, sentence } from './format.js';
import { $, $$, markOnce, setError, show } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { bigDownload, catalogueEntry, entryOf, entryTitle, FILE_ENTRY, isBundled, isEntry, isLoaded, modelTitle, sizeOf } from './catalogue.js';
import { applyPendingHash, MAX_LABELS_IN_LINK, writeHash } from './link.js';
import { handleFatal } from './engine.js';
import { rebuildModelControls } from './controls.js';
import { refresh, refreshPredictions } from './render.js';

// The menu's text for the user's model, before one is loaded.
const FILE_ENTRY_TEXT = 'Your model (.onnx, .keras, .h5, .pth, .safetensors)';

// Names for the preprocessing an engine may report that the menu does not offer.
const PREPROCESSING_NAMES = { centered127: '(x − 127) ÷ 128', raw: 'Raw pixels, 0–255', unit: '0 to 1 (÷ 255)', tf: '−1 to 1', torch: 'ImageNet mean and std', caffe: 'Caffe' };

let manifestRead = null;

// Reads weights/manifest.json once: the page starts the read, the engine waits for it.
export function loadManifest() {
  manifestRead ||= readManifest();
  return manifestRead;
}

async function readManifest() {
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
export function useCatalogue(list) {
  if (state.catalogue || !Array.isArray(list)) return;
  state.catalogue = list;
  if (!isEntry(state.selectedModel)) state.selectedModel = defaultModelName();
  buildModelMenu();
  describeSelectedModel();
  buildCredits();
}

function buildModelMenu() {
  const select = $('#model-select');
  const option = (value, text) => {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  };
  const kind = (m) => {
    const download = bigDownload(m.name);
    if (download) return `${download.dataset ? `${download.dataset}, ` : ''}${megabytes(download.bytes)} download`;
    return isBundled(m.name) ? 'included' : 'your weights';
  };
  select.replaceChildren(
    ...state.catalogue.map((m) => option(m.name, `${m.title} (${kind(m)})`)),
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
    if ((entry?.url && (!bigDownload(name) || downloadAgreed(name))) || bundled) return { source: manifestSource(name), options: {} };
  }
  const supplied = state.supplied.get(name);
  return supplied ? { source: supplied.source, options: supplied.options } : null;
}

// A built-in's weights as the manifest (or the bundle) gives them.
function manifestSource(name) {
  const entry = state.manifest?.models?.[name];
  const url = new URL(entry?.url || `weights/${catalogueEntry(name)?.bundled}`, document.baseURI).href;
  const compactAs = bigDownload(name) ? name : undefined;
  return { id: `url:${url}`, url, sha256: entry?.sha256, size: entry?.bytes, compactAs, user: false };
}

// A big download the user agreed to once is in the browser's cache: later visits load it at once
// (and download it again, with the progress bar, only if the browser evicted it).
const agreedKey = (name) => `convlens.download.${name}`;
function downloadAgreed(name) {
  try {
    return localStorage.getItem(agreedKey(name)) === bigDownload(name)?.url;
  } catch {
    return false;
  }
}

// Starts the big download of `name`'s weights the user asked for.
function startDownload(name) {
  if (!bigDownload(name)) return;
  loadModel(manifestSource(name), { options: {} });
}

function defaultModelName() {
  const models = state.manifest?.models || {};
  const names = (state.catalogue || []).map((m) => m.name);
  return names.find((m) => models[m]?.default && isBundled(m)) || names.find(isBundled) || names[0] || FILE_ENTRY;
}

// While the engine starts: the weights the page will load first, read from the browser's cache
// meanwhile (the linked model, else the manifest's default; not a big download, nor a link's file).
export function prefetchInitialModel() {
  const models = state.manifest?.models || {};
  const name = state.selectedModel || Object.keys(models).find((m) => models[m]?.default);
  if (!models[name]?.url || bigDownload(name) || state.pendingHash?.weights) return;
  const { url, sha256 } = manifestSource(name);
  compute.prefetch({ url, sha256 });
}

export async function loadInitialModel() {
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
  const download = isFile ? null : bigDownload(name);
  $('#download-box').hidden = !download || isLoaded(name);
  if (download) {
    const host = new URL(download.url, document.baseURI).host;
    $('#download-text').textContent =
      `${entryTitle(name)}'s ${download.dataset || ''} weights are a ${megabytes(download.bytes)} download from ${host}` +
      ` (${download.source || 'a public copy'}). Your browser keeps them for your next visit, in half the space (16-bit).`;
    $('#download-start').textContent = `Download ${megabytes(download.bytes)}`;
  }
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
    if (download) note = `Or use your own weights file for ${entryTitle(name)}: ${note.charAt(0).toLowerCase()}${note.slice(1)}`;
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

export function chooseModel(name) {
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

function showModelProgress(p) {
  const wrap = $('#model-progress-wrap');
  const bar = $('#model-progress');
  const text = $('#model-progress-text');
  wrap.hidden = false;
  $('#model-cancel').hidden = p.phase !== 'download';
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
      compact: `Converting ${p.total ? megabytes(p.total) : 'the weights'} to 16-bit to keep half of it…`,
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
export async function loadModel(source, { options = {}, reload = false, keepSelection = false } = {}) {
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
      compactAs: source.compactAs,
      blob: source.blob,
      companion: source.companion,
      options: loadOptions,
      fallback: Boolean(source.user && source.model),
    };
    const out = await compute.call('load', args, { slot: 'load', onProgress: showModelProgress });
    if (gen !== state.loadGen || engineGen !== state.engineGen) return;
    markOnce('model');
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
    try {
      if (source.user && source.url) localStorage.setItem(`convlens.url.${entry}`, source.url);
      // Not kept (no room in the cache): the next visit asks again rather than download unasked.
      if (source.compactAs && out.kept !== false) localStorage.setItem(agreedKey(source.compactAs), source.url);
    } catch {
      // Only a convenience.
    }
    state.modelGen++;
    state.rendered = {};
    if (!keepSelection || isLoaded(state.selectedModel)) state.selectedModel = entry;
    refreshPredictions();
    updateFileEntry();
    describeSelectedModel();
    const compacted = (out.compacted ? ', kept as 16-bit' : '') + (out.kept === false && source.compactAs ? ' (the browser gave no room to keep it for next time)' : '');
    state.loadedProof = (out.verified ? ', checksum verified' : out.cached ? ', from the browser cache' : source.url && !source.sha256 && !source.user ? ', not verified (no checksum known)' : '') + compacted;
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
    if (err.code === 'cancelled') {
      showModelStatus('The download was cancelled.');
      return;
    }
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
export function splitFiles(files) {
  const list = [...(files || [])];
  const isData = (f) => /\.(data|bin)$/i.test(f.name) && list.length > 1;
  const file = list.find((f) => /\.onnx$/i.test(f.name)) || list.find((f) => !isData(f)) || list[0];
  return { file, companion: list.find((f) => f !== file) };
}

export function loadUserFile({ file, url, companion }) {
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
export function updateModelOptions() {
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

// The model card: menu, file picker, preprocessing, web address.
export function wireModelCard() {
  $('#model-select').addEventListener('change', (e) => chooseModel(e.target.value));
  $('#weights-input').addEventListener('change', (e) => {
    loadUserFile(splitFiles(e.target.files));
    e.target.value = '';
  });
  $('#prep-select').addEventListener('change', (e) => changePreprocessing(e.target.value));
  $('#download-start').addEventListener('click', () => startDownload(state.selectedModel));
  $('#model-cancel').addEventListener('click', () => compute.cancel());
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
}
