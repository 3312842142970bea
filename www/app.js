// ConvLens page: a thin skin over the wasm core, which runs in ./worker.js. The page reads the
// photo, weights and controls, asks the worker for pictures and numbers, and draws them. It adds no
// math of its own, and no knowledge of any particular network: names, titles, layers, input sizes
// and default layers all come from the engine (catalogue() and each model's description). The URL
// hash mirrors what is shown, so a link reproduces the view.
//
// This file is the entry: it wires the modules in ./js/ (one concern each) to the page and starts.

import { messageOf } from './js/format.js';
import { state } from './js/state.js';
import { showBackend, startEngine, wireBackendSelect } from './js/engine.js';
import { applyHash, wireLink } from './js/link.js';
import { loadManifest, wireModelCard } from './js/models.js';
import { wireLabelsDialog } from './js/labels.js';
import { loadSample, wirePhotoInput } from './js/photo.js';
import { readControls, wireViewControls } from './js/controls.js';
import { wireGradcamControls } from './js/gradcam.js';
import { wireFaithfulness } from './js/faithfulness.js';
import { wireGuided } from './js/guided.js';
import { wireDream } from './js/dream.js';
import { wireActivationControls } from './js/activations.js';
import { wireFilterControls } from './js/filters.js';

// The service worker (www/sw.js) keeps a copy of what the page loads, so it opens offline after
// the first visit. Registration failing (file://, private modes) changes nothing else.
function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || !/^https?:$/.test(location.protocol)) return;
  navigator.serviceWorker.register('./sw.js').catch(() => {});
}

// Last resort: every promise is caught where it fails, but never let one escape silently.
function reportStrayRejections() {
  window.addEventListener('unhandledrejection', (e) => {
    e.preventDefault();
    showBackend(state.backend, 'Something went wrong that the page did not expect; if a view stops updating, reload the page.', messageOf(e.reason));
  });
}

function boot() {
  registerServiceWorker();
  wirePhotoInput();
  wireBackendSelect();
  wireModelCard();
  wireLabelsDialog();
  wireViewControls();
  wireGradcamControls();
  wireFaithfulness();
  wireGuided();
  wireDream();
  wireActivationControls();
  wireFilterControls();
  wireLink();
  reportStrayRejections();
  readControls();
  const sample = applyHash(true);
  loadManifest();
  loadSample(sample);
  startEngine().catch((err) => showBackend('', `The compute engine could not start. ${messageOf(err)}`));
}

boot();
