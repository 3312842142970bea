// VGG16 one click away: the model menu offers VGG16's ImageNet weights as a download from the URL
// in weights/manifest.json (timm's vgg16.tv_in1k on the Hugging Face hub). No network in tests: a
// local mirror serves a seeded VGG16 in timm's layout (f32, as timm stores it) and the hub's URL is
// answered with a redirect to it, as the hub itself redirects to its CDN. The steps share one
// browser context, as one visitor: the size warning, a cancelled download, a full one (converted
// to 16-bit, predictions and Grad-CAM on the downloaded network), then a second visit that loads
// from the browser's cache without downloading.

import { createReadStream, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import path from 'node:path';
import { BASE_URL, WAIT, expect, note, openPage, prepareContext, predictionsFor, shot, test, timing } from './helpers.mjs';
import { REPO } from './settings.mjs';
import { seededTimmVgg16 } from './seeded-vgg16.mjs';

test.skip(({ backend }) => backend !== 'cpu', 'a 553 MB network on SwiftShader takes minutes per step; the download path is the same');
test.describe.configure({ mode: 'serial' });

const MANIFEST = JSON.parse(readFileSync(path.join(REPO, 'weights/manifest.json'), 'utf8'));
const HUB_URL = MANIFEST.models.vgg16.url;
const FILE = path.join(REPO, 'tests/e2e/.cache/vgg16_timm_seeded.safetensors');

let mirror;
let mirrorUrl;
let context;
let page;
const hubRequests = [];
// The next answer of the mirror: 'slow' trickles 1 MB per 50 ms (so the download can be cancelled).
let pace = 'fast';

test.beforeAll(async ({ playwright, launchOptions, backend }) => {
  const t0 = Date.now();
  seededTimmVgg16(FILE);
  note(`seeded VGG16 (timm layout, f32): ${statSync(FILE).size} bytes, ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  mirror = createServer((req, res) => {
    const size = statSync(FILE).size;
    res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/octet-stream', 'Content-Length': size });
    const slow = req.url.includes('slow');
    const stream = createReadStream(FILE, { highWaterMark: 1 << 20 });
    if (!slow) return void stream.pipe(res);
    stream.on('data', (chunk) => {
      stream.pause();
      res.write(chunk);
      setTimeout(() => stream.resume(), 50);
    });
    stream.on('end', () => res.end());
    res.on('close', () => stream.destroy());
  });
  await new Promise((resolve) => mirror.listen(0, '127.0.0.1', resolve));
  mirrorUrl = `http://127.0.0.1:${mirror.address().port}${new URL(HUB_URL).pathname}`;
  // One visitor with a profile on disk, as a real browser has: the cache and the agreement to
  // download survive the last step's new visit (an incognito context's quota refuses 277 MB).
  const profile = mkdtempSync(path.join(tmpdir(), 'convlens-e2e-profile-'));
  context = await playwright.chromium.launchPersistentContext(profile, {
    ...launchOptions,
    baseURL: BASE_URL,
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    serviceWorkers: 'block',
  });
  await prepareContext(context, { noWebGPU: backend === 'cpu' });
  await context.route(HUB_URL, (route) => {
    hubRequests.push(pace);
    route.fulfill({ status: 302, headers: { Location: `${mirrorUrl}${pace === 'slow' ? '?slow' : ''}`, 'Access-Control-Allow-Origin': '*' } });
  });
});

test.afterAll(async () => {
  await context?.close();
  await new Promise((resolve) => (mirror ? mirror.close(resolve) : resolve()));
});

const status = () => page.textContent('[data-testid="model-status"]');

test('the menu offers VGG16 as a download and says how big it is before starting', async () => {
  page = await openPage(context, '#model=vgg16&sample=cat', 'vgg16');
  await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT }); // the bundled model meanwhile
  const option = await page.$eval('[data-testid="model-select"] option[value="vgg16"]', (o) => o.textContent);
  expect(option).toMatch(/^VGG16 .*\(ImageNet, 553\.4 MB download\)$/);
  await page.waitForSelector('[data-testid="download-box"]:not([hidden])');
  const warning = await page.textContent('[data-testid="download-box"]');
  note(`warning: ${warning.trim().replace(/\s+/g, ' ')}`);
  expect(warning).toContain('553.4 MB download from huggingface.co');
  expect(hubRequests, 'nothing is downloaded before the user asks').toEqual([]);
  await shot(page, 'vgg16-offer');
});

test('a download can be cancelled, and the page goes on with the model it had', async () => {
  pace = 'slow';
  await page.click('[data-testid="download-start"]');
  await page.waitForSelector('[data-testid="download-cancel"]:not([hidden])', { timeout: WAIT });
  await page.waitForFunction(() => /Downloading the file… [\d.]+ MB of 553\.4 MB/.test(document.querySelector('#model-progress-text').textContent), null, { timeout: WAIT });
  await shot(page, 'vgg16-downloading');
  await page.click('[data-testid="download-cancel"]');
  await page.waitForFunction(() => /The download was cancelled\./.test(document.querySelector('[data-testid="model-status"]').textContent), null, { timeout: WAIT });
  expect(await page.isHidden('[data-testid="model-error"]'), 'a cancel is not an error').toBe(true);
  expect(await status()).toMatch(/^EfficientNet-Lite0/);
});

test('the full download opens VGG16 (kept as 16-bit): predictions and Grad-CAM', async () => {
  pace = 'fast';
  const t0 = Date.now();
  await page.click('[data-testid="download-start"]');
  await page.waitForSelector(`${predictionsFor('cat.jpg')}[data-model="vgg16"]`, { timeout: WAIT });
  timing('VGG16 download (local mirror) → first prediction', Date.now() - t0);
  const text = await status();
  note(`status: ${text}`);
  expect(text).toMatch(/^VGG16 .*kept as 16-bit/);
  await page.click('[role="tab"][data-view="gradcam"]');
  await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-model="vgg16"]', { timeout: WAIT });
  await shot(page, 'vgg16-gradcam');
  expect(hubRequests).toEqual(['slow', 'fast']);
  const cached = await page.evaluate(async () => (await (await caches.open('convlens-weights-v1')).keys()).map((r) => r.url));
  note(`cached: ${cached.join(', ')}`);
});

test('a second visit opens VGG16 from the browser cache, without a download', async () => {
  const t0 = Date.now();
  await page.goto('about:blank');
  await page.goto('#model=vgg16&sample=cat');
  await page.waitForSelector(`${predictionsFor('cat.jpg')}[data-model="vgg16"]`, { timeout: WAIT });
  timing('VGG16 from the cache → first prediction', Date.now() - t0);
  const text = await status();
  note(`status: ${text}; hub requests: ${hubRequests.join(', ')}`);
  expect(text).toMatch(/from the browser cache, kept as 16-bit/);
  expect(await page.isHidden('[data-testid="download-box"]')).toBe(true);
  expect(hubRequests, 'the second visit downloaded again').toEqual(['slow', 'fast']);
});
