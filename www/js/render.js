// When the views are computed: each result has a key (engine, model, photo and its own
// controls); refresh() asks the worker for what is stale and visible, once per key.

import { setError } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { handleFatal } from './engine.js';
import { updatePredictions } from './predictions.js';
import { updateGradcam } from './gradcam.js';
import { updateActivations, updateStats } from './activations.js';

// What each result depends on: a result whose key changed is stale.
export function keys() {
  const base = `${state.engineGen}|${state.modelGen}|${state.photoGen}`;
  const g = state.gradcam;
  const subject = camSubject();
  const a = state.act;
  return {
    predict: `${base}|${state.labelsGen}`,
    // Not the colormap or opacity: the overlay is redrawn from the map the worker keeps.
    gradcam: `${subject}|${g.eigenSmooth}${g.augSmooth ? '+aug' : ''}|${g.method}`,
    activations: `${base}|${a.layer}|${a.colormap}`,
    channel: `${base}|${a.layer}|${a.channel}|${a.colormap}`,
    stats: base,
  };
}

// What a Grad-CAM map is of (engine, model, photo, labels, layer, class), whatever its method and
// smoothing: maps of one subject compare side by side.
export function camSubject() {
  const g = state.gradcam;
  return `${state.engineGen}|${state.modelGen}|${state.photoGen}|${state.labelsGen}|${g.layer}|${g.cls}`;
}

// Runs `task` unless its result for `key` is already shown or coming. `task` returns false if it
// found its result stale.
export async function once(name, key, task) {
  if (state.rendered[name] === key || state.inflight[name] === key) return;
  state.inflight[name] = key;
  try {
    await task(() => keys()[name] === key);
    if (keys()[name] === key) state.rendered[name] = key;
  } finally {
    if (state.inflight[name] === key) state.inflight[name] = null;
  }
}

// Sends a new photo to the engine, then updates the predictions and the visible view.
export function refresh() {
  if (!refreshPredictions()) return;
  if (state.view === 'gradcam') updateGradcam();
  if (state.view === 'activations') {
    updateActivations();
    updateStats();
  }
}

// The photo to the engine and the predictions, alone: a new model asks for them before it builds
// its controls, so the worker computes while the page draws. False when there is nothing to show.
export function refreshPredictions() {
  if (!state.engineReady || !state.model || !state.photo) return false;
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
  return true;
}

// A status line's note while the worker is busy with filter patterns (requests run in order).
export const waitNote = () => (state.filters.running ? ' (after the filter patterns finish)' : '');
