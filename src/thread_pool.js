// The Web Workers of the threaded build's rayon pool (src/thread_pool.rs). After
// wasm-bindgen-rayon 1.3's workerHelpers.no-bundler.js (Copyright 2022 Google Inc., Apache
// License 2.0), changed to spawn n − 1 workers (the caller is the pool's thread 0), not to wait
// for them (the pool already runs; each worker joins it when its instance is up), and to start
// the module with one options object.

function waitForMsgType(target, type) {
  return new Promise((resolve) => {
    target.addEventListener('message', function onMsg({ data }) {
      if (data == null || data.type !== type) return;
      target.removeEventListener('message', onMsg);
      resolve(data);
    });
  });
}

// This file is also each worker's script: it waits for its start message (a page may post others).
waitForMsgType(self, 'convlens_pool_worker_init').then(async (data) => {
  const pkg = await import(data.mainJS);
  await pkg.default({ module: data.module, memory: data.memory });
  pkg.startWorker(data.receiver);
});

// Kept so that no browser collects a worker that only shares the memory (Firefox bug 1702191).
let workers;

export async function startWorkers(module, memory, count, receiver, mainJS) {
  const init = { type: 'convlens_pool_worker_init', module, memory, receiver, mainJS };
  // The script as a blob, so it starts even when the page's files come from another origin.
  const script = URL.createObjectURL(await fetch(import.meta.url).then((r) => r.blob()));
  workers = Array.from({ length: count }, () => {
    const worker = new Worker(script, { type: 'module' });
    // The pool computes without it, only slower: say so, and go on.
    worker.addEventListener('error', (e) => console.warn(`ConvLens: a worker of the thread pool did not start (${e.message || 'unknown error'})`));
    worker.postMessage(init);
    return worker;
  });
  // Revoked once the workers have had time to load it (a worker fetches its script after this returns).
  setTimeout(() => URL.revokeObjectURL(script), 60_000);
}
