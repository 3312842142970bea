// The Grad-CAM view: the class to explain and the heatmap over the photo. The picture is the
// core's overlay (the book's: heat × opacity + photo), the same the CLI writes; a new colormap or
// opacity asks the worker to redraw it from the map it kept.

import { percent, seconds } from './format.js';
import { $, drawPicture, setCanvasState, setError, setStatus } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { writeHash } from './link.js';
import { handleFatal } from './engine.js';
import { keys, once, refresh, waitNote } from './render.js';
import { showFaithfulness } from './faithfulness.js';
import { showGuided } from './guided.js';

export function setCamClass(index, { quiet = false } = {}) {
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

// What the canvas shows: the map's key and the look (colormap, opacity) it was drawn in.
const shown = { map: null, look: null };
const lookOf = (g) => `${g.colormap}|${g.opacity}`;

// Whether the canvas shows the map of the current photo, model, class, layer and method.
export const mapIsShown = () => shown.map === keys().gradcam;

// Redraws the shown map in the current colormap and opacity, when only the look changed.
async function redrawOverlay() {
  const g = state.gradcam;
  const look = lookOf(g);
  if (shown.map !== keys().gradcam || shown.look === look) return;
  try {
    const picture = await compute.call('overlay', { colormap: g.colormap, opacity: g.opacity }, { slot: 'overlay' });
    if (shown.map !== keys().gradcam || lookOf(g) !== look) return; // a newer redraw is on its way
    drawPicture($('#gradcam-canvas'), picture);
    shown.look = look;
  } catch (err) {
    if (isQuiet(err)) return;
    handleFatal(err);
    setError('gradcam', err);
  }
}

export function updateGradcam() {
  const canvas = $('#gradcam-canvas');
  const g = state.gradcam;
  redrawOverlay();
  showFaithfulness();
  showGuided();
  once('gradcam', keys().gradcam, async (current) => {
    setCanvasState(canvas, 'busy');
    setStatus('gradcam', `Computing ${$('#cam-method').selectedOptions[0].textContent} at ${g.layer}${waitNote()}…`, true);
    setError('gradcam', '');
    const t0 = performance.now();
    try {
      const look = lookOf(g);
      const out = await compute.call('gradcam', { layer: g.layer, cls: g.cls, method: g.method, eigenSmooth: g.eigenSmooth, augSmooth: g.augSmooth, colormap: g.colormap, opacity: g.opacity }, { slot: 'gradcam' });
      if (!current()) return;
      drawPicture(canvas, out.overlay);
      Object.assign(shown, { map: keys().gradcam, look });
      showFaithfulness();
      showGuided();
      const { info } = out;
      canvas.dataset.photo = state.photo.name;
      canvas.dataset.model = state.model.model;
      canvas.dataset.fromFile = String(state.model.from_file);
      canvas.dataset.class = String(info.class);
      canvas.dataset.method = g.method;
      canvas.dataset.eigen = String(g.eigenSmooth);
      canvas.dataset.aug = String(g.augSmooth);
      canvas.setAttribute('aria-label', `Grad-CAM heatmap for “${info.label}” over the photo`);
      $('#gradcam-caption').textContent =
        `Evidence for “${info.label}” (class ${info.class}, probability ${percent(info.prob)}), ` +
        `from layer ${info.layer} (${info.height}×${info.width} map).`;
      setCanvasState(canvas, 'ready');
      setStatus('gradcam', `Computed in ${seconds(performance.now() - t0)}.`);
      redrawOverlay(); // the colormap or opacity may have changed while it computed
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setStatus('gradcam', '');
      setError('gradcam', err);
    }
  });
}

// Opacity, the class box and its "top class" button.
export function wireGradcamControls() {
  $('#cam-opacity').addEventListener('input', () => {
    state.gradcam.opacity = Number($('#cam-opacity').value);
    $('#cam-opacity-value').textContent = percent(state.gradcam.opacity, 0);
    redrawOverlay();
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
}
