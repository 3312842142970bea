// Shared links and offline use, each on a fresh browser context (CPU backend): a link reproduces
// its view; a link made with the user's own file asks for it; a link to a model at a URL opens
// it with the sender's choices; after one visit the page opens and predicts offline, from the
// service worker's copy of the app shell.

import { readFileSync } from 'node:fs';
import { KERAS_MODEL, WAIT, dropFile, expect, note, predictionsFor, test } from './helpers.mjs';

test.skip(({ backend }) => backend !== 'cpu', 'links and the service worker, not the backend: once is enough');

test('a link reproduces model, view, layer, sample', async ({ page }) => {
  await page.goto('#model=efficientnet-lite0&view=activations&layer=_blocks.2&sample=astronaut');
  await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-photo="astronaut.jpg"]', { timeout: WAIT });
  const layer = await page.$eval('[data-testid="activations-layer"]', (s) => s.value);
  const selected = await page.$eval('[role="tab"][aria-selected="true"]', (t) => t.dataset.view);
  expect(layer === '_blocks.2' && selected === 'activations', `the link opened ${selected} at ${layer}`).toBe(true);
});

test("a link made with the user's own model waits for that file", async ({ page }) => {
  await page.goto('#model=file&view=gradcam&layer=conv2d&class=1&sample=cat');
  await page.waitForSelector(`${predictionsFor('cat.jpg')}[data-from-file="false"]`, { timeout: WAIT });
  const text = await page.textContent('[data-testid="model-note"]');
  const status = await page.textContent('[data-testid="model-status"]');
  expect(/link/.test(text) && /your model file/.test(status), `the page does not ask for the file: “${text.trim()}” / “${status.trim()}”`).toBe(true);
  expect(await page.$eval('[data-testid="model-select"]', (s) => s.value), 'the menu does not show “Your model”').toBe('file');
  await dropFile(page, KERAS_MODEL, { target: '#model-card' });
  await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"][data-class="1"]', { timeout: WAIT });
  const layer = await page.$eval('[data-testid="gradcam-layer"]', (s) => s.value);
  expect(layer, `the link's layer was not applied: ${layer}`).toBe('conv2d');
});

test("a link to a model at a URL opens it, with the sender's method and filter range", async ({ page, context }) => {
  // A stand-in for a public, CORS-enabled host (no network in tests).
  const url = 'https://models.example.test/shared/seq_aug_128.keras';
  await context.route(url, (route) =>
    route.fulfill({ status: 200, headers: { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/octet-stream' }, body: readFileSync(KERAS_MODEL) }),
  );
  const hash = new URLSearchParams({ model: 'file', weights: url, view: 'filters', first: '3', count: '4', mode: 'regularized', method: 'layercam', sample: 'cat' });
  await page.goto(`#${hash}`);
  await page.waitForFunction(() => /from seq_aug_128\.keras/.test(document.querySelector('[data-testid="model-status"]').textContent), null, { timeout: WAIT });
  await page.waitForSelector(`${predictionsFor('cat.jpg')}[data-from-file="true"]`, { timeout: WAIT });
  const controls = await page.evaluate(() => ({
    method: document.querySelector('[data-testid="gradcam-method"]').value,
    mode: document.querySelector('[data-testid="filters-mode"]').value,
    count: document.querySelector('[data-testid="filters-count"]').value,
    first: document.querySelector('[data-testid="filters-first"]').value,
    hash: location.hash,
  }));
  note(`controls: ${JSON.stringify(controls)}`);
  expect(controls.method === 'layercam' && controls.mode === 'regularized' && controls.count === '4' && controls.first === '3', `the link's choices were not applied: ${JSON.stringify(controls)}`).toBe(true);
  const again = new URLSearchParams(controls.hash.slice(1));
  expect(again.get('weights') === url && again.get('method') === 'layercam', `the page's own link drops the model's URL: ${controls.hash}`).toBe(true);
});

// A fresh context: the page's scripts were all loaded before the service worker existed, so they
// open offline only if its install-time list (www/sw.js SHELL) names every one of them.
test('after one visit the page opens and predicts offline (service worker)', async ({ page, context }) => {
  await page.goto('#sample=coffee');
  await page.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
  const uncached = await page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    if (!registration.active) return null;
    const loaded = [location.href.split('#')[0], ...performance.getEntriesByType('resource').map((e) => e.name)];
    const shell = loaded.filter((url) => new URL(url).origin === location.origin && /(\/|\.html|\.js|\.css)$/.test(new URL(url).pathname));
    const missing = [];
    for (const url of shell) if (!(await caches.match(url))) missing.push(new URL(url).pathname);
    return missing;
  });
  expect(uncached, 'no active service worker').not.toBeNull();
  expect(uncached, "files the page loaded that the service worker did not keep (add them to www/sw.js's SHELL)").toEqual([]);
  await context.setOffline(true);
  try {
    await page.reload();
    await page.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
  } finally {
    await context.setOffline(false);
  }
});
