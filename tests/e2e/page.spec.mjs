// The page with its bundled model (EfficientNet-Lite0), on each backend: the backend notice, a
// prediction, a dropped photo, Grad-CAM, activations and filter patterns, step by step on one
// page; on the CPU also cancelling a long run and a file that is not a photo. Then on their own
// pages: Auto's choice of backend, and the phone-sized layout.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BASE_URL, CAT_CLASSES, WAIT, bundledHash, canvasStats, dropSample, expect, newContext, note, openPage, overlayDiff, predictionsFor, setField, shot, shotPath, test, timing, topPrediction } from './helpers.mjs';
import { DIST } from './settings.mjs';

test.describe('the bundled model, step by step on one page', () => {
  test.describe.configure({ mode: 'serial' });

  let context;
  let page;
  let opened; // when the page was opened

  test.beforeAll(async ({ browser, backend }) => {
    context = await newContext(browser, backend);
    opened = Date.now();
    page = await openPage(context, `${BASE_URL}${bundledHash(backend, 'sample=coffee')}`, backend);
  });

  test.afterAll(async () => {
    await context?.close();
  });

  test('backend notice', async ({ backend }) => {
    await page.waitForSelector(`[data-testid="backend-notice"][data-backend="${backend}"]`, { timeout: WAIT });
    const text = await page.textContent('#backend-text');
    if (backend === 'cpu') expect(/CPU/.test(text) && /WebGPU/.test(text), `the CPU notice does not say why: “${text.trim()}”`).toBe(true);
    else expect(text, `the notice does not name the GPU: “${text.trim()}”`).toMatch(/GPU/);
    note(`notice: ${text.replace(/\s+/g, ' ').trim()}`);
  });

  test('first prediction (sample from the URL)', async () => {
    await page.waitForSelector(predictionsFor('coffee.jpg'), { timeout: WAIT });
    timing('page open → first prediction', Date.now() - opened);
    // Let the Grad-CAM the page starts for this photo finish, so the next timing is the drop's own.
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-photo="coffee.jpg"]', { timeout: WAIT });
  });

  test('drop the cat → top-1 is a cat class', async () => {
    const t0 = Date.now();
    await dropSample(page, 'cat.jpg');
    await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
    timing('drop → prediction', Date.now() - t0);
    const top = await topPrediction(page);
    note(`top-1: ${top.label.replace(/\s+/g, ' ').trim()} (index ${top.index})`);
    expect(CAT_CLASSES, `top-1 class ${top.index} is not a cat class (281–285)`).toContain(top.index);
    await shot(page, '1-prediction');
  });

  test('Grad-CAM overlay differs from the photo on the cat', async () => {
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-photo="cat.jpg"]', { timeout: WAIT });
    const top = await topPrediction(page);
    const t0 = Date.now();
    await page.click('[data-testid="prediction"] button');
    await page.waitForSelector(`[data-testid="gradcam-canvas"][data-state="ready"][data-class="${top.index}"]`, { timeout: WAIT });
    timing('Grad-CAM', Date.now() - t0);
    const hash = await page.evaluate(() => location.hash);
    expect(hash.includes(`class=${top.index}`) && hash.includes('view=gradcam'), `the URL hash does not follow the view: ${hash}`).toBe(true);
    const diff = await overlayDiff(page, 'cat.jpg', [0.3, 0.25, 0.4, 0.5]);
    note(`mean |overlay − photo| in the cat region: ${diff.toFixed(1)} / 255`);
    expect(diff, `the overlay barely differs from the photo (${diff.toFixed(2)})`).toBeGreaterThan(8);
    await shot(page, '2-gradcam');
  });

  test('opacity and colours redraw the overlay from the kept map, without computing it again', async () => {
    const status = () => page.textContent('#gradcam-status');
    const before = await status();
    const setOpacity = (v) => page.$eval('[data-testid="gradcam-opacity"]', (el, value) => {
      el.value = value;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, v);
    await setOpacity('0');
    // heat × 0 + photo is the photo (up to the two JPEG decoders' rounding).
    await expect.poll(() => overlayDiff(page, 'cat.jpg'), { timeout: WAIT }).toBeLessThan(3);
    await page.selectOption('[data-testid="gradcam-colormap"]', 'gray');
    await setOpacity('0.4');
    await expect.poll(() => overlayDiff(page, 'cat.jpg', [0.3, 0.25, 0.4, 0.5]), { timeout: WAIT }).toBeGreaterThan(8);
    expect(await page.getAttribute('[data-testid="gradcam-canvas"]', 'data-state')).toBe('ready');
    expect(await status(), 'the map was computed again').toBe(before);
    await page.selectOption('[data-testid="gradcam-colormap"]', 'jet');
  });

  test('Guided Grad-CAM: detail where the map points, dropped when the map changes', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'a backward per layer: slow on SwiftShader');
    await page.click('[data-testid="guided-run"]');
    await page.waitForSelector('[data-testid="guided-canvas"][data-state="ready"]', { timeout: WAIT });
    // Detail (spread around mid-gray) in the middle, where the cat's face is, and flat corners.
    const spread = await page.$eval('[data-testid="guided-canvas"]', (c) => {
      const std = (x, y, w, h) => {
        const d = c.getContext('2d').getImageData(x, y, w, h).data;
        const v = [];
        for (let i = 0; i < d.length; i += 4) v.push((d[i] + d[i + 1] + d[i + 2]) / 3);
        const m = v.reduce((a, b) => a + b, 0) / v.length;
        return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
      };
      const q = c.width / 4;
      return { width: c.width, centre: std(q, q, 2 * q, 2 * q), corner: std(0, 0, q / 2, q / 2) };
    });
    note(`guided: ${await page.textContent('#guided-status')} ${JSON.stringify(spread)}`);
    expect(spread.width, 'not at the input size').toBe(224);
    expect(spread.centre > 2 * spread.corner && spread.centre > 3, `no detail where the cat is: ${JSON.stringify(spread)}`).toBe(true);
    await shot(page, '2b-guided');
    await page.selectOption('[data-testid="gradcam-method"]', 'layercam');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="layercam"]', { timeout: WAIT });
    expect(await page.isHidden('#guided-figure'), 'the picture of the old map is still shown').toBe(true);
    await page.selectOption('[data-testid="gradcam-method"]', 'gradcam');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="gradcam"]', { timeout: WAIT });
  });

  test('faithfulness: curves and a table that compares Grad-CAM with LayerCAM', async ({ backend }) => {
    test.skip(backend !== 'cpu', '52 forward passes per map: minutes on SwiftShader');
    const t0 = Date.now();
    await page.click('[data-testid="faith-run"]');
    await page.waitForSelector('[data-testid="faith-table"] tr[data-method="gradcam"]', { timeout: WAIT });
    timing('faithfulness (Grad-CAM)', Date.now() - t0);
    await page.selectOption('[data-testid="gradcam-method"]', 'layercam');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="layercam"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="faith-run"]:not([disabled])', { timeout: WAIT });
    await page.click('[data-testid="faith-run"]');
    await page.waitForSelector('[data-testid="faith-table"] tr[data-method="layercam"]', { timeout: WAIT });
    await page.check('[data-testid="gradcam-eigen"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="layercam"][data-eigen="true"]', { timeout: WAIT });
    expect(await page.evaluate(() => location.hash), 'the link does not keep eigen-smooth').toContain('eigen=1');
    await page.waitForSelector('[data-testid="faith-run"]:not([disabled])', { timeout: WAIT });
    await page.click('[data-testid="faith-run"]');
    await page.waitForSelector('[data-testid="faith-table"] tr[data-method="layercam+eigen"]', { timeout: WAIT });
    const rows = await page.$$eval('[data-testid="faith-table"] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    note(`faithfulness: ${rows.map((r) => r.join(' ')).join(' | ')}`);
    expect(rows.map((r) => r[0])).toEqual(['Grad-CAM', 'LayerCAM', 'LayerCAM, eigen-smoothed', 'a random map']);
    const [gradcam, , , random] = rows;
    expect(Number(gradcam[1]), 'Grad-CAM deletes the cat no faster than a random map').toBeLessThan(Number(random[1]));
    expect(Number(gradcam[5]), 'the sanity check: the map did not change with a random head').toBeLessThan(0.95);
    expect(await page.$$eval('[data-testid="faith-chart"] polyline', (l) => l.length)).toBe(4);
    await shot(page, '2b-faithfulness');
    await page.uncheck('[data-testid="gradcam-eigen"]');
    await page.selectOption('[data-testid="gradcam-method"]', 'gradcam');
  });

  test('aug-smooth: six copies of the photo make the map, and the link keeps it', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'six backward passes: over a minute on SwiftShader');
    await page.check('[data-testid="gradcam-aug"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="gradcam"][data-aug="true"]', { timeout: WAIT });
    expect(await page.evaluate(() => location.hash)).toContain('aug=1');
    const diff = await overlayDiff(page, 'cat.jpg', [0.3, 0.25, 0.4, 0.5]);
    expect(diff, 'the aug-smoothed overlay barely differs from the photo').toBeGreaterThan(8);
    await page.uncheck('[data-testid="gradcam-aug"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-aug="false"]', { timeout: WAIT });
  });

  test('activations render, a click enlarges a channel', async () => {
    const t0 = Date.now();
    await page.click('[role="tab"][data-view="activations"]');
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-photo="cat.jpg"]', { timeout: WAIT });
    timing('activations', Date.now() - t0);
    const stats = await canvasStats(page, 'activations-canvas');
    expect(stats.width > 0 && stats.std > 5, `the activation grid looks blank (${JSON.stringify(stats)})`).toBe(true);
    // Click the middle of tile 2 (grid: 16 per row, 1 px margin and gaps).
    const box = await page.$eval('[data-testid="activations-canvas"]', (c) => {
      const r = c.getBoundingClientRect();
      return { left: r.left, top: r.top, w: r.width, h: r.height, cw: c.width, ch: c.height };
    });
    const layer = await page.$eval('[data-testid="activations-layer"]', (s) => s.value);
    const shape = await page.evaluate((name) => {
      const option = [...document.querySelectorAll('[data-testid="activations-layer"] option')].find((o) => o.value === name);
      return option.textContent.match(/(\d+)×(\d+)×(\d+)/).slice(1).map(Number);
    }, layer);
    const factor = Math.max(1, Math.floor(32 / Math.max(shape[1], shape[2])));
    const tile = shape[2] * factor;
    const cx = 1 + 2 * (tile + 1) + tile / 2;
    const cy = 1 + (shape[1] * factor) / 2;
    await page.mouse.click(box.left + (cx * box.w) / box.cw, box.top + (cy * box.h) / box.ch);
    await page.waitForFunction(() => document.querySelector('[data-testid="activations-channel"]').value === '2', null, { timeout: 10_000 });
    await page.waitForSelector('[data-testid="channel-canvas"][data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="sparsity-chart"] svg rect.fill', { timeout: WAIT });
    const bars = await page.$$eval('[data-testid="sparsity-chart"] rect.fill', (r) => r.length);
    expect(bars, `the sparsity chart has ${bars} bars`).toBeGreaterThan(3);
    await shot(page, '3-activations');
  });

  test('DeepDream grows the layer\'s patterns on the photo', async ({ backend }) => {
    test.skip(backend !== 'cpu', '20 forward and backward passes: slow on SwiftShader');
    await page.click('[data-testid="dream-start"]');
    await page.waitForSelector('[data-testid="dream-canvas"][data-state="ready"]', { timeout: WAIT });
    const stats = await canvasStats(page, 'dream-canvas');
    note(`dream: ${await page.textContent('#dream-status')}`);
    expect(stats.width > 0 && stats.std > 10, `the dream looks blank (${JSON.stringify(stats)})`).toBe(true);
    await shot(page, '3b-dream');
  });

  test('4 filter patterns with live progress', async () => {
    await page.click('[role="tab"][data-view="filters"]');
    await page.selectOption('[data-testid="filters-layer"]', '_blocks.1');
    await page.selectOption('[data-testid="filters-count"]', '4');
    await page.selectOption('[data-testid="filters-size"]', '32');
    await setField(page, 'filters-steps', '8');
    await page.evaluate(() => {
      const progress = document.querySelector('[data-testid="filters-progress"]');
      window.__progressSeen = [];
      new MutationObserver(() => window.__progressSeen.push(progress.value)).observe(progress, { attributes: true, attributeFilter: ['value'] });
    });
    const t0 = Date.now();
    await page.click('[data-testid="filters-start"]');
    await page.waitForSelector('[data-testid="filters-canvas"][data-state="ready"]', { timeout: WAIT });
    timing('filters (4 × 32 px, 8 steps)', Date.now() - t0);
    const seen = await page.evaluate(() => window.__progressSeen);
    const { value, max } = await page.$eval('[data-testid="filters-progress"]', (p) => ({ value: p.value, max: p.max }));
    expect(max === 8 && value === max, `the progress bar ended at ${value} of ${max}`).toBe(true);
    expect(seen.some((v) => v > 0 && v < max), `no intermediate progress was shown (values seen: ${seen.join(', ')})`).toBe(true);
    const stats = await canvasStats(page, 'filters-canvas');
    expect(stats.width > 0 && stats.std > 3, `the filter grid looks blank (${JSON.stringify(stats)})`).toBe(true);
    note(`progress values seen: ${[...new Set(seen)].join(', ')}`);
    await shot(page, '4-filters');
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.click('[data-testid="filters-animation"]')]);
    const gif = readFileSync(await download.path());
    note(`animation: ${download.suggestedFilename()}, ${gif.length} bytes`);
    expect(gif.subarray(0, 6).toString('latin1'), 'the animation is not a GIF').toBe('GIF89a');
  });

  test('a class as the objective: what the network thinks "goldfish" looks like', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'a whole forward and backward per step: slow on SwiftShader');
    await page.selectOption('[data-testid="filters-objective"]', 'class');
    expect(await page.isDisabled('[data-testid="filters-layer"]'), 'the layer menu still looks used').toBe(true);
    // Classes 500–503: no layer of Lite0 has that many filters, so the run fails unless the
    // objective reaches the engine.
    await setField(page, 'filters-first', '500');
    await page.click('[data-testid="filters-start"]');
    await page.waitForFunction(() => /classes 500–503/.test(document.querySelector('#filters-status').textContent), null, { timeout: WAIT });
    await page.waitForSelector('[data-testid="filters-canvas"][data-state="ready"]', { timeout: WAIT });
    expect(await page.textContent('#filters-status')).not.toMatch(/error/i);
    expect(await page.evaluate(() => location.hash)).toContain('objective=class');
    await shot(page, '4b-class-objective');
    await page.selectOption('[data-testid="filters-objective"]', 'channel');
    await setField(page, 'filters-first', '0');
  });

  test('lucid patterns, two diverse images per filter', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'a Fourier image and random transforms per step: slow on SwiftShader');
    await setField(page, 'filters-steps', '40');
    await page.selectOption('[data-testid="filters-mode"]', 'lucid');
    expect(await page.inputValue('[data-testid="filters-steps"]'), 'the book\'s 40 steps did not become lucid\'s 128').toBe('128');
    await setField(page, 'filters-steps', '12');
    await page.selectOption('[data-testid="filters-variants"]', '2');
    await page.click('[data-testid="filters-start"]');
    await page.waitForFunction(() => /2 diverse images each/.test(document.querySelector('#filters-status').textContent), null, { timeout: WAIT });
    await page.waitForSelector('[data-testid="filters-canvas"][data-state="ready"]', { timeout: WAIT });
    const stats = await canvasStats(page, 'filters-canvas');
    note(`lucid: ${await page.textContent('#filters-status')} ${JSON.stringify(stats)}`);
    expect(stats.width > 0 && stats.std > 3, `the lucid grid looks blank (${JSON.stringify(stats)})`).toBe(true);
    const hash = await page.evaluate(() => location.hash);
    expect(hash.includes('mode=lucid') && hash.includes('variants=2'), `the link lost the method: ${hash}`).toBe(true);
    await shot(page, '4c-lucid');
    await page.selectOption('[data-testid="filters-variants"]', '1');
    await page.selectOption('[data-testid="filters-mode"]', 'classic');
  });

  test('Cancel stops a long run, the page keeps working', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'a 400-step run is for the CPU backend (SwiftShader is too slow)');
    await setField(page, 'filters-steps', '400');
    await page.selectOption('[data-testid="filters-size"]', '64');
    await page.click('[data-testid="filters-start"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="filters-progress"]').value >= 1, null, { timeout: WAIT });
    const before = await page.evaluate(() => document.documentElement.dataset.engineStarts);
    const t0 = Date.now();
    await page.click('[data-testid="filters-cancel"]');
    await page.waitForFunction(() => /Cancelled/.test(document.querySelector('#filters-status').textContent), null, { timeout: 30_000 });
    timing('cancel', Date.now() - t0);
    const after = await page.evaluate(() => document.documentElement.dataset.engineStarts);
    expect(after, 'the worker did not hear the cancel: the page had to restart the engine').toBe(before);
    await page.click('[role="tab"][data-view="gradcam"]');
    await page.selectOption('[data-testid="gradcam-method"]', 'layercam');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-method="layercam"]', { timeout: WAIT });
    await shot(page, '4b-after-cancel');
  });

  test('a text file shows an error; a photo after it still works', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'the page, not the backend: once is enough');
    await page.setInputFiles('[data-testid="photo-input"]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo\n') });
    await page.waitForSelector('[data-testid="photo-error"]:not([hidden])', { timeout: 10_000 });
    const message = await page.textContent('[data-testid="photo-error"]');
    note(`message: ${message.trim()}`);
    expect(/notes\.txt/.test(message) && /image/.test(message), `unclear message: “${message}”`).toBe(true);
    await shot(page, '5-bad-file');
    await page.setInputFiles('[data-testid="photo-input"]', path.join(DIST, 'samples/rocket.jpg'));
    await page.waitForSelector(predictionsFor('rocket.jpg'), { timeout: WAIT });
    expect(await page.$eval('[data-testid="photo-error"]', (e) => e.hidden), 'the error message stayed after a good photo').toBe(true);
  });
});

