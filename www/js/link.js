// The URL hash (#model=…&view=…&layer=…&class=…&labels=…&sample=…&backend=…&weights=…&prep=…
// &method=…&eigen=1&aug=1&first=…&count=…&mode=…&variants=…&objective=…) mirrors what is shown, so a link reproduces the view:
// writeHash() after every change, applyHash() at start and when the user edits the address.

import { $, setError } from './dom.js';
import { isQuiet } from './compute.js';
import { state } from './state.js';
import { isEntry, isLoaded } from './catalogue.js';
import { startEngine } from './engine.js';
import { linkedBackend } from './backend-choice.js';
import { chooseModel } from './models.js';
import { applyLabels } from './labels.js';
import { loadSample, SAMPLES } from './photo.js';
import { readControls, selectView, VIEWS } from './controls.js';
import { refresh } from './render.js';
import { setCamClass } from './gradcam.js';
import { filterChannels } from './filters.js';

// Class names longer than this (joined, one per line) stay out of the URL.
export const MAX_LABELS_IN_LINK = 300;

function readHash() {
  return Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, '')));
}

function currentLayer() {
  if (state.view === 'gradcam') return state.gradcam.layer;
  if (state.view === 'activations') return state.act.layer;
  return state.filters.layer;
}

export function writeHash() {
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
  if (pending ? pending.eigen : state.gradcam.eigenSmooth) params.set('eigen', '1');
  if (pending ? pending.aug : state.gradcam.augSmooth) params.set('aug', '1');
  if (state.view === 'filters' || pending?.first !== undefined) {
    const f = state.filters;
    params.set('first', String(pending?.first ?? f.first));
    params.set('count', String(pending?.count ?? f.count));
    const mode = pending?.mode || f.mode;
    if (mode && mode !== 'classic') params.set('mode', mode);
    const variants = pending?.variants || f.variants;
    if (variants > 1) params.set('variants', String(variants));
    const objective = pending?.objective || f.objective;
    if (objective && objective !== 'channel') params.set('objective', objective);
  }
  const hash = `#${params}`;
  if (hash !== location.hash) history.replaceState(null, '', hash);
}

// Applies a hash: at start, or when the user edits the address.
export function applyHash(initial) {
  const h = readHash();
  const backend = linkedBackend();
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
  state.pendingHash = { view: state.view, layer: h.layer || null, cls, model, labels, weights, prep: h.prep || undefined, method: h.method, eigen: h.eigen === '1', aug: h.aug === '1', first, count, mode: h.mode, variants: Number(h.variants) || undefined, objective: h.objective };

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

// Layer, class and class names from the URL, once the model that has them is loaded.
export function applyPendingHash() {
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
  $('#cam-eigen').checked = Boolean(pending.eigen);
  $('#cam-aug').checked = Boolean(pending.aug);
  choose('#flt-mode', pending.mode);
  choose('#flt-variants', pending.variants);
  choose('#flt-objective', pending.objective);
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

// The user's class names as they go in a link, when short enough.
function labelsForLink() {
  const joined = state.options.labels?.join('\n');
  return joined && joined.length <= MAX_LABELS_IN_LINK ? joined : null;
}

// The "Copy link" button, and an address edited by hand.
export function wireLink() {
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
}
