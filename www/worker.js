// The ConvLens compute worker: owns the wasm Engine so the page never blocks. It also fetches,
// verifies (sha256) and caches weights files, reads model files the user gives, and keeps the
// bytes of the model loaded from the user's file, so reading it again with other options (say,
// another preprocessing) needs no new read.
//
// Protocol. The page posts {id, op, args, slot?}; the worker answers {id, ok: true, result} or
// {id, ok: false, error, code?, fatal?}, and may stream {id, progress} before that.
// Requests run one at a time, in order. A queued request is dropped (answered with code
// 'superseded') when a newer one with the same `slot` arrives: only the latest Grad-CAM, say,
// is worth computing. {op: 'cancel'} is handled at once: it asks a running filters job to stop;
// so is {op: 'prefetch', args: {url, sha256}}: it reads those weights from the cache for the next load.

// Two builds of the wasm (see the Makefile): pkg/ computes on WebGPU or on one CPU thread;
// pkg/threads/ computes on the CPU with every core (rayon's threads are Web Workers sharing the
// wasm's memory), which needs a cross-origin-isolated page (SharedArrayBuffer) and has no WebGPU.
const THREADS_POSSIBLE = self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';

const CACHE_NAME = 'convlens-weights-v1';
// A download of a built-in's weights bigger than this is kept (and cached) as ConvLens f16
// .safetensors: VGG16's 553 MB of f32 become 277 MB, half of what the tab holds and the cache keeps.
const COMPACT_ABOVE = 64e6;
// The header that marks a cached file as our f16 rewrite of the download (verified before).
const COMPACT_HEADER = 'X-ConvLens-Compact';

// The build this worker computes with: {wasm (the module), threads}. The page's first message
// ({op: 'prepare'}) names the backend, so the wasm compiles while the page is still loading (a
// failure is reported by `create`).
let build = null;
let engine = null;
let cancelRequested = false;
// The bytes of the loaded model's file, when the page asked to keep them: {sourceId, bytes, source}.
let kept = null;
const queue = [];
let running = false;

const post = (message, transfer = []) => self.postMessage(message, transfer);

// Imports a build's JS glue and starts its wasm. The wasm compiles as it downloads, beside the
// glue's import (wasm-bindgen's init would ask for it only once the glue has arrived). Served
// without the application/wasm type, streaming fails and the glue's init fetches it its own way.
async function startBuild(glue, binary) {
  const compiled = WebAssembly.compileStreaming(fetch(binary)).catch(() => binary);
  const wasm = await import(glue);
  await wasm.default({ module_or_path: await compiled });
  return wasm;
}

// Loads and starts the build for `backend`; the threaded one with a pool of `threads` (the page
// sizes it, so this worker imports nothing before it starts the download). It falls back to the
// single-threaded one when it cannot start (its files missing, or no memory for a shared
// 4 GiB-maximum buffer). Its pool computes at once, on this thread alone until its workers are up.
async function loadBuild(backend, threads) {
  if (backend === 'cpu' && THREADS_POSSIBLE && threads > 1) {
    try {
      const wasm = await startBuild('./pkg/threads/convlens.js', new URL('./pkg/threads/convlens_bg.wasm', import.meta.url));
      await wasm.initThreadPool(threads);
      return { wasm, threads };
    } catch (err) {
      console.warn(`ConvLens: the threaded build did not start (${err && err.message}); computing on one thread`);
    }
  }
  const wasm = await startBuild('./pkg/convlens.js', new URL('./pkg/convlens_bg.wasm', import.meta.url));
  return { wasm, threads: 1 };
}

// The started build's module (for the functions that need no engine).
async function wasmModule() {
  if (!build) throw new Error('the compute engine is not ready yet');
  return (await build).wasm;
}

// The build, started by the page's first {op: 'prepare', args: {backend, threads}}.
function prepare(backend, threads = 1) {
  build ??= loadBuild(backend, threads);
  build.catch(() => {});
  return build;
}