test('Auto avoids the software GPU', async ({ page, backend }) => {
  test.skip(backend !== 'webgpu', 'needs WebGPU present');
  await page.goto('#sample=cat');
  const hasAdapter = await page.evaluate(async () => Boolean(navigator.gpu && (await navigator.gpu.requestAdapter())));
  await page.waitForSelector('[data-testid="backend-notice"][data-backend]:not([data-backend=""])', { timeout: WAIT });
  const { backend: chosen, text } = await page.$eval('[data-testid="backend-notice"]', (n) => ({ backend: n.dataset.backend, text: n.querySelector('#backend-text').textContent }));
  note(`Auto chose ${chosen}: ${text.replace(/\s+/g, ' ').trim()}`);
  if (hasAdapter) {
    const info = await page.evaluate(async () => {
      const a = await navigator.gpu.requestAdapter();
      return `${a.info?.vendor} ${a.info?.architecture} ${a.info?.description}`;
    });
    if (/swiftshader|llvmpipe|lavapipe/i.test(info)) expect(chosen, `Auto picked ${chosen} on a software adapter (${info})`).toBe('cpu');
  }
  await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
});

test.describe('on a phone', () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test('phone-sized screenshot', async ({ page, backend }) => {
    test.skip(backend !== 'cpu', 'the layout, not the backend: once is enough');
    await page.goto('#sample=cat');
    await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, '7-phone');
    await page.locator('#views').screenshot({ path: shotPath('7-phone-views') });
    expect(overflow, `the page scrolls sideways on a phone (${overflow} px too wide)`).toBeLessThanOrEqual(1);
  });
});
