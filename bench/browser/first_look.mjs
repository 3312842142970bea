#!/usr/bin/env node
// The page's first look, measured in headless Chromium on the CPU path (navigator.gpu removed, as
// on a machine without WebGPU): dist/ served by tools/serve.mjs, one visit to fill the caches, then
// RUNS visits in the same profile (a returning visitor: HTTP and Cache API warm). Each visit reads
// the page's own performance marks (www/js/dom.js `markOnce`): engine up, model loaded, first
// prediction shown, all from navigation start. Then, on the last page, a sample photo is chosen
// RUNS times and timed until its predictions are shown (photo → prediction; what a drop costs).
//
//   make dist && node bench/browser/first_look.mjs        (RUNS=5; CHROMIUM=/usr/bin/chromium;
//                                                          NO_SW=1 blocks the service worker;
//                                                          ISOLATED=0: no COOP/COEP, one thread)
//
// Prints a Markdown section (5.5 of bench/RESULTS.md when run by bench/bench.sh).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../../tools/serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const require = createRequire(path.join(repo, 'package.json'));
const { chromium } = require('playwright-core');

const RUNS = Number(process.env.RUNS || 5);
// Served with COOP/COEP (as `make serve` does): the page takes the threaded build.
const ISOLATED = process.env.ISOLATED !== '0';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SAMPLES = ['coffee', 'astronaut', 'rocket', 'cat'];
const VGG16 = path.join(repo, 'bench/.cache/vgg16_seeded.safetensors');

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const seconds = (ms) => (ms / 1000).toFixed(2);
const cell = (v) => `${seconds(median(v))} s <sub>(${seconds(Math.min(...v))}–${seconds(Math.max(...v))})</sub>`;

const threadsText = (visits) => {
  const n = [...new Set(visits.map((v) => v.threads))].join('/');
  return n === '1' ? 'the single-threaded wasm' : `the threaded wasm, ${n} threads`;
};

async function visit(context, url) {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => performance.getEntriesByName('convlens:first-prediction').length > 0, null, { timeout: 120_000 });
  const marks = await page.evaluate(() => {
    const at = (name) => performance.getEntriesByName(`convlens:${name}`)[0]?.startTime;
    const nav = performance.getEntriesByType('navigation')[0];
    return { html: nav.domContentLoadedEventEnd, engine: at('engine'), model: at('model'), prediction: at('first-prediction'), threads: Number(document.documentElement.dataset.threads) };
  });
  return { page, marks };
}

// Chooses a sample photo and waits for its predictions by `model`: milliseconds.
async function photoToPrediction(page, sample, model) {
  const ms = await page.evaluate(async ([name, model]) => {
    const list = document.querySelector('#predictions');
    const t0 = performance.now();
    document.querySelector(`[data-sample="${name}"]`).click();
    await new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error(`no prediction of ${name}.jpg by ${model} within 60 s`)), 60_000);
      const done = () => list.dataset.photo === `${name}.jpg` && list.dataset.model === model && list.dataset.state === 'ready';
      const observer = new MutationObserver(() => done() && (observer.disconnect(), resolve()));
      observer.observe(list, { attributes: true, childList: true });
    });
    return performance.now() - t0;
  }, [sample, model]);
  // Then, as a user looks at it, the Grad-CAM the page computes next (the view open by default):
  // the next photo is not queued behind it.
  await page.waitForSelector(`#gradcam-canvas[data-photo="${sample}.jpg"][data-model="${model}"][data-state="ready"]`, { timeout: 120_000 });
  return ms;
}

// VGG16 as a user who has its weights opens it: chosen in the menu, the file given (the seeded
// one `make bench` writes; the real ImageNet file is the same size and layout). Then the photo
// drops are timed as for Lite0. Null when the file is missing.
async function vgg16Drops(page) {
  if (!existsSync(VGG16)) return null;
  await page.selectOption('[data-testid="model-select"]', 'vgg16');
  await page.setInputFiles('[data-testid="weights-input"]', VGG16);
  await page.waitForSelector('#predictions[data-model="vgg16"][data-state="ready"]', { timeout: 300_000 });
  const drops = [];
  for (let i = 0; i < RUNS; i++) drops.push(await photoToPrediction(page, SAMPLES[i % SAMPLES.length], 'vgg16'));
  return drops;
}

async function main() {
  if (!existsSync(path.join(repo, 'dist/index.html'))) throw new Error('dist/ is missing: run `make dist` first');
  const { server, url } = await serve(path.join(repo, 'dist'), { port: 0, base: '/convlens/', crossOriginIsolated: ISOLATED });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: process.env.NO_SW ? 'block' : 'allow' });
    await context.addInitScript(() => delete Navigator.prototype.gpu);
    const first = `${url}#sample=cat`;
    // The first visit fills the HTTP cache, the weights cache and the service worker's, and stays
    // a few seconds, as a visitor does: until the service worker has installed (it fetches the
    // page's files once more), and long enough for V8 to cache compiled code if it will.
    const filling = (await visit(context, first)).page;
    await filling.evaluate(() => (navigator.serviceWorker ? navigator.serviceWorker.ready.then(() => true) : false));
    await filling.waitForTimeout(3000);
    await filling.close();
    const visits = [];
    let last = null;
    for (let i = 0; i < RUNS; i++) {
      if (last) await last.close();
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the closed page's processes exit
      const { page, marks } = await visit(context, first);
      visits.push(marks);
      last = page;
    }
    const drops = [];
    for (let i = 0; i < RUNS; i++) drops.push(await photoToPrediction(last, SAMPLES[i % SAMPLES.length], 'efficientnet-lite0'));
    const vgg16 = await vgg16Drops(last);
    const version = browser.version();
    const col = (key) => visits.map((v) => v[key]);
    const lines = [
      '### 5.5 First look: the page on the CPU path',
      '',
      `\`node bench/browser/first_look.mjs\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: Chromium ${version} headless, navigator.gpu removed (the CPU path, ${threadsText(visits)}), dist/ served locally${ISOLATED ? ' with COOP/COEP' : ' without COOP/COEP'}${process.env.NO_SW ? ', service worker blocked' : ''}, the bundled EfficientNet-Lite0. One visit fills the caches (and stays 3 s, until the service worker has installed); then ${RUNS} visits, a second apart, in the same profile (a returning visitor), each timed from navigation start by the page's own marks; medians (min–max). *Photo → prediction*: a sample photo chosen on the open page until its five classes are shown (fetch, decode, scale, classify), ${RUNS} times, different photos; then VGG16 (seeded weights, f16) is chosen in the model menu and its file given, and the photos are timed again.`,
      '',
      '| step | from navigation start | target |',
      '|---|---|---|',
      `| HTML parsed (DOMContentLoaded) | ${cell(col('html'))} | |`,
      `| engine up (wasm compiled, \`Engine.create\`) | ${cell(col('engine'))} | |`,
      `| model loaded (weights from the cache, verified, built) | ${cell(col('model'))} | |`,
      `| **first prediction shown** | ${cell(col('prediction'))} | under 1 s |`,
      `| **photo → prediction** (Lite0) | ${cell(drops)} | under 0.15 s |`,
      vgg16
        ? `| **photo → prediction** (VGG16, after its weights file was given) | ${cell(vgg16)} | under 1 s |`
        : '| photo → prediction (VGG16) | not measured: bench/.cache/vgg16_seeded.safetensors is missing (`make bench` writes it) | under 1 s |',
      '',
    ];
    console.log(lines.join('\n'));
    await context.close();
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((err) => {
  console.error(`first_look: ${err.message}`);
  process.exit(1);
});
