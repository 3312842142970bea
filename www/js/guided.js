// Guided Grad-CAM on request: guided backpropagation of the map's class × the map shown,
// computed by the worker for the map it keeps (src/viz/guided.rs). The picture is dropped as soon
// as the map changes (another photo, class, layer, method or model).

import { seconds } from './format.js';
import { $, drawPicture, setCanvasState, setError, setStatus } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { handleFatal } from './engine.js';
import { keys } from './render.js';
import { mapIsShown } from './gradcam.js';

// The map the picture shown belongs to, and whether one is being computed.
const guided = { shownFor: null, running: false };

// The button and picture for the map now shown.
export function showGuided() {
  $('#guided-run').disabled = !mapIsShown() || guided.running;
  if (guided.shownFor !== null && guided.shownFor !== keys().gradcam) {
    guided.shownFor = null;
    $('#guided-figure').hidden = true;
    setCanvasState($('#guided-canvas'), 'idle');
    setStatus('guided', '');
    setError('guided', '');
  }
}

async function run() {
  const key = keys().gradcam;
  if (!mapIsShown()) return;
  guided.running = true;
  $('#guided-run').disabled = true;
  setError('guided', '');
  setStatus('guided', 'Guided backpropagation: one forward pass, then each layer\'s backward on its own…', true);
  const canvas = $('#guided-canvas');
  setCanvasState(canvas, 'busy');
  const t0 = performance.now();
  try {
    const picture = await compute.call('guided', {}, { slot: 'guided' });
    if (keys().gradcam !== key) return;
    drawPicture(canvas, picture);
    canvas.style.width = `${Math.min(448, picture.width * 2)}px`;
    $('#guided-figure').hidden = false;
    guided.shownFor = key;
    setCanvasState(canvas, 'ready');
    setStatus('guided', `Computed in ${seconds(performance.now() - t0)}.`);
  } catch (err) {
    if (isQuiet(err)) return;
    handleFatal(err);
    setStatus('guided', '');
    setCanvasState(canvas, 'error');
    setError('guided', err);
  } finally {
    guided.running = false;
    showGuided();
  }
}

export function wireGuided() {
  $('#guided-run').addEventListener('click', run);
}
