// Which backend computes when the user left it on Auto, decided once per page: WebGPU on a real
// GPU, else the CPU (a software WebGPU adapter such as SwiftShader is slower than the CPU path).
// No imports, so index.html can ask early and start the worker on the build the choice needs,
// with a pool of `threadPoolSize()` (the benchmark's worker sizes its pool the same way).

let auto = null;

async function probe() {
  if (!navigator.gpu) return { backend: 'cpu', why: 'this browser does not offer WebGPU' };
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch {
    adapter = null;
  }
  if (!adapter) return { backend: 'cpu', why: 'WebGPU is present but found no usable GPU' };
  let info = adapter.info || {};
  if (!adapter.info && typeof adapter.requestAdapterInfo === 'function') {
    info = await adapter.requestAdapterInfo().catch(() => ({}));
  }
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const software = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render/i.test(text);
  if (info.isFallbackAdapter || adapter.isFallbackAdapter || software) {
    const name = /swiftshader/i.test(text) ? 'SwiftShader' : /llvmpipe|lavapipe/i.test(text) ? 'a Mesa software driver' : 'a software renderer';
    return { backend: 'cpu', why: `WebGPU here runs on ${name}, which is slower than the CPU backend` };
  }
  return { backend: 'webgpu', why: text ? `WebGPU on ${text}` : 'WebGPU' };
}

// {backend: 'webgpu' | 'cpu', why} for the preference 'auto', 'webgpu' or 'cpu'.
export async function chooseBackend(preference) {
  if (preference === 'webgpu' || preference === 'cpu') return { backend: preference, why: 'as chosen' };
  auto ??= probe();
  return auto;
}

// The preference a link asks for (#…&backend=cpu), else 'auto'.
export function linkedBackend(hash = location.hash) {
  const backend = new URLSearchParams(hash.replace(/^#/, '')).get('backend');
  return backend === 'webgpu' || backend === 'cpu' ? backend : 'auto';
}

// How many threads the CPU's threaded build runs (the compute worker and n − 1 more): every core
// the browser reports, at most 16.
export function threadPoolSize() {
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 16));
}
