// The activations view: every channel of a layer tiled as a grid, one channel enlarged (chosen
// by a click on its tile), and the sparsity of each layer as a bar chart.

import { percent, seconds } from './format.js';
import { $, $$, drawPicture, pictureCanvas, setCanvasState, setError, setStatus, svg } from './dom.js';
import { compute, isQuiet } from './compute.js';
import { state } from './state.js';
import { handleFatal } from './engine.js';
import { onControlChange } from './controls.js';
import { keys, once, waitNote } from './render.js';

// The channel under a point of the grid canvas, from the grid's documented layout: 16 tiles per
// row, each upscaled by max(1, floor(32 / max(H, W))), 1 px gaps and margin.
function tileGeometry() {
  const [c, h, w] = state.act.shape;
  const factor = Math.max(1, Math.floor(32 / Math.max(h, w)));
  return { c, tw: w * factor, th: h * factor, cols: Math.min(16, c), gap: 1 };
}

function channelAt(x, y) {
  if (!state.act.shape) return null;
  const { c, tw, th, cols, gap } = tileGeometry();
  const col = Math.floor((x - gap) / (tw + gap));
  const row = Math.floor((y - gap) / (th + gap));
  if (col < 0 || row < 0 || col >= cols) return null;
  const index = row * cols + col;
  return index < c ? index : null;
}

function drawActivationGrid() {
  const canvas = $('#activations-canvas');
  const grid = state.act.grid;
  if (!grid) return;
  drawPicture(canvas, grid);
  const { tw, th, cols, gap } = tileGeometry();
  const i = state.act.channel;
  const ctx = canvas.getContext('2d');
  const scale = canvas.width / Math.max(1, canvas.getBoundingClientRect().width || canvas.width);
  ctx.lineWidth = Math.max(2, Math.round(2 * scale));
  ctx.strokeStyle = '#ffd23f';
  const x = gap + (i % cols) * (tw + gap);
  const y = gap + Math.floor(i / cols) * (th + gap);
  ctx.strokeRect(x - ctx.lineWidth / 2 + 0.5, y - ctx.lineWidth / 2 + 0.5, tw + ctx.lineWidth - 1, th + ctx.lineWidth - 1);
}

function describeChannel() {
  const stats = state.act.info?.stats;
  const i = state.act.channel;
  if (!stats) return;
  const mean = stats.channel_means?.[i];
  const max = stats.channel_maxes?.[i];
  const numbers = mean !== undefined ? `: mean ${mean.toPrecision(3)}, max ${max.toPrecision(3)}${max === 0 ? ' (silent for this photo)' : ''}` : '';
  $('#channel-caption').textContent = `Channel ${i} of ${state.act.layer}${numbers}.`;
}

export function updateActivations() {
  const canvas = $('#activations-canvas');
  const a = state.act;
  once('activations', keys().activations, async (current) => {
    setCanvasState(canvas, 'busy');
    setStatus('activations', `Computing the activations of ${a.layer}${waitNote()}…`, true);
    setError('activations', '');
    const t0 = performance.now();
    try {
      const out = await compute.call('activations', { layer: a.layer, colormap: a.colormap }, { slot: 'activations' });
      if (!current()) return;
      const { info } = out;
      state.act.info = info;
      state.act.shape = info.shape;
      state.act.grid = out.grid;
      const [c, h, w] = info.shape;
      const input = $('#act-channel');
      input.max = String(c - 1);
      if (state.act.channel > c - 1) {
        state.act.channel = 0;
        input.value = '0';
      }
      drawActivationGrid();
      canvas.dataset.photo = state.photo.name;
      canvas.dataset.model = state.model.model;
      canvas.dataset.fromFile = String(state.model.from_file);
      canvas.setAttribute('aria-label', `The ${c} channels of ${info.layer}, tiled`);
      const s = info.stats;
      $('#activations-caption').textContent =
        `${info.layer}: ${c} channels of ${h}×${w}. Sparsity ${percent(s.sparsity)} (exact zeros), mean ${s.mean.toPrecision(3)}, max ${s.max.toPrecision(3)}.`;
      setCanvasState(canvas, 'ready');
      setStatus('activations', `Computed in ${seconds(performance.now() - t0)}.`);
      updateChannel();
      markChartLayer();
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setStatus('activations', '');
      setError('activations', err);
    }
  });
}