// A picture from the wasm, ready to post: {width, height, rgba} with its buffer transferred.
function picture(p, transfer) {
  if (!p) return null;
  const out = { width: p.width, height: p.height, rgba: p.rgba };
  transfer.push(p.rgba.buffer);
  return out;
}

function needEngine() {
  if (!engine) throw new Error('the compute engine is not ready yet');
  return engine;
}

async function sha256Hex(bytes) {
  if (!self.crypto || !self.crypto.subtle) {
    throw new Error('cannot verify the download: this page must be served over https (or from localhost) for the browser to offer SHA-256');
  }
  const digest = await self.crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function openCache() {
  try {
    return self.caches ? await self.caches.open(CACHE_NAME) : null;
  } catch {
    return null; // no Cache API here (insecure context, private mode): download every time
  }
}

const cancelled = () => Object.assign(new Error('the download was cancelled'), { code: 'cancelled' });

// Reads a response body in chunks, reporting bytes received; {op: 'cancel'} stops it.
async function readWithProgress(response, total, onProgress) {
  if (!response.body || !response.body.getReader) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress(bytes.length, total || bytes.length);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  let lastReport = 0;
  for (;;) {
    if (cancelRequested) {
      await reader.cancel().catch(() => {});
      throw cancelled();
    }
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = performance.now();
    if (now - lastReport > 80) {
      lastReport = now;
      onProgress(loaded, total);
    }
  }
  onProgress(loaded, total || loaded);
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

// The bytes of a file the user gave, read in chunks with progress.
async function readBlob(blob, report) {
  const total = blob.size;
  report({ phase: 'read', loaded: 0, total });
  if (!blob.stream) return new Uint8Array(await blob.arrayBuffer());
  const bytes = new Uint8Array(total);
  const reader = blob.stream().getReader();
  let loaded = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > total) throw new Error('the file changed while it was being read');
    bytes.set(value, loaded);
    loaded += value.length;
    const now = performance.now();
    if (now - lastReport > 80) {
      lastReport = now;
      report({ phase: 'read', loaded, total });
    }
  }
  report({ phase: 'read', loaded, total });
  return loaded === total ? bytes : bytes.slice(0, loaded);
}

// The key a weights file is cached under: its URL, with its checksum when known.
const cacheKey = (url, sha256) => (sha256 ? `${url}${url.includes('?') ? '&' : '?'}sha256=${sha256}` : url);

// The weights cached under `key`, when present and still matching `sha256` (else null).
async function weightsFromCache(key, sha256) {
  const cache = await openCache();
  const hit = cache && (await cache.match(key).catch(() => null));
  if (!hit) return null;
  const bytes = new Uint8Array(await hit.arrayBuffer());
  const compacted = hit.headers.get(COMPACT_HEADER) === 'f16';
  if (compacted || !sha256 || (await sha256Hex(bytes)) === sha256) return { bytes, cached: true, verified: Boolean(sha256), compacted };
  await cache.delete(key).catch(() => {});
  return null;
}

// The weights `prefetch` is reading from the cache while the engine starts: {key, read} (a
// promise of weightsFromCache's answer), taken by the next `load`.
let prefetched = null;

