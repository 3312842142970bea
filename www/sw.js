// ConvLens's service worker: the page opens without a network once it has been seen.
//
// Network first, cache as the fallback: every successful same-origin GET (the page, its scripts,
// the wasm, the sample photos) is stored as it passes (unless the copy is the same version), and
// served from the cache only when the network fails. So an online visitor always gets the current files (no stale
// deploys), and an offline one gets the last ones seen. Its scope is its own folder, so the bundle
// works under any sub-path.
//
// It also makes the page cross-origin isolated where the host cannot send the headers (GitHub
// Pages): every response it serves carries COOP/COEP, so from the second visit on the page has
// SharedArrayBuffer and the CPU path runs the threaded build. (`coi-serviceworker` does the same,
// but a scope has one service worker, and this one also keeps the offline copy.)

const CACHE = 'convlens-app-v1';

// The app shell, fetched at install: the first visit loaded these before the worker existed.
// Every module of the page (app.js and js/*.js) must be here, or the page cannot start offline.
// (The weights are kept by the compute worker's own cache, not twice.)
const SHELL = [
  './',
  './index.html',
  './app.js',
  './js/activations.js',
  './js/catalogue.js',
  './js/backend-choice.js',
  './js/compute.js',
  './js/controls.js',
  './js/dom.js',
  './js/engine.js',
  './js/filters.js',
  './js/format.js',
  './js/gradcam.js',
  './js/faithfulness.js',
  './js/guided.js',
  './js/dream.js',
  './js/labels.js',
  './js/link.js',
  './js/models.js',
  './js/photo.js',
  './js/predictions.js',
  './js/render.js',
  './js/state.js',
  './worker.js',
  './style.css',
  './pkg/convlens.js',
  './pkg/convlens_bg.wasm',
  './weights/manifest.json',
  './samples/cat.jpg',
  './samples/coffee.jpg',
  './samples/astronaut.jpg',
  './samples/rocket.jpg',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // One missing file must not cost the others.
      await Promise.allSettled(SHELL.map((file) => cache.add(new Request(file, { cache: 'reload' }))));
      await self.skipWaiting();
    })(),
  );
});
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// Whether two responses are the same version of a file (by ETag, else Last-Modified and length):
// then the copy is not written again, which for the 31 MB wasm costs more than the page's start.
function sameVersion(a, b) {
  if (!a || !b) return false;
  const header = (r, name) => r.headers.get(name);
  if (header(a, 'etag') || header(b, 'etag')) return header(a, 'etag') === header(b, 'etag');
  const modified = header(a, 'last-modified');
  return Boolean(modified) && modified === header(b, 'last-modified') && header(a, 'content-length') === header(b, 'content-length');
}

// `response` with COOP/COEP added (a redirect, which the browser must see as it is, untouched).
function isolated(response) {
  if (response.type !== 'basic' && response.type !== 'default') return response;
  // Already isolated by the server: passed on as it is (rebuilding every response made the
  // page's first prediction 0.15–0.2 s later, measured in headless Chromium).
  const header = (name) => response.headers.get(name);
  if (header('Cross-Origin-Opener-Policy') === 'same-origin' && header('Cross-Origin-Embedder-Policy') === 'require-corp') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || request.headers.has('range')) return;
  if (url.pathname.endsWith('.safetensors')) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const [response, copy] = await Promise.all([fetch(request), cache.match(request)]);
        if (response.ok && response.type === 'basic' && !sameVersion(response, copy)) {
          // Stored without waiting; a full quota only costs the offline copy.
          event.waitUntil(cache.put(request, response.clone()).catch(() => {}));
        }
        return isolated(response);
      } catch (err) {
        const cached = await cache.match(request);
        if (cached) return isolated(cached);
        throw err;
      }
    })(),
  );
});
