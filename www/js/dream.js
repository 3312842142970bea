// DeepDream in the activations view: the photo, changed by gradient ascent to drive the layer
// shown above it harder (src/viz/dream.rs), with progress.

import { seconds } from './format.js';
import { $, drawPicture, enlarge, setCanvasState, setError, setStatus } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { handleFatal } from './engine.js';

const STEPS = 20;

async function dream() {
  const layer = state.act.layer;
  if (!layer || !state.photo || !state.engineReady) return;
  const canvas = $('#dream-canvas');
  $('#dream-start').disabled = true;
  setError('dream', '');
  setCanvasState(canvas, 'busy');
  setStatus('dream', `Dreaming at ${layer}…`, true);
  const t0 = performance.now();
  try {
    const picture = await compute.call('dream', { layer, steps: STEPS }, {
      slot: 'dream',
      onProgress: (p) => setStatus('dream', `Step ${p.step} of ${p.steps}, mean square activation ${p.value.toPrecision(3)}`, true),
    });
    drawPicture(canvas, picture);
    enlarge(canvas);
    canvas.dataset.layer = layer;
    canvas.dataset.photo = state.photo.name;
    setCanvasState(canvas, 'ready');
    setStatus('dream', `${STEPS} steps at ${layer} in ${seconds(performance.now() - t0)}.`);
  } catch (err) {
    if (isQuiet(err)) return;
    handleFatal(err);
    setCanvasState(canvas, 'error');
    setStatus('dream', '');
    setError('dream', err);
  } finally {
    $('#dream-start').disabled = false;
  }
}

export function wireDream() {
  $('#dream-start').addEventListener('click', dream);
}
