// The loaded model's class names: the user's own (the class-names dialog) or the model's, and the
// class box's suggestions.

import { sentence } from './format.js';
import { $, show } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { entryOf, modelTitle } from './catalogue.js';
import { writeHash } from './link.js';
import { loadModel, updateModelOptions } from './models.js';
import { refresh } from './render.js';
import { setCamClass } from './gradcam.js';

// Replaces the class names (one per line; `null`: the model's own). Rejects with a message.
export async function applyLabels(text) {
  const info = state.model;
  if (!info || !state.engineReady) throw new Error('the model is not loaded yet');
  const own = text === null;
  if (own && !state.ownLabels) {
    // The model's own names are not known here: read the file again without the user's.
    await loadModel(state.source, { options: { ...state.options, labels: null }, keepSelection: true });
    return;
  }
  const names = own ? state.ownLabels : text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (names.length !== info.classes) {
    throw new Error(`give exactly ${info.classes} class names, one per line, in the order of the model's outputs (there are ${names.length})`);
  }
  const modelGen = state.modelGen;
  const description = await compute.call('setLabels', { text: names.join('\n') }, { slot: 'labels' });
  if (modelGen !== state.modelGen) return;
  state.model = description;
  state.options = { ...state.options, labels: own ? null : names };
  const supplied = state.supplied.get(entryOf(description));
  if (supplied && supplied.source === state.source) supplied.options = state.options;
  if (supplied && supplied.source === state.source) supplied.info = description;
  state.labelsGen++;
  fillClassList();
  if (state.gradcam.cls >= 0) setCamClass(state.gradcam.cls, { quiet: true });
  updateModelOptions();
  writeHash();
  refresh();
}

// The class-names dialog.
function openLabelsDialog() {
  const info = state.model;
  if (!info) return;
  const dialog = $('#labels-dialog');
  $('#labels-text').value = info.labels.join('\n');
  $('#labels-hint').textContent = `One name per line, in the order of the model's outputs: ${info.classes} names for ${modelTitle(info)}.`;
  show($('#labels-error'), '');
  $('#labels-reset').disabled = !state.options.labels;
  countLabels();
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
  const text = $('#labels-text');
  text.focus();
  text.setSelectionRange(0, 0);
  text.scrollTop = 0;
}

function closeLabelsDialog() {
  const dialog = $('#labels-dialog');
  if (typeof dialog.close === 'function') dialog.close();
  else dialog.removeAttribute('open');
}

function countLabels() {
  const n = $('#labels-text').value.split('\n').filter((l) => l.trim()).length;
  const want = state.model?.classes ?? 0;
  $('#labels-count').textContent = `${n} of ${want} name${want === 1 ? '' : 's'}${n === want ? '.' : n > want ? ': too many.' : '.'}`;
}

async function submitLabels(text) {
  show($('#labels-error'), '');
  $('#labels-apply').disabled = true;
  try {
    await applyLabels(text);
    closeLabelsDialog();
  } catch (err) {
    if (!isQuiet(err)) show($('#labels-error'), sentence(err));
  } finally {
    $('#labels-apply').disabled = false;
  }
}

// The class box's suggestions: "name (index)".
export function fillClassList() {
  $('#class-list').replaceChildren(
    ...state.model.labels.map((label, i) => {
      const option = document.createElement('option');
      option.value = `${label} (${i})`;
      return option;
    }),
  );
}

// The class-names dialog.
export function wireLabelsDialog() {
  $('#labels-open').addEventListener('click', openLabelsDialog);
  $('#labels-text').addEventListener('input', countLabels);
  $('#labels-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submitLabels($('#labels-text').value);
  });
  $('#labels-reset').addEventListener('click', () => submitLabels(null));
  $('#labels-cancel').addEventListener('click', closeLabelsDialog);
}
