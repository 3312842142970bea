// The prediction list: the top classes for the photo; choosing one shows its Grad-CAM.

import { percent, seconds } from './format.js';
import { $, markOnce, setError, setStatus } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { modelTitle } from './catalogue.js';
import { handleFatal } from './engine.js';
import { selectView } from './controls.js';
import { keys, once, waitNote } from './render.js';
import { setCamClass } from './gradcam.js';

export function updatePredictions() {
  const list = $('#predictions');
  once('predict', keys().predict, async (current) => {
    list.dataset.state = 'busy';
    setStatus('predict', `Classifying${waitNote()}…`, true);
    setError('predict', '');
    const t0 = performance.now();
    try {
      const rows = await compute.call('predict', { top: 5 }, { slot: 'predict' });
      if (!current()) return;
      list.replaceChildren(...rows.map(predictionRow));
      list.dataset.photo = state.photo.name;
      list.dataset.model = state.model.model;
      list.dataset.fromFile = String(state.model.from_file);
      list.dataset.state = 'ready';
      markOnce('first-prediction');
      setStatus('predict', `${state.photo.name}, ${modelTitle(state.model)}, ${seconds(performance.now() - t0)}`);
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      list.dataset.state = 'error';
      setStatus('predict', '');
      setError('predict', err);
    }
  });
}

function predictionRow({ index, label, prob }) {
  const li = document.createElement('li');
  li.setAttribute('data-testid', 'prediction');
  li.dataset.index = String(index);
  li.dataset.prob = String(prob);
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'prediction';
  button.title = `Show the Grad-CAM evidence for “${label}”`;
  const name = document.createElement('span');
  name.className = 'label';
  name.textContent = label;
  const bar = document.createElement('span');
  bar.className = 'bar';
  bar.setAttribute('aria-hidden', 'true');
  const fill = document.createElement('span');
  fill.style.width = `${Math.max(0.5, prob * 100).toFixed(1)}%`;
  bar.append(fill);
  const value = document.createElement('span');
  value.className = 'value';
  value.textContent = percent(prob);
  button.append(name, bar, value);
  button.addEventListener('click', () => {
    setCamClass(index);
    selectView('gradcam');
    $('#gradcam-canvas').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  });
  li.append(button);
  return li;
}
