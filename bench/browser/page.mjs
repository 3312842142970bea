// One measurement's page: `bench.mjs` opens it fresh for each (run, case, implementation), then
// calls window.bench.setup(impl), .load(model), .op(...) twice, .memory(). Every timing is taken
// here with performance.now(); the driver only orchestrates (and enforces the timeouts).

const TFJS = '/bench/browser/node_modules/@tensorflow';
const WEIGHTS = { vgg16: '/bench/.cache/vgg16_seeded.safetensors', lite0: '/weights/efficientnet-lite0.safetensors' };
const PHOTO = '/bench/.cache/cat_224.png';

let impl = null;
let photo = null;

function script(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

async function decodePhoto(url) {
  const bitmap = await createImageBitmap(await (await fetch(url)).blob(), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  return { width: bitmap.width, height: bitmap.height, rgba: new Uint8ClampedArray(data) };
}

const seconds = (t0) => (performance.now() - t0) / 1000;

// convlens_impl.mjs's functions, run in ./convlens_worker.mjs (the threaded build belongs off the
// main thread, as on the page). An ArrayBuffer argument (the weights) is transferred, not copied.
function inWorker() {
  const worker = new Worker(new URL('./convlens_worker.mjs', import.meta.url), { type: 'module' });
  const pending = new Map();
  let next = 0;
  worker.onmessage = ({ data }) => {
    const p = pending.get(data.id);
    pending.delete(data.id);
    if (data.ok) p.resolve(data.result);
    else p.reject(new Error(data.error));
  };
  const call = (fn, args) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, fn, args }, args.filter((a) => a instanceof ArrayBuffer));
    });
  return new Proxy({}, { get: (_, fn) => (...args) => call(fn, args) });
}

window.bench = {
  /** impl: convlens-webgpu | convlens-cpu | convlens-threads (in a worker) | tfjs-webgpu | tfjs-wasm. */
  async setup(name) {
    const t0 = performance.now();
    const [family, backend] = name.split('-');
    if (family === 'tfjs') {
      await script(`${TFJS}/tfjs/dist/tf.min.js`);
      await script(backend === 'wasm' ? `${TFJS}/tfjs-backend-wasm/dist/tf-backend-wasm.min.js` : `${TFJS}/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
      impl = await import('./tfjs_impl.mjs');
    } else {
      impl = backend === 'threads' ? inWorker() : await import('./convlens_impl.mjs');
    }
    const info = await impl.setup(backend, { threads: Number(new URLSearchParams(location.search).get('threads') || 0) });
    return { ...info, start_s: seconds(t0), cross_origin_isolated: self.crossOriginIsolated };
  },

  /** Fetches the weights file and builds the network; the photo is set untimed afterwards. */
  async load(model) {
    let t0 = performance.now();
    const buffer = await (await fetch(WEIGHTS[model])).arrayBuffer();
    const fetch_s = seconds(t0);
    const bytes = buffer.byteLength; // before a worker takes the buffer
    t0 = performance.now();
    const info = await impl.load(model, buffer);
    const build_s = seconds(t0);
    photo = await decodePhoto(PHOTO);
    await impl.setPhoto(photo);
    return { fetch_s, build_s, load_s: fetch_s + build_s, bytes, layers: info.layers.length };
  },

  /** One timed call of an operation: gradcam | filters | activations | predict (photo set anew first). */
  async op(name, args = {}) {
    // Untimed: set the photo again, which drops what the engine keeps for the current photo
    // (ConvLens's activation walk), so that the 2nd call computes as much as the 1st.
    await impl.setPhoto(photo);
    const t0 = performance.now();
    let out;
    if (name === 'filters') {
      const { layer, filters, steps, mode, size = 64 } = args;
      if (mode === 'single') {
        const losses = [];
        for (let i = 0; i < filters; i++) losses.push((await impl.filters(layer, i, 1, size, steps)).final_loss);
        out = { final_loss: losses.reduce((a, b) => a + b, 0) / losses.length, losses };
      } else {
        out = await impl.filters(layer, 0, filters, size, steps);
      }
    } else if (name === 'predict') {
      out = await impl.predict(args.top || 5);
    } else if (name === 'gradcam') {
      out = await impl.gradcam(args.score || 'probability');
    } else {
      out = await impl[name]();
    }
    return { s: seconds(t0), out };
  },

  memory() {
    return impl.memory();
  },
};
window.benchReady = true;
