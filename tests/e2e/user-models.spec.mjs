// The user's own models, dropped on one page in turn: an ONNX model with its external-data file
// (CPU), a Keras 3 model on which every view works (both backends), and files the engine cannot
// use, which leave the model loaded before them working (CPU).

import path from 'node:path';
import { BASE_URL, KERAS_BAD, KERAS_MODEL, ONNX_MODEL, WAIT, bundledHash, canvasStats, dropFile, dropMany, dropSample, engineStarts, expect, expectOneSentence, localFile, modelError, newContext, note, openPage, overlayDiff, predictionsFor, referenceOf, setField, shot, test, timing, userModelFrom } from './helpers.mjs';

const PHOTO = 'cat.jpg';

test.describe("the user's models, one after another on one page", () => {
  test.describe.configure({ mode: 'serial' });

  let context;
  let page;

  test.beforeAll(async ({ browser, backend }) => {
    context = await newContext(browser, backend);
    page = await openPage(context, `${BASE_URL}${bundledHash(backend, 'sample=cat')}`, backend);
    // The bundled model first, as a visitor sees it before dropping a model; its Grad-CAM done, so
    // the timings below are the user's model's own (the worker runs one request at a time).
    await page.waitForSelector(predictionsFor(PHOTO), { timeout: WAIT });
    await page.waitForSelector(`[data-testid="gradcam-canvas"][data-state="ready"][data-photo="${PHOTO}"]`, { timeout: WAIT });
  });

  test.afterAll(async () => {
    await context?.close();
  });

  test('an ONNX model and its .onnx.data dropped together open as “Your model”', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'the reader, not the backend: once is enough');
    const reference = referenceOf(ONNX_MODEL);
    const [inH, inW] = reference.input_hw;
    const t0 = Date.now();
    await dropMany(page, [localFile(`${ONNX_MODEL}.data`), localFile(ONNX_MODEL)], '[data-testid="dropzone"]');
    await userModelFrom(page, ONNX_MODEL);
    timing('drop .onnx + .data → model loaded', Date.now() - t0);
    const status = (await page.textContent('[data-testid="model-status"]')).replace(/\s+/g, ' ').trim();
    note(`status: ${status}`);
    expect(status.includes(`${inH}×${inW} input`) && status.includes('5 classes') && /ONNX/.test(status), `the status does not describe the ONNX model: “${status}”`).toBe(true);
    await page.waitForSelector(`[data-testid="predictions"][data-state="ready"][data-from-file="true"][data-photo="${PHOTO}"]`, { timeout: WAIT });
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.length);
    expect(rows, `${rows} predictions for a 5-class model`).toBe(5);
    expect(await page.$eval('[data-testid="preprocessing-select"]', (s) => s.value), 'an ONNX file is not read with torchvision preprocessing by default').toBe('torch');
    await page.click('[role="tab"][data-view="gradcam"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    await shot(page, 'onnx-gradcam');
  });

  // The Keras model, dropped on the page (not on the model card): every view works on it.
  const reference = referenceOf(KERAS_MODEL);
  const [inH, inW] = reference.input_hw;
  const convs = reference.layers.filter((l) => /Conv2D$/.test(l.class_name) && l.shape[1] * l.shape[2] > 1).map((l) => l.name);
  const camLayer = reference.gradcam[0].layer;

  test('a Keras model dropped on the page opens as “Your model”', async () => {
    const t0 = Date.now();
    await dropFile(page, KERAS_MODEL, { target: '[data-testid="dropzone"]' });
    await userModelFrom(page, KERAS_MODEL);
    timing('drop .keras → model loaded', Date.now() - t0);
    const status = (await page.textContent('[data-testid="model-status"]')).replace(/\s+/g, ' ').trim();
    note(`status: ${status}`);
    expect(status.includes(`${inH}×${inW} input`) && status.includes('2 classes') && /Keras/.test(status), `the status does not describe the model: “${status}”`).toBe(true);
    const menu = await page.$eval('[data-testid="model-select"]', (s) => ({ value: s.value, text: s.selectedOptions[0]?.textContent }));
    expect(/^Your model: /.test(menu.text) && menu.text.includes(`${inH}×${inW}`), `the model menu shows “${menu.text}”`).toBe(true);
    expect(await page.$eval('[data-testid="model-error"]', (e) => e.hidden), 'a model error is shown').toBe(true);
    await page.waitForSelector(`[data-testid="predictions"][data-state="ready"][data-from-file="true"][data-photo="${PHOTO}"]`, { timeout: WAIT });
    timing('→ first prediction', Date.now() - t0);
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.map((li) => ({ index: Number(li.dataset.index), prob: Number(li.dataset.prob), label: li.querySelector('.label').textContent })));
    note(`predictions: ${rows.map((r) => `${r.label} ${(r.prob * 100).toFixed(1)}%`).join(', ')}`);
    expect(rows.length, `${rows.length} predictions for a 2-class model`).toBe(2);
    const total = rows.reduce((a, r) => a + r.prob, 0);
    expect(Math.abs(total - 1), `the two probabilities add up to ${total}`).toBeLessThan(1e-3);
    expect(await page.isVisible('[data-testid="preprocessing-select"]'), 'no preprocessing choice for a model from a file').toBe(true);
    expect(await page.$eval('[data-testid="preprocessing-select"]', (s) => s.value), 'a Keras file is not read with raw pixels by default').toBe('raw');
  });

  test('Grad-CAM on the Keras model: default layer, a heatmap, any class', async () => {
    await page.click('[role="tab"][data-view="gradcam"]');
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    const layer = await page.$eval('[data-testid="gradcam-layer"]', (s) => s.value);
    expect(layer, `Grad-CAM starts at ${layer}, not the last map ${camLayer}`).toBe(camLayer);
    const caption = await page.textContent('#gradcam-caption');
    note(caption.trim());
    const [, mh, mw] = reference.layers.find((l) => l.name === camLayer).shape;
    expect(caption, `the caption does not give the ${mh}×${mw} map: “${caption}”`).toContain(`${mh}×${mw} map`);
    const diff = await overlayDiff(page, PHOTO);
    note(`mean |overlay − photo|: ${diff.toFixed(1)} / 255`);
    expect(diff, `the overlay barely differs from the photo (${diff.toFixed(2)})`).toBeGreaterThan(8);
    const other = await page.$eval('[data-testid="prediction"]:nth-child(2)', (li) => Number(li.dataset.index));
    const t0 = Date.now();
    await page.click('[data-testid="prediction"]:nth-child(2) button');
    await page.waitForSelector(`[data-testid="gradcam-canvas"][data-state="ready"][data-from-file="true"][data-class="${other}"]`, { timeout: WAIT });
    timing('Keras Grad-CAM', Date.now() - t0);
    await page.selectOption('[data-testid="gradcam-layer"]', convs[1]);
    await page.waitForFunction((l) => document.querySelector('#gradcam-caption').textContent.includes(`layer ${l} `), convs[1], { timeout: WAIT });
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
    await shot(page, 'keras-gradcam');
    await page.selectOption('[data-testid="gradcam-layer"]', camLayer);
  });

  test('activations of every layer with a map; filter patterns of a conv layer', async () => {
    await page.click('[role="tab"][data-view="activations"]');
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"][data-from-file="true"]', { timeout: WAIT });
    const layers = await page.$$eval('[data-testid="activations-layer"] option', (os) => os.map((o) => o.value));
    note(`${layers.length} layers with a map: ${layers.join(', ')}`);
    for (const conv of convs) expect(layers, `the activations view does not list the conv layer ${conv}`).toContain(conv);
    const t0 = Date.now();
    for (const layer of layers) {
      await page.selectOption('[data-testid="activations-layer"]', layer);
      await page.waitForFunction(
        (l) => {
          const canvas = document.querySelector('[data-testid="activations-canvas"]');
          return canvas.dataset.state === 'ready' && document.querySelector('#activations-caption').textContent.startsWith(`${l}:`);
        },
        layer,
        { timeout: WAIT },
      );
      const stats = await canvasStats(page, 'activations-canvas');
      expect(stats.width, `the activations of ${layer} are empty`).toBeGreaterThan(0);
    }
    timing(`Keras activations (${layers.length} layers)`, Date.now() - t0);
    await page.selectOption('[data-testid="activations-layer"]', convs[0]);
    await page.waitForSelector('[data-testid="activations-canvas"][data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="sparsity-chart"] svg rect.fill', { timeout: WAIT });
    await shot(page, 'keras-activations');

    const filterLayers = await page.$$eval('[data-testid="filters-layer"] option', (os) => os.map((o) => o.value));
    for (const conv of convs) expect(filterLayers, `the filter-pattern view does not list the conv layer ${conv}`).toContain(conv);
    await page.click('[role="tab"][data-view="filters"]');
    await page.selectOption('[data-testid="filters-layer"]', convs[1]);
    await page.selectOption('[data-testid="filters-count"]', '4');
    await page.selectOption('[data-testid="filters-size"]', '32');
    await setField(page, 'filters-steps', '4');
    await setField(page, 'filters-first', '0');
    const t1 = Date.now();
    await page.click('[data-testid="filters-start"]');
    await page.waitForFunction(() => /Done/.test(document.querySelector('#filters-status').textContent) || !document.querySelector('#filters-error').hidden, null, { timeout: WAIT });
    const error = await page.$eval('#filters-error', (e) => (e.hidden ? '' : e.textContent));
    expect(error, `filter patterns failed: ${error}`).toBe('');
    timing('Keras filters (4 × 32 px, 4 steps)', Date.now() - t1);
    const stats = await canvasStats(page, 'filters-canvas');
    expect(stats.width > 0 && stats.std > 1, `the filter grid looks blank (${JSON.stringify(stats)})`).toBe(true);
    await page.click('[role="tab"][data-view="gradcam"]');
  });

  test('preprocessing and class names for the Keras model', async () => {
    const before = await page.$eval('[data-testid="prediction"]', (li) => li.dataset.prob);
    const t0 = Date.now();
    await page.selectOption('[data-testid="preprocessing-select"]', 'unit');
    await page.waitForFunction(
      (prob) => {
        const list = document.querySelector('[data-testid="predictions"]');
        const first = list.querySelector('[data-testid="prediction"]');
        return list.dataset.state === 'ready' && first && first.dataset.prob !== prob;
      },
      before,
      { timeout: WAIT },
    );
    timing('preprocessing change → prediction', Date.now() - t0);
    expect(await page.textContent('[data-testid="model-status"]'), 'the model changed with its preprocessing').toMatch(/^Your model/);
    await page.selectOption('[data-testid="preprocessing-select"]', 'raw');
    await page.waitForFunction(
      (prob) => {
        const list = document.querySelector('[data-testid="predictions"]');
        const first = list.querySelector('[data-testid="prediction"]');
        return list.dataset.state === 'ready' && first && Math.abs(Number(first.dataset.prob) - Number(prob)) < 1e-4;
      },
      before,
      { timeout: WAIT },
    );

    await page.click('[data-testid="labels-open"]');
    await page.waitForSelector('[data-testid="labels-dialog"][open]');
    await page.fill('[data-testid="labels-text"]', 'cat\ndog\nbird');
    await page.click('[data-testid="labels-apply"]');
    await page.waitForSelector('[data-testid="labels-error"]:not([hidden])', { timeout: 10_000 });
    const wrong = (await page.textContent('[data-testid="labels-error"]')).trim();
    note(`three names for two classes: ${wrong}`);
    expectOneSentence(wrong);
    await page.fill('[data-testid="labels-text"]', 'cat\ndog');
    await page.click('[data-testid="labels-apply"]');
    await page.waitForSelector('[data-testid="labels-dialog"]', { state: 'hidden', timeout: WAIT });
    await page.waitForFunction(
      () => {
        const labels = [...document.querySelectorAll('[data-testid="prediction"] .label')].map((l) => l.textContent);
        return document.querySelector('[data-testid="predictions"]').dataset.state === 'ready' && labels.length === 2 && labels.includes('cat') && labels.includes('dog');
      },
      null,
      { timeout: WAIT },
    );
    await page.waitForSelector('[data-testid="gradcam-canvas"][data-state="ready"]', { timeout: WAIT });
    const caption = await page.textContent('#gradcam-caption');
    expect(caption, `the Grad-CAM caption does not use the new names: “${caption}”`).toMatch(/“(cat|dog)”/);
    const hash = await page.evaluate(() => decodeURIComponent(location.hash));
    expect(hash.includes('labels=cat\ndog') && hash.includes('model=file'), `the link does not keep the short class names: ${hash}`).toBe(true);
    await shot(page, 'keras-model');
  });

  // Files the engine cannot use: one sentence in the model's error box, and the model loaded
  // before them keeps working.
  test('unusable model files: one sentence, the previous model still predicts', async ({ backend }) => {
    test.skip(backend !== 'cpu', 'the readers, not the backend: once is enough');
    const starts = await engineStarts(page);
    const status = (await page.textContent('[data-testid="model-status"]')).trim();
    await dropFile(page, KERAS_BAD, { target: '#model-card' });
    const first = await modelError(page);
    note(`${path.basename(KERAS_BAD)}: ${first}`);
    expectOneSentence(first);
    expect((await page.textContent('[data-testid="model-status"]')).trim(), 'the model status changed after a refused file').toBe(status);
    await dropSample(page, 'rocket.jpg');
    await page.waitForSelector(`${predictionsFor('rocket.jpg')}[data-from-file="true"]`, { timeout: WAIT });

    await dropMany(page, [{ name: 'notes.txt', data: Buffer.from('not a model\n').toString('base64'), type: 'text/plain' }], '#model-card');
    const second = await modelError(page, first);
    note(`notes.txt: ${second}`);
    expectOneSentence(second);
    await shot(page, 'bad-model');
    await page.click('.sample[data-sample="coffee"]');
    await page.waitForSelector(`${predictionsFor('coffee.jpg')}[data-from-file="true"]`, { timeout: WAIT });
    const rows = await page.$$eval('[data-testid="prediction"]', (lis) => lis.length);
    expect(rows, `the previous (2-class) model gave ${rows} predictions`).toBe(2);
    expect(await engineStarts(page), 'the engine had to restart after a bad file (a panic in the wasm?)').toBe(starts);
  });
});
