// ConvLens's threaded build in a dedicated worker, where the page's compute worker runs it too:
// there rayon's waits are real waits, while on a page's main thread (where Atomics.wait is not
// allowed) they spin and take a core from the pool. page.mjs calls convlens_impl.mjs's functions
// through this, one message per call: {id, fn, args} → {id, ok, result | error}.

import * as impl from './convlens_impl.mjs';

self.onmessage = async ({ data: { id, fn, args } }) => {
  try {
    self.postMessage({ id, ok: true, result: await impl[fn](...args) });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String((err && err.message) || err) });
  }
};