function updateChannel() {
  const canvas = $('#channel-canvas');
  const a = state.act;
  if (!a.shape) return;
  drawActivationGrid();
  describeChannel();
  once('channel', keys().channel, async (current) => {
    setCanvasState(canvas, 'busy');
    try {
      const picture = await compute.call('channel', { layer: a.layer, index: a.channel, colormap: a.colormap }, { slot: 'channel' });
      if (!current()) return;
      // Enlarged without smoothing, so each activation stays one visible square.
      const scale = Math.max(1, Math.floor(256 / Math.max(picture.width, picture.height)));
      canvas.width = picture.width * scale;
      canvas.height = picture.height * scale;
      const ctx = canvas.getContext('2d');
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(pictureCanvas(picture), 0, 0, canvas.width, canvas.height);
      canvas.setAttribute('aria-label', `Channel ${a.channel} of ${a.layer}, enlarged`);
      setCanvasState(canvas, 'ready');
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setCanvasState(canvas, 'error');
      setError('activations', err);
    }
  });
}

function setChannel(index) {
  const c = state.act.shape ? state.act.shape[0] : 1;
  if (!Number.isInteger(index) || index < 0 || index >= c) {
    setError('activations', `choose a channel from 0 to ${c - 1}`);
    return;
  }
  setError('activations', '');
  state.act.channel = index;
  $('#act-channel').value = String(index);
  updateChannel();
}

function drawSparsityChart(rows) {
  const box = $('#sparsity-chart');
  const bar = 18;
  const gap = 4;
  const top = 12;
  const plot = 90;
  const labelSpace = 96;
  const left = 34;
  const width = left + rows.length * (bar + gap) + gap;
  const height = top + plot + labelSpace;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'sparsity' });
  const summary = rows.map((r) => `${r.layer} ${percent(r.sparsity, 0)}`).join(', ');
  chart.setAttribute('aria-label', `Sparsity by layer: ${summary}`);
  for (const level of [0, 0.5, 1]) {
    const y = top + plot * (1 - level);
    chart.append(svg('line', { x1: left - 4, x2: width, y1: y, y2: y, class: 'grid' }));
    chart.append(svg('text', { x: left - 7, y: y + 3.5, class: 'axis', 'text-anchor': 'end' }, `${level * 100}%`));
  }
  rows.forEach((r, i) => {
    const x = left + gap + i * (bar + gap);
    const h = Math.max(0.5, plot * r.sparsity);
    const g = svg('g', { class: 'bar', 'data-layer': r.layer });
    g.append(svg('title', {}, `${r.layer}: ${percent(r.sparsity)} zeros, mean ${r.mean.toPrecision(3)}, max ${r.max.toPrecision(3)}`));
    g.append(svg('rect', { x: x - gap / 2, y: top, width: bar + gap, height: plot, class: 'hit' }));
    g.append(svg('rect', { x, y: top + plot - h, width: bar, height: h, class: 'fill' }));
    const ly = top + plot + 6;
    g.append(svg('text', { x: x + bar / 2, y: ly, class: 'tick', transform: `rotate(-60 ${x + bar / 2} ${ly})`, 'text-anchor': 'end' }, r.layer));
    g.addEventListener('click', () => {
      const select = $('#act-layer');
      if ([...select.options].some((o) => o.value === r.layer)) {
        select.value = r.layer;
        onControlChange();
      }
    });
    chart.append(g);
  });
  box.replaceChildren(chart);
  markChartLayer();
}

export function markChartLayer() {
  for (const g of $$('#sparsity-chart g.bar')) g.classList.toggle('current', g.dataset.layer === state.act.layer);
}

export function updateStats() {
  once('stats', keys().stats, async (current) => {
    setError('stats', '');
    try {
      const rows = await compute.call('layerStats', {}, { slot: 'stats' });
      if (!current()) return;
      drawSparsityChart(rows);
    } catch (err) {
      if (isQuiet(err) || !current()) return;
      handleFatal(err);
      setError('stats', err);
    }
  });
}

// The channel box and clicks on the grid.
export function wireActivationControls() {
  $('#act-channel').addEventListener('change', () => setChannel(Number($('#act-channel').value)));
  $('#activations-canvas').addEventListener('click', (e) => {
    const canvas = e.currentTarget;
    const rect = canvas.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((e.clientY - rect.top) * canvas.height) / rect.height;
    const index = channelAt(x, y);
    if (index !== null) setChannel(index);
  });
}
