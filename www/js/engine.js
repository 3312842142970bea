// The compute engine's lifecycle: which backend (WebGPU or the CPU) and why, starting and
// restarting the worker, and a fresh engine after a trap in the wasm.

import { messageOf } from './format.js';
import { $, markOnce } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { chooseBackend } from './backend-choice.js';
import { state } from './state.js';
import { writeHash } from './link.js';
import { loadInitialModel, loadManifest, loadModel, prefetchInitialModel, useCatalogue } from './models.js';

// The notice of which backend computes and why; `detail` (a raw error) folds away.
export function showBackend(backend, text, detail = '') {
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

// "4 threads"; one thread says why it is one (the page is not cross-origin isolated).
function threadsText(threads) {
  if (threads > 1) return `${threads} threads`;
  return self.crossOriginIsolated ? 'one thread' : 'one thread — the page is not cross-origin isolated';
}

// (Re)starts the worker and its engine on the preferred backend, then reloads the current model
// and photo.
export async function startEngine() {
  const gen = ++state.engineGen;
  document.documentElement.dataset.engineStarts = String(gen); // lets tests see a restart
  state.engineReady = false;
  state.inflight = {};
  compute.stop();
  showBackend('', 'Starting the compute engine…');
  const choice = await chooseBackend(state.backendPref);
  if (gen !== state.engineGen) return;
  compute.start(choice.backend);
  // The list of weights, and the first model's bytes from the cache, while the engine starts.
  const manifest = loadManifest().then(() => gen === state.engineGen && prefetchInitialModel());
  let notice;
  let detail = '';
  let created;
  try {
    created = await compute.call('create', { backend: choice.backend });
    notice =
      choice.backend === 'webgpu'
        ? `Computing on the GPU — ${choice.why === 'as chosen' ? 'WebGPU, as chosen' : choice.why}.`
        : `Computing on the CPU (WebAssembly, ${threadsText(created.threads)})${choice.why === 'as chosen' ? ', as chosen' : `: ${choice.why}`}.`;
    state.backend = choice.backend;
  } catch (err) {
    if (gen !== state.engineGen || isQuiet(err)) return;
    if (choice.backend !== 'webgpu' || err.fatal) {
      showBackend('', 'The compute engine could not start.', messageOf(err));
      return;
    }
    try {
      compute.stop();
      compute.start('cpu');
      created = await compute.call('create', { backend: 'cpu' });
    } catch (err2) {
      if (gen !== state.engineGen || isQuiet(err2)) return;
      showBackend('', 'The compute engine could not start.', messageOf(err2));
      return;
    }
    state.backend = 'cpu';
    notice = `Computing on the CPU (WebAssembly, ${threadsText(created.threads)}): WebGPU could not start here.`;
    detail = messageOf(err);
  }
  if (gen !== state.engineGen) return;
  markOnce('engine');
  document.documentElement.dataset.threads = String(created.threads);
  showBackend(state.backend, notice, detail);
  await manifest;
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
export function handleFatal(err) {
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

// The "Compute on" menu.
export function wireBackendSelect() {
  $('#backend-select').addEventListener('change', (e) => {
    state.backendPref = e.target.value;
    writeHash();
    startEngine();
  });
}
