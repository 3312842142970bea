// Small DOM helpers: element lookup, a view's error and status lines, drawing the engine's
// pictures (RGBA) on canvases, SVG elements.

import { messageOf } from './format.js';

export const $ = (selector) => document.querySelector(selector);
export const $$ = (selector) => Array.from(document.querySelectorAll(selector));

export function show(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

// A performance mark of the page's first look (engine up, model loaded, photo, first prediction),
// set once per page: the benchmark and the tests read them.
export function markOnce(name) {
  if (performance.getEntriesByName(`convlens:${name}`).length === 0) performance.mark(`convlens:${name}`);
}

export function setError(name, err) {
  const el = $(`#${name}-error`);
  if (!el) return;
  show(el, err ? messageOf(err) : '');
}

export function setStatus(name, text, busy = false) {
  const el = $(`#${name}-status`);
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('busy', busy);
}

function imageData(picture) {
  return new ImageData(picture.rgba, picture.width, picture.height);
}

// A canvas holding a picture, for scaled drawing.
export function pictureCanvas(picture) {
  const canvas = document.createElement('canvas');
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext('2d').putImageData(imageData(picture), 0, 0);
  return canvas;
}

export function drawPicture(canvas, picture) {
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext('2d').putImageData(imageData(picture), 0, 0);
}

// Small filter grids are shown enlarged by a whole factor, so each pixel stays a crisp square.
export function enlarge(canvas, limit = 760) {
  const factor = Math.max(1, Math.floor(limit / canvas.width));
  canvas.style.width = `${canvas.width * Math.min(factor, 4)}px`;
}

export function setCanvasState(canvas, value) {
  canvas.dataset.state = value;
  const download = document.querySelector(`button.download[data-canvas="${canvas.id}"]`);
  if (download && value === 'ready') download.disabled = false;
  if (download && value === 'idle') download.disabled = true;
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