// The bytes of a weights file at `url`: from the cache when present (and still matching
// `sha256`; `early`: the prefetch of that file, if any), else downloaded with progress, checked,
// and cached. Weights of the built-in `model` bigger than COMPACT_ABOVE are rewritten as f16
// first (and cached so).
async function weightsFromUrl({ url, sha256, size, model }, report, early) {
  const key = cacheKey(url, sha256);
  cancelRequested = false;
  const hit = await (early?.key === key ? early.read : weightsFromCache(key, sha256));
  if (hit) {
    report({ phase: 'cache' });
    return hit;
  }
  const cache = await openCache();
  let response;
  try {
    response = await fetch(url, { mode: 'cors', credentials: 'omit' });
  } catch {
    throw new Error(
      `could not download ${url}: the server is unreachable or does not allow cross-origin requests (CORS). ` +
        'Download the file yourself and drop it here instead.',
    );
  }
  if (!response.ok) throw new Error(`could not download ${url}: the server answered ${response.status} ${response.statusText}`.trim());
  const total = Number(response.headers.get('Content-Length')) || size || 0;
  const bytes = await readWithProgress(response, total, (loaded, all) => report({ phase: 'download', loaded, total: all }));
  if (sha256) {
    report({ phase: 'verify' });
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) {
      throw new Error(`the downloaded weights do not match their checksum (sha256 ${actual.slice(0, 12)}…, expected ${sha256.slice(0, 12)}…): the file is damaged or was replaced; reload to try again`);
    }
  }
  let stored = bytes;
  if (model && bytes.length > COMPACT_ABOVE) {
    report({ phase: 'compact', total: bytes.length });
    stored = (await wasmModule()).compact(bytes, model); // refuses weights that are not `model`'s, with the reason
  }
  const compacted = stored !== bytes;
  let kept = false;
  if (cache) {
    try {
      const headers = { 'Content-Type': 'application/octet-stream', ...(compacted ? { [COMPACT_HEADER]: 'f16' } : {}) };
      await cache.put(key, new Response(stored, { headers }));
      kept = true;
    } catch {
      // No room (a full quota, a private window): it costs a new download next time.
    }
  }
  return { bytes: stored, cached: false, kept, verified: Boolean(sha256), compacted };
}

const ops = {
  async create({ backend }) {
    const { wasm, threads } = await prepare(backend);
    engine = null;
    engine = await wasm.Engine.create(backend);
    return { backend: engine.backend, threads: engine.backend === 'cpu' ? threads : 0, catalogue: wasm.catalogue() };
  },

  // Opens a model file: {sourceId, keep?, url?, sha256?, size?, compactAs?, blob?, companion?,
  // options?, fallback?}. `compactAs`: the built-in a big download is rewritten (f16) as.
  // `options` go to Engine.load as they are ({model?, preprocessing?, labels?, ...}). The bytes
  // come from `blob`, from `url` (cached, verified), or, when `sourceId` names the kept file, from
  // memory. With `fallback`, a file that cannot be read as `options.model` is tried once more
  // without it (the file may hold another network that is recognised on its own). On failure the
  // engine keeps its previous model (and this worker the previous bytes).
  async load({ sourceId, keep, url, sha256, size, compactAs, blob, companion, options = {}, fallback }, report) {
    const e = needEngine();
    const early = prefetched;
    prefetched = null;
    let bytes;
    let extra = null;
    let source = {};
    if (kept && sourceId !== undefined && kept.sourceId === sourceId) {
      ({ bytes, source, extra } = kept);
    } else if (blob) {
      bytes = await readBlob(blob, report);
      if (companion) extra = { name: companion.name, bytes: await readBlob(companion, report) };
    } else if (url) {
      const got = await weightsFromUrl({ url, sha256, size, model: compactAs }, report, early);
      bytes = got.bytes;
      source = { cached: got.cached, kept: got.kept, verified: got.verified, compacted: got.compacted };
    } else {
      throw new Error('there is no file to read the model from');
    }
    report({ phase: 'load', total: bytes.length });
    let description;
    let opened = 'as-asked';
    const companions = extra ? [extra] : [];
    try {
      description = e.load(bytes, { ...options, companions });
    } catch (err) {
      if (!fallback || !options.model || err instanceof WebAssembly.RuntimeError) throw err;
      const { model: _asked, ...rest } = options;
      try {
        description = e.load(bytes, { ...rest, companions });
        opened = 'recognised';
      } catch (again) {
        if (again instanceof WebAssembly.RuntimeError) throw again;
        throw err; // the first message says what was wrong with the file as the model asked for
      }
    }
    kept = keep ? { sourceId, bytes, source, extra } : null;
    return { info: description, opened, bytes: bytes.length, ...source };
  },

  async setLabels({ text }) {
    return needEngine().setLabels(text);
  },

  async setPhoto({ rgba, width, height }) {
    needEngine().setPhoto(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height);
    return null;
  },

  async predict({ top }) {
    return needEngine().predict(top);
  },

  // The map's overlay is the core's (the one the CLI writes); `overlay` redraws it in another
  // colormap or opacity without computing the map again.
  async gradcam({ layer, cls, method, eigenSmooth, augSmooth, colormap, opacity }, _report, transfer) {
    const options = { layer, class: cls, method, eigen_smooth: eigenSmooth, aug_smooth: augSmooth, colormap, opacity };
    const { info, overlay } = await needEngine().gradcam(options);
    return { info, overlay: picture(overlay, transfer) };
  },

  // Deletion / insertion curves, ROAD and the confidence change of the last map.
  async guided(_args, _report, transfer) {
    return picture(await needEngine().guided(), transfer);
  },

  async faithfulness({ steps }) {
    return needEngine().faithfulness(steps);
  },

  // The filter patterns' previews as an animated GIF (bytes).
  async animation({ frames, frameMs }, _report, transfer) {
    const gif = (await wasmModule()).animation(frames, frameMs);
    transfer.push(gif.buffer);
    return gif;
  },

  async dream({ layer, steps }, report, transfer) {
    cancelRequested = false;
    const out = await needEngine().dream(layer, steps, (step, total, value) => {
      report({ step, steps: total, value });
      return !cancelRequested;
    });
    return picture(out, transfer);
  },

  async overlay({ colormap, opacity }, _report, transfer) {
    return picture(needEngine().overlay(colormap, opacity), transfer);
  },

  async activations({ layer, colormap }, _report, transfer) {
    const { info, grid } = await needEngine().activations(layer, colormap);
    return { info, grid: picture(grid, transfer) };
  },

  async channel({ layer, index, colormap }, _report, transfer) {
    return picture(await needEngine().channel(layer, index, colormap), transfer);
  },

  async layerStats() {
    return needEngine().layerStats();
  },

  // The page's options go to the engine as they are (it names and checks every field).
  async filters(options, report, transfer) {
    const e = needEngine();
    cancelRequested = false;
    const onProgress = (step, total, loss, grid) => {
      const t = [];
      report({ step, steps: total, loss, grid: picture(grid, t) }, t);
      return !cancelRequested;
    };
    const grid = await e.filters(options, onProgress);
    return { grid: picture(grid, transfer) };
  },
};

