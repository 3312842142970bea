// What the browser tests share: the `test` they are written with (fixtures: the backend, a page
// that fails its test on any console error), the fixture files, and the actions and measurements
// the specs repeat (dropping files, waiting for the user's model, reading canvases).

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test as base, expect } from '@playwright/test';
import { REPO, SHOTS, WAIT } from './settings.mjs';

export { expect };
export { BASE_URL, WAIT } from './settings.mjs';

export const CAT_CLASSES = [281, 282, 283, 284, 285];
const KERAS_DIR = path.join(REPO, 'tests/fixtures/keras');
export const KERAS_MODEL = path.join(KERAS_DIR, 'seq_aug_128.keras');
export const KERAS_BAD = path.join(KERAS_DIR, 'bad_unsupported_layer.keras');
export const ONNX_MODEL = path.join(REPO, 'tests/fixtures/onnx/view_dynamo21_external.onnx');

// The JSON a fixture model's script wrote beside it (input size, layers, reference results).
export const referenceOf = (model) => JSON.parse(readFileSync(model.replace(/\.(keras|onnx)$/, '.json'), 'utf8'));

// ---------------------------------------------------------------------------------------------
// Console errors fail the test.

// Console errors, page errors, unhandled rejections and crashes of every watched page, until the
// running test (or the next one, for a page shared by several) reports them.
const problems = [];

// Watches a page for anything that must fail the run.
export function watch(page, tag) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`[${tag}] console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`[${tag}] uncaught: ${err.message}`));
  page.on('crash', () => problems.push(`[${tag}] the page crashed`));
  return page;
}

// Any unhandled rejection becomes a console.error (so it fails the test); `noWebGPU` removes
// WebGPU from every page of the context (the CPU fallback).
export async function prepareContext(context, { noWebGPU }) {
  await context.addInitScript(() => {
    window.addEventListener('unhandledrejection', (e) => console.error(`unhandled rejection: ${e.reason && e.reason.message ? e.reason.message : e.reason}`));
  });
  if (noWebGPU) {
    await context.addInitScript(() => {
      delete Navigator.prototype.gpu;
    });
  }
}

// A context for pages that several tests share (made in beforeAll, where `context` is not there).
export async function newContext(browser, backend, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  await prepareContext(context, { noWebGPU: backend === 'cpu' });
  return context;
}

// Opens `url` in a new watched page of `context`.
export async function openPage(context, url, tag) {
  const page = watch(await context.newPage(), tag);
  await page.goto(url);
  return page;
}

export const test = base.extend({
  // The project's backend: 'webgpu' (WebGPU present; pages that open the bundled model force it
  // with #backend=webgpu) or 'cpu' (navigator.gpu removed, backend Auto).
  backend: ['cpu', { option: true, scope: 'worker' }],

  context: async ({ context, backend }, use) => {
    await prepareContext(context, { noWebGPU: backend === 'cpu' });
    await use(context);
  },

  page: async ({ page, backend }, use) => {
    await use(watch(page, backend));
  },

  // Fails the test when a watched page logged a console error, threw, rejected unhandled or crashed.
  pageProblems: [
    async ({}, use) => {
      await use();
      const found = problems.splice(0);
      expect(found, 'console errors, page errors or unhandled rejections').toEqual([]);
    },
    { auto: true },
  ],
});

// The hash that opens the bundled model on the project's backend, with `params` (e.g. 'sample=cat').
export const bundledHash = (backend, params) => (backend === 'webgpu' ? `#backend=webgpu&${params}` : `#${params}`);

// ---------------------------------------------------------------------------------------------
// Timings and screenshots.

// Records a timing (shown after the run by tests/e2e/timings-reporter.mjs, per backend).
export function timing(name, ms) {
  test.info().annotations.push({ type: 'timing', description: `${name}: ${(ms / 1000).toFixed(2)} s` });
}

// A full-page screenshot: tests/e2e/screenshots/<backend>-<name>.png.
export async function shot(page, name) {
  await page.screenshot({ path: shotPath(name), fullPage: true });
}

export const shotPath = (name) => path.join(SHOTS, `${test.info().project.name}-${name}.png`);

// One line of what a test saw, for the log.
export function note(text) {
  console.log(`      ${text}`);
}

// ---------------------------------------------------------------------------------------------
// Reading the page.

// Types `value` into the field `testid` and tells the page, as leaving the field would.
export async function setField(page, testid, value) {
  await page.fill(`[data-testid="${testid}"]`, value);
  await page.dispatchEvent(`[data-testid="${testid}"]`, 'change');
}

export const predictionsFor = (photo) => `[data-testid="predictions"][data-state="ready"][data-photo="${photo}"]`;

