// Is the Grad-CAM map faithful? On request, the worker measures the map shown (deletion and
// insertion curves with a random map's, ROAD, the confidence change, the sanity check;
// src/viz/faithfulness.rs).
// The results of each method for the same photo, model, class and layer stay side by side, so
// Grad-CAM, Grad-CAM++ and LayerCAM can be compared; the chart shows the last one's curves.

import { seconds } from './format.js';
import { $, setError, setStatus, svg } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { handleFatal } from './engine.js';
import { camSubject, keys } from './render.js';
import { mapIsShown } from './gradcam.js';

// Points of the deletion / insertion curves: each is a forward pass (two curves, two maps).
const STEPS = 12;
// The photo and its blur, each curve's inner points (two maps), ROAD's 2 × 9 images, input × map.
const FORWARD_PASSES = 2 + 2 * (2 * STEPS - 1) + 2 * 9 + 1;
const METHOD_NAMES = { gradcam: 'Grad-CAM', 'gradcam++': 'Grad-CAM++', layercam: 'LayerCAM' };

// The measured maps: what they were measured on (everything but the method), then per method.
const measured = { base: null, byMethod: new Map(), last: null };

// A row of the table: the method and its smoothing.
const rowOf = (g) => `${g.method}${g.eigenSmooth ? '+eigen' : ''}${g.augSmooth ? '+aug' : ''}`;
const rowName = (row) => {
  const [method, ...smoothing] = row.split('+');
  const words = { eigen: 'eigen-smoothed', aug: 'aug-smoothed' };
  return [METHOD_NAMES[method] || method, ...smoothing.map((s) => words[s])].join(', ');
};

// The table, chart and button for the map now shown (after a new map, a new photo, …).
export function showFaithfulness() {
  const current = mapIsShown();
  $('#faith-run').disabled = !current || state.faithRunning;
  if (measured.base !== camSubject()) {
    Object.assign(measured, { base: camSubject(), byMethod: new Map(), last: null });
    setStatus('faith', '');
    setError('faith', '');
  }
  drawTable();
  drawChart(measured.last);
}

async function measure() {
  const key = keys().gradcam;
  if (!mapIsShown()) return;
  const method = rowOf(state.gradcam);
  state.faithRunning = true;
  $('#faith-run').disabled = true;
  setError('faith', '');
  setStatus('faith', `Measuring ${rowName(method)}: ${FORWARD_PASSES} forward passes and one backward…`, true);
  const t0 = performance.now();
  try {
    const result = await compute.call('faithfulness', { steps: STEPS }, { slot: 'faith' });
    if (keys().gradcam !== key) return;
    measured.byMethod.set(method, result);
    measured.last = { method, result };
    setStatus('faith', `Measured in ${seconds(performance.now() - t0)}. Switch the method and measure again to compare.`);
  } catch (err) {
    if (isQuiet(err)) return;
    handleFatal(err);
    setStatus('faith', '');
    setError('faith', err);
  } finally {
    state.faithRunning = false;
    showFaithfulness();
  }
}

function drawTable() {
  const table = $('#faith-table');
  const rows = [...measured.byMethod.entries()];
  table.hidden = rows.length === 0;
  const cell = (tag, text, title) => {
    const el = document.createElement(tag);
    el.textContent = text;
    if (title) el.title = title;
    return el;
  };
  const body = rows.map(([method, m]) => {
    const tr = document.createElement('tr');
    tr.dataset.method = method;
    tr.append(
      cell('th', rowName(method)),
      cell('td', m.deletion.auc.toFixed(3), `a random map: ${m.random_deletion.auc.toFixed(3)}`),
      cell('td', m.insertion.auc.toFixed(3), `a random map: ${m.random_insertion.auc.toFixed(3)}`),
      cell('td', signed(m.road.combined)),
      cell('td', signed(m.confidence_change)),
      cell('td', m.sanity.rank_correlation.toFixed(2), `the map again after the layers above ${m.sanity.randomized_after} were re-initialized at random`),
    );
    return tr;
  });
  const first = rows[0]?.[1];
  if (first) {
    const tr = document.createElement('tr');
    tr.className = 'baseline';
    tr.append(cell('th', 'a random map'), cell('td', first.random_deletion.auc.toFixed(3)), cell('td', first.random_insertion.auc.toFixed(3)), cell('td', '—'), cell('td', '—'), cell('td', '—'));
    body.push(tr);
  }
  table.tBodies[0].replaceChildren(...body);
}

const signed = (v) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

// The class probability against the fraction of pixels deleted (or inserted).
function drawChart(last) {
  const box = $('#faith-chart');
  if (!last) {
    box.replaceChildren();
    return;
  }
  const m = last.result;
  const [width, height, left, top, plot, span] = [440, 170, 36, 10, 130, 290];
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'faith-curves' });
  chart.setAttribute('aria-label', `${rowName(last.method)}: deletion AUC ${m.deletion.auc.toFixed(3)}, insertion AUC ${m.insertion.auc.toFixed(3)}`);
  const x = (f) => left + f * span;
  const y = (p) => top + plot * (1 - p);
  for (const level of [0, 0.5, 1]) {
    chart.append(svg('line', { x1: left, x2: left + span, y1: y(level), y2: y(level), class: 'grid' }));
    chart.append(svg('text', { x: left - 5, y: y(level) + 3.5, class: 'axis', 'text-anchor': 'end' }, `${level * 100}%`));
  }
  chart.append(svg('text', { x: left, y: height - 4, class: 'axis' }, '0%'));
  chart.append(svg('text', { x: left + span, y: height - 4, class: 'axis', 'text-anchor': 'end' }, '100% of the pixels'));
  const line = (curve, cls) => {
    const points = curve.fractions.map((f, i) => `${x(f).toFixed(1)},${y(curve.scores[i]).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { points, class: cls }));
  };
  line(m.random_deletion, 'deletion random');
  line(m.random_insertion, 'insertion random');
  line(m.deletion, 'deletion');
  line(m.insertion, 'insertion');
  [['deletion', 'deletion'], ['insertion', 'insertion'], ['a random map', 'random']].forEach(([text, cls], i) => {
    const ly = height - 4 - (2 - i) * 11;
    chart.append(svg('line', { x1: left + span + 4, x2: left + span + 16, y1: ly - 3, y2: ly - 3, class: `legend ${cls}` }));
    chart.append(svg('text', { x: left + span + 19, y: ly, class: 'axis' }, text));
  });
  box.replaceChildren(chart);
}

export function wireFaithfulness() {
  $('#faith-run').addEventListener('click', measure);
}
