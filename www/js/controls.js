// The view tabs and each view's controls: read into the state, and rebuilt from a newly loaded
// model's description; saving a canvas as PNG.

import { $, $$, setCanvasState, setError, setStatus } from './dom.js';
import { state } from './state.js';
import { hasMap } from './catalogue.js';
import { writeHash } from './link.js';
import { updateModelOptions } from './models.js';
import { fillClassList } from './labels.js';
import { refresh } from './render.js';
import { setCamClass } from './gradcam.js';
import { markChartLayer } from './activations.js';
import { defaultSteps, filterChannels } from './filters.js';

export const VIEWS = ['gradcam', 'activations', 'filters'];

// Layer pickers, class list and defaults for the loaded model, all from its description (keeping
// the choices when the new model has the same layers). Grad-CAM and activations: every layer with
// a spatial map; filter patterns: the conv layers with one (and the model's default for it).
export function rebuildModelControls(sameModel = false) {
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

export function readControls() {
  const g = state.gradcam;
  g.layer = $('#cam-layer').value || null;
  g.method = $('#cam-method').value;
  g.eigenSmooth = $('#cam-eigen').checked;
  g.augSmooth = $('#cam-aug').checked;
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
  const mode = $('#flt-mode').value;
  // A method's own step count follows the method, unless the user chose another.
  if (mode !== f.mode && Number($('#flt-steps').value) === defaultSteps(f.mode)) $('#flt-steps').value = String(defaultSteps(mode));
  f.steps = Number($('#flt-steps').value);
  f.mode = mode;
  f.variants = Number($('#flt-variants').value);
  f.objective = $('#flt-objective').value;
  $('#flt-layer').disabled = f.objective === 'class';
  $('#flt-first').max = String(Math.max(0, filterChannels() - 1));
}

export function onControlChange() {
  readControls();
  markChartLayer();
  writeHash();
  refresh();
}

export function selectView(view, { quiet = false, focus = false } = {}) {
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

// Tabs (click and arrow keys), each view's menus and inputs, the download buttons.
export function wireViewControls() {
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
  for (const id of ['#cam-layer', '#cam-method', '#cam-eigen', '#cam-aug', '#cam-colormap', '#act-layer', '#act-colormap', '#flt-layer', '#flt-count', '#flt-size', '#flt-mode', '#flt-variants', '#flt-objective', '#flt-first', '#flt-steps']) {
    $(id).addEventListener('change', onControlChange);
  }
  for (const button of $$('button.download')) {
    button.addEventListener('click', () => downloadCanvas(document.getElementById(button.dataset.canvas)));
  }
}
