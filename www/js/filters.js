// The filter-patterns view: gradient ascent in the worker with live previews and progress,
// and cancelling it.

import { seconds } from './format.js';
import { $, drawPicture, enlarge, setCanvasState, setError, setStatus } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { handleFatal, startEngine } from './engine.js';
import { refresh } from './render.js';

// Steps each method starts with on the page: the book's 40; for lucid, enough for Adam to settle
// (Lucid's own 512 at 128 px is minutes on one browser thread; 128 gives readable images at 64 px).
const STEPS = { classic: 40, regularized: 40, lucid: 128 };
const MAX_STEPS = 1000;

export function defaultSteps(mode) {
  return STEPS[mode] || 40;
}

// How many filters the chosen layer has (classes, when a class is maximized).
export function filterChannels() {
  if (state.filters.objective === 'class') return state.model?.classes || 0;
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
  if (!Number.isInteger(f.steps) || f.steps < 1 || f.steps > MAX_STEPS) {
    setError('filters', `steps must be a whole number from 1 to ${MAX_STEPS}`);
    return;
  }
  if (!Number.isInteger(f.first) || f.first < 0 || f.first + count > channels) {
    const what = f.objective === 'class' ? `the model has ${channels} classes` : `${f.layer} has ${channels} filters`;
    setError('filters', `${what}: start from 0 to ${channels - count}`);
    return;
  }
  const canvas = $('#filters-canvas');
  const progress = $('#flt-progress');
  f.frames = []; // the previews, for the animation
  $('#flt-animation').disabled = true;
  const engineGen = state.engineGen;
  f.running = true;
  f.cancelled = false;
  f.stepMs = 0;
  $('#flt-start').disabled = true;
  $('#flt-cancel').disabled = false;
  progress.max = f.steps;
  progress.value = 0;
  setCanvasState(canvas, 'busy');
  const range = `${f.first}–${f.first + count - 1}`;
  const each = f.variants > 1 ? `, ${f.variants} diverse images each` : '';
  const what = (f.objective === 'class' ? `${count} image${count === 1 ? '' : 's'} of classes ${range}` : `${count} pattern${count === 1 ? '' : 's'} of ${f.layer} (filters ${range})`) + each;
  setStatus('filters', `Starting ${what}…`, true);
  const t0 = performance.now();
  const previewEvery = Math.max(1, Math.round(f.steps / 10));
  try {
    const out = await compute.call(
      'filters',
      { layer: f.layer, first: f.first, count, size: f.size, steps: f.steps, mode: f.mode, variants: f.variants, objective: f.objective, seed: 0, previewEvery },
      {
        onProgress: (p) => {
          progress.value = p.step;
          const elapsed = performance.now() - t0;
          f.stepMs = elapsed / Math.max(1, p.step);
          const left = p.step > 0 ? (elapsed / p.step) * (p.steps - p.step) : 0;
          const measure = { channel: 'mean activation', neuron: 'centre activation', class: 'class logit' }[f.objective] || 'objective';
          const loss = Number.isFinite(p.loss) ? `, ${measure} ${p.loss.toPrecision(3)}` : '';
          setStatus('filters', `Step ${p.step} of ${p.steps}${loss} — about ${seconds(left)} left`, true);
          if (p.grid) {
            f.frames.push(p.grid);
            drawPicture(canvas, p.grid);
            enlarge(canvas);
          }
        },
      },
    );
    drawPicture(canvas, out.grid);
    enlarge(canvas);
    f.frames.push(out.grid);
    $('#flt-animation').disabled = f.frames.length < 2;
    progress.value = f.steps;
    canvas.setAttribute('aria-label', `Filter patterns: ${what}`);
    $('#filters-caption').textContent = `${what}, ${f.size}×${f.size} px, ${f.steps} steps, ${f.mode}.`;
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

// The run's previews and final grid as an animated GIF, encoded by the core.
async function downloadAnimation() {
  const f = state.filters;
  if (f.frames.length < 2) return;
  $('#flt-animation').disabled = true;
  try {
    const gif = await compute.call('animation', { frames: f.frames, frameMs: 120 });
    const url = URL.createObjectURL(new Blob([gif], { type: 'image/gif' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `convlens-${state.model?.model || 'model'}-${f.objective === 'class' ? 'classes' : f.layer}.gif`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    if (!isQuiet(err)) setError('filters', err);
  } finally {
    $('#flt-animation').disabled = f.frames.length < 2;
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

// Start, Cancel and the animation.
export function wireFilterControls() {
  $('#flt-start').addEventListener('click', startFilters);
  $('#flt-cancel').addEventListener('click', cancelFilters);
  $('#flt-animation').addEventListener('click', downloadAnimation);
}
