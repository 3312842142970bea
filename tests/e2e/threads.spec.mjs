// The CPU path on every core: the threaded build where the page is cross-origin isolated (the test
// server sends COOP/COEP, as `make serve` does), the single-threaded one where it is not, with the
// same predictions; and a host that sends no such headers (GitHub Pages), whose page the service
// worker isolates from the second visit on.

import { BASE_PATH, DIST } from './settings.mjs';
import { serve } from '../../tools/serve.mjs';
import { WAIT, expect, note, openPage, predictionsFor, prepareContext, test, timing } from './helpers.mjs';

test.skip(({ backend }) => backend !== 'cpu', 'the CPU path only');

const threadsOf = (page) => page.evaluate(() => Number(document.documentElement.dataset.threads));
const coresOf = (page) => page.evaluate(() => Math.min(navigator.hardwareConcurrency || 1, 16));
const predictionsOf = (page) => page.$$eval('[data-testid="prediction"]', (items) => items.map((li) => ({ index: Number(li.dataset.index), prob: Number(li.dataset.prob) })));
const noticeOf = (page) => page.$eval('#backend-text', (p) => p.textContent.replace(/\s+/g, ' ').trim());

// The bundle from a second server that sends no COOP/COEP (another port: another origin, so
// another service worker and cache).
async function withPlainHost(run) {
  const { server, url } = await serve(DIST, { port: 0, base: BASE_PATH, crossOriginIsolated: false });
  try {
    await run(url);
  } finally {
    server.close();
  }
}

test('isolated, the CPU path computes on every core, and predicts as one thread does', async ({ page, browser }) => {
  const t0 = Date.now();
  await page.goto('#sample=cat');
  await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
  timing('threaded: open → cat predicted', Date.now() - t0);
  const cores = await coresOf(page);
  expect(await page.evaluate(() => self.crossOriginIsolated), 'the test server sends COOP/COEP').toBe(true);
  expect(await threadsOf(page), `threads (the browser offers ${cores} cores)`).toBe(cores);
  const notice = await noticeOf(page);
  note(`threaded: ${notice}`);
  if (cores > 1) expect(notice).toContain(`${cores} threads`);
  const threaded = await predictionsOf(page);

  await withPlainHost(async (url) => {
    const context = await browser.newContext({ serviceWorkers: 'block' });
    await prepareContext(context, { noWebGPU: true });
    try {
      const single = await openPage(context, `${url}#sample=cat`, 'one thread');
      await single.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
      expect(await threadsOf(single)).toBe(1);
      expect(await noticeOf(single)).toContain('not cross-origin isolated');
      const one = await predictionsOf(single);
      note(`top-5 threaded ${JSON.stringify(threaded)}; one thread ${JSON.stringify(one)}`);
      expect(one.map((p) => p.index), 'the same top-5 classes').toEqual(threaded.map((p) => p.index));
      for (let i = 0; i < one.length; i++) expect(Math.abs(one[i].prob - threaded[i].prob), `class ${one[i].index}`).toBeLessThan(1e-4);
    } finally {
      await context.close();
    }
  });
});

test('a host without COOP/COEP: one thread at the first visit, every core from the second', async ({ browser }) => {
  await withPlainHost(async (url) => {
    const context = await browser.newContext();
    await prepareContext(context, { noWebGPU: true });
    try {
      const page = await openPage(context, `${url}#sample=cat`, 'plain host');
      await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
      expect(await page.evaluate(() => self.crossOriginIsolated)).toBe(false);
      expect(await threadsOf(page)).toBe(1);
      await page.evaluate(async () => {
        await navigator.serviceWorker.ready;
        if (!navigator.serviceWorker.controller) await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
      });
      await page.reload();
      await page.waitForSelector(predictionsFor('cat.jpg'), { timeout: WAIT });
      const cores = await coresOf(page);
      expect(await page.evaluate(() => self.crossOriginIsolated), 'the service worker isolates the page').toBe(true);
      expect(await threadsOf(page)).toBe(cores);
      note(`second visit: ${await noticeOf(page)}`);
    } finally {
      await context.close();
    }
  });
});