export async function topPrediction(page) {
  return page.$eval('[data-testid="prediction"]', (li) => ({
    index: Number(li.dataset.index),
    prob: Number(li.dataset.prob),
    label: `${li.querySelector('.label')?.textContent ?? li.textContent} ${(Number(li.dataset.prob) * 100).toFixed(1)}%`,
  }));
}

export const engineStarts = (page) => page.evaluate(() => document.documentElement.dataset.engineStarts);

// Mean and spread of a canvas's pixels, and its size.
export async function canvasStats(page, testid) {
  return page.$eval(`[data-testid="${testid}"]`, (canvas) => {
    if (!canvas.width || !canvas.height) return { width: 0, height: 0, mean: 0, std: 0 };
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    let sq = 0;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
      sum += v;
      sq += v * v;
      n++;
    }
    const mean = sum / n;
    return { width: canvas.width, height: canvas.height, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
  });
}

// Mean |overlay − photo| (0–255) between the Grad-CAM canvas and the sample photo, over the
// fractions `[x, y, w, h]` of the canvas (default: all of it).
export async function overlayDiff(page, photo, region = [0, 0, 1, 1]) {
  return page.evaluate(
    async ({ name, region }) => {
      const canvas = document.querySelector('[data-testid="gradcam-canvas"]');
      const bitmap = await createImageBitmap(await (await fetch(`./samples/${name}`)).blob());
      const ref = new OffscreenCanvas(canvas.width, canvas.height);
      ref.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const [x, y, w, h] = [canvas.width * region[0], canvas.height * region[1], canvas.width * region[2], canvas.height * region[3]].map(Math.round);
      const a = canvas.getContext('2d').getImageData(x, y, w, h).data;
      const b = ref.getContext('2d').getImageData(x, y, w, h).data;
      let sum = 0;
      for (let i = 0; i < a.length; i += 4) sum += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
      return sum / (a.length / 4) / 3;
    },
    { name: photo, region },
  );
}

// The model error box's message, once it shows one other than `previous`.
export async function modelError(page, previous = '') {
  await page.waitForFunction(
    (prev) => {
      const box = document.querySelector('[data-testid="model-error"]');
      return !box.hidden && box.textContent.trim() && box.textContent.trim() !== prev;
    },
    previous,
    { timeout: WAIT },
  );
  return (await page.textContent('[data-testid="model-error"]')).trim();
}

// One sentence: a capital, one final stop, no second sentence, one line.
export function expectOneSentence(message) {
  expect(message, `the message does not start a sentence: “${message}”`).toMatch(/^[A-Z"“'‘(]/);
  expect(message, `the message does not end a sentence: “${message}”`).toMatch(/[.!?]$/);
  expect(message, `the message runs over several lines: “${message}”`).not.toMatch(/\n/);
  expect(message, `the message has more than one sentence: “${message}”`).not.toMatch(/[.!?]\s+["“‘(]?[A-Z]/);
  expect(message.length, `the message is ${message.length} characters long`).toBeLessThan(400);
}

// Waits until the page shows the user's model read from `file` (the status names the file it came
// from; another user model may be showing before it).
export async function userModelFrom(page, file) {
  await page.waitForFunction(
    (name) => {
      const status = document.querySelector('[data-testid="model-status"]').textContent;
      return /^Your model/.test(status) && status.includes(`from ${name}`);
    },
    path.basename(file),
    { timeout: WAIT },
  );
}

// ---------------------------------------------------------------------------------------------
// Dropping files on the page.

// Drops a sample photo from the bundle on the drop zone.
export async function dropSample(page, file) {
  await page.evaluate(async (name) => {
    const blob = await (await fetch(`./samples/${name}`)).blob();
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], name, { type: blob.type || 'image/jpeg' }));
    const zone = document.querySelector('[data-testid="dropzone"]');
    zone.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: transfer }));
    zone.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }, file);
}

// A file of this machine as dropMany takes it.
export function localFile(file, { name = path.basename(file), type = 'application/octet-stream' } = {}) {
  expect(existsSync(file), `${file} is missing`).toBe(true);
  return { name, data: readFileSync(file).toString('base64'), type };
}

// Drops a file of this machine on the element `target`.
export async function dropFile(page, file, { name, type, target = '[data-testid="dropzone"]' } = {}) {
  await dropMany(page, [localFile(file, { name, type })], target);
}

// Drops several files at once ({name, data (base64), type}) on the element `target`.
export async function dropMany(page, files, target) {
  await page.evaluate(
    ({ files, target }) => {
      const transfer = new DataTransfer();
      for (const { name, data, type } of files) transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, { type }));
      const el = document.querySelector(target);
      el.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: transfer }));
      el.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }));
    },
    { files, target },
  );
}
