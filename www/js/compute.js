// The client of the compute worker (../worker.js, which owns the wasm Engine): one promise per
// request, progress callbacks, and requests in a named slot that a newer one supersedes.

import { threadPoolSize } from './backend-choice.js';

class ComputeError extends Error {
  constructor(message, { code, fatal } = {}) {
    super(message);
    this.code = code;
    this.fatal = fatal;
  }
}

// Rejections that only mean "a newer request replaced this one": never shown.
export const isQuiet = (err) => err && (err.code === 'superseded' || err.code === 'restarted');

// A worker told at once which backend it will compute on (and with how many threads), so it
// loads that build of the wasm.
function spawn(backend) {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  worker.postMessage({ op: 'prepare', args: { backend, threads: threadPoolSize() } });
  return { worker, backend, failed: null };
}

class Compute {
  constructor() {
    this.worker = null;
    this.pending = new Map();
    this.nextId = 1;
    this.onCrash = () => {};
    this.early = null;
  }

  // Starts a worker on the build `backend` needs (see ../worker.js). The first start adopts the
  // worker index.html started early, when it was started for the same backend.
  start(backend) {
    const early = this.early;
    this.early = null;
    if (early && early.backend === backend) {
      this.worker = early.worker;
    } else {
      if (early) early.worker.terminate();
      this.worker = spawn(backend).worker;
    }
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.crashed(event.message);
    };
    if (early?.failed) setTimeout(() => this.crashed(early.failed), 0);
    this.worker.onmessageerror = () => this.failAll(new ComputeError('a message from the compute engine could not be read'));
  }

  // index.html: a worker that compiles the wasm while the page's other modules load.
  startEarly(backend) {
    if (this.worker) return; // the page started first
    const early = spawn(backend);
    early.worker.onerror = (e) => {
      e.preventDefault();
      early.failed = e.message || 'it failed to load';
    };
    this.early = early;
  }

  crashed(message) {
    const detail = message ? `: ${message}` : '';
    this.failAll(new ComputeError(`the compute engine could not be loaded (pkg/convlens.js and its .wasm)${detail}`, { fatal: true }));
    this.onCrash();
  }

  stop() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.failAll(new ComputeError('restarted', { code: 'restarted' }));
  }

  failAll(err) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }

  receive(message) {
    const entry = this.pending.get(message.id);
    if (!entry) return;
    if (message.progress) {
      if (entry.onProgress) {
        try {
          entry.onProgress(message.progress);
        } catch {
          // Drawing a preview must never break the computation.
        }
      }
      return;
    }
    this.pending.delete(message.id);
    if (message.ok) entry.resolve(message.result);
    else entry.reject(new ComputeError(message.error, message));
  }

  // Runs `op` in the worker. Requests run in order; a queued one is dropped when a newer request
  // with the same `slot` arrives.
  call(op, args = {}, { slot, transfer = [], onProgress } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.worker) {
        reject(new ComputeError('the compute engine is not running'));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args, slot }, transfer);
    });
  }

  // Has the worker read `weights` ({url, sha256}) from the browser's cache now, while its wasm
  // starts, for the `load` that follows; a miss does nothing (that load downloads the file).
  prefetch(weights) {
    if (this.worker) this.worker.postMessage({ op: 'prefetch', args: weights });
  }

  cancel() {
    if (this.worker) this.worker.postMessage({ op: 'cancel' });
  }
}

export const compute = new Compute();