async function run(job) {
  const { id, op, args } = job;
  const transfer = [];
  const report = (progress, t = []) => post({ id, progress }, t);
  try {
    const fn = ops[op];
    if (!fn) throw new Error(`unknown request '${op}'`);
    const result = await fn(args || {}, report, transfer);
    post({ id, ok: true, result }, transfer);
  } catch (err) {
    const message = (err && err.message) || String(err);
    // A trap in the wasm (a Rust panic) leaves the instance unusable: the page starts a new worker.
    const fatal = err instanceof WebAssembly.RuntimeError;
    post({ id, ok: false, error: message, code: err && err.code, fatal });
  }
}

async function pump() {
  if (running) return;
  running = true;
  while (queue.length) await run(queue.shift());
  running = false;
}

self.onmessage = (event) => {
  const job = event.data;
  if (job.op === 'cancel') {
    cancelRequested = true;
    return;
  }
  if (job.op === 'prepare') {
    prepare(job.args.backend, job.args.threads);
    return;
  }
  if (job.op === 'prefetch') {
    const key = cacheKey(job.args.url, job.args.sha256);
    prefetched = { key, read: weightsFromCache(key, job.args.sha256).catch(() => null) };
    return;
  }
  if (job.slot) {
    for (let i = queue.length - 1; i >= 0; i--) {
      if (queue[i].slot === job.slot) {
        post({ id: queue[i].id, ok: false, error: 'superseded', code: 'superseded' });
        queue.splice(i, 1);
      }
    }
  }
  queue.push(job);
  pump();
};

self.addEventListener('unhandledrejection', (event) => event.preventDefault());
