#!/usr/bin/env node
// The browser half of `make bench`: ConvLens's wasm build (pkg/, on WebGPU and on its CPU
// fallback) against TF.js 4.22 (its webgpu and wasm backends) in ONE headless Chromium.
//
//   (cd bench/browser && npm ci)      # once: the pinned TF.js packages
//   node bench/browser/bench.mjs      # writes bench/.cache/browser.json and bench/.cache/browser.md
//
// For run r = 1..RUNS, for each case, for each implementation it opens a fresh page (a new browser
// context, so a fresh renderer process and per-implementation memory numbers), loads the weights
// (timed), times the operation twice (1st call: with shader compilation / warm-up; 2nd call: steady
// state), then reads memory. Runs are interleaved, as in bench/run_bench.py.
//
// Knobs (environment): QUICK=1, RUNS=5, FILTERS=, STEPS=, WEBGPU_VGG=0|1 (VGG16 on WebGPU; off in
// QUICK), OP_TIMEOUT_S= (per call), WASM_THREADS=1 (serve with COOP/COEP so that tfjs-backend-wasm
// picks its threaded SIMD binary, with its default pool, and ConvLens's threaded build (pkg/threads/)
// is measured too, on every core; =N: N threads for both), ONLY=gradcam,filters,activations, IMPLS=convlens-cpu,...,
// CHROMIUM=/usr/bin/chromium, OUT=bench/.cache/browser (writes OUT.json and OUT.md).

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { serve } from '../../tools/serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const cache = path.join(repo, 'bench/.cache');
const require = createRequire(path.join(repo, 'package.json'));
const { chromium } = require('playwright-core');

const env = process.env;
const QUICK = Boolean(env.QUICK && env.QUICK !== '0');
const RUNS = Number(env.RUNS || 5);
const FILTERS = Number(env.FILTERS || (QUICK ? 4 : 64));
const STEPS = Number(env.STEPS || (QUICK ? 2 : 40));
const WEBGPU_VGG = env.WEBGPU_VGG ? env.WEBGPU_VGG === '1' : !QUICK;
const OP_TIMEOUT_S = Number(env.OP_TIMEOUT_S || (QUICK ? 120 : 4 * 3600));
const WASM_THREADS = Number(env.WASM_THREADS || 0); // 0: not isolated; 1: tfjs's default pool; N > 1: N threads
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.resolve(repo, env.OUT || 'bench/.cache/browser'); // OUT.json and OUT.md
const ONLY = env.ONLY ? new Set(env.ONLY.split(',')) : null;
// ConvLens's threaded build needs the cross-origin-isolated page that WASM_THREADS serves.
const IMPLS = env.IMPLS ? env.IMPLS.split(',') : ['convlens-webgpu', 'convlens-cpu', ...(WASM_THREADS ? ['convlens-threads'] : []), 'tfjs-webgpu', 'tfjs-wasm'];
const TFJS_IMPLS = ['tfjs-webgpu', 'tfjs-wasm'];
const FILES = {
  vgg16: 'bench/.cache/vgg16_seeded.safetensors',
  lite0: 'weights/efficientnet-lite0.safetensors',
  photo: 'bench/.cache/cat_224.png',
  convlens: 'pkg/convlens_bg.wasm',
  tfjs: 'bench/browser/node_modules/@tensorflow/tfjs/package.json',
};
const MODEL_NAMES = { vgg16: 'VGG16 (seeded)', lite0: 'EfficientNet-Lite0' };
const IMPL_NAMES = {
  'convlens-webgpu': 'ConvLens webgpu',
  'convlens-cpu': 'ConvLens cpu (wasm, 1 thread)',
  'convlens-threads': 'ConvLens cpu (wasm, threads)',
  'tfjs-webgpu': 'TF.js webgpu',
  'tfjs-wasm': 'TF.js wasm',
};

function fail(message) {
  console.error(`bench/browser: ${message}`);
  process.exit(1);
}
const log = (m) => process.stderr.write(`${m}\n`);

for (const [what, file] of Object.entries(FILES)) {
  if (!existsSync(path.join(repo, file))) {
    const how = { vgg16: 'run bench/bench.sh (bench seed-vgg16)', photo: 'run bench/bench.sh (bench squash)', convlens: 'make wasm', tfjs: '(cd bench/browser && npm ci)' }[what] || '';
    fail(`${file} is missing${how ? `: ${how}` : ''}`);
  }
}
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} not found: apt-get install -y chromium`);

// ---------------------------------------------------------------------------------------------
// The matrix of measurements of one run.

function matrix() {
  // QUICK keeps the whole browser part to about 3 minutes on 2 shared cores: every run measures the
  // cheap pages (Lite0 Grad-CAM and activations on ConvLens cpu and TF.js wasm); run 1 alone
  // (`once`) adds Lite0 Grad-CAM and activations on both WebGPU implementations, and VGG16 Grad-CAM, activations and
  // the batched block3_conv1 grid on the CPU ones (a VGG16 page costs 10-20 s here, mostly loading
  // the weights). Left out of QUICK: VGG16 on WebGPU (SwiftShader: ~50-85 s a Grad-CAM call), the
  // single-filter grids, block5_conv1.
  const m = [];
  const add = (c, model, extra = {}, rule = () => 'all') => {
    if (ONLY && !ONLY.has(c)) return;
    for (const impl of IMPLS) {
      if (model === 'vgg16' && impl.endsWith('webgpu') && !WEBGPU_VGG) continue;
      const when = QUICK ? rule(impl) : 'all';
      if (when !== 'skip') m.push({ case: c, model, layer: extra.layer || '', mode: extra.mode || '', impl, once: when === 'once' });
    }
  };
  const gpu = (impl) => impl.endsWith('webgpu');
  add('gradcam', 'vgg16', {}, () => 'once');
  add('gradcam', 'lite0', {}, (i) => (gpu(i) ? 'once' : 'all'));
  for (const layer of QUICK ? ['block3_conv1'] : ['block3_conv1', 'block5_conv1']) {
    add('filters', 'vgg16', { layer, mode: 'batched' }, () => 'once');
    add('filters', 'vgg16', { layer, mode: 'single' }, () => 'skip');
  }
  add('activations', 'vgg16', {}, () => 'once');
  add('activations', 'lite0', {}, (i) => (gpu(i) ? 'once' : 'all'));
  return m;
}

const keyOf = (m) => [m.case, m.model, m.layer, m.mode, m.impl].join('/');

// ---------------------------------------------------------------------------------------------
// Chromium's processes (descendants of this node process), to attribute memory to a page.

function procStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function statusMib(pid, field) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** {pid: {type, cpu}} of Chromium's processes below us (renderer, gpu-process, ...). */
function chromiumProcesses() {
  const all = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStat(d);
    if (s) all.set(Number(d), s);
  }
  const mine = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 12; hops++) {
      if (p === process.pid) return true;
      p = all.get(p)?.ppid;
    }
    return false;
  };
  const out = {};
  for (const [pid, s] of all) {
    if (pid === process.pid || !mine(pid)) continue;
    let type = 'browser';
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      type = (cmd.match(/--type=([a-z-]+)/) || [, 'browser'])[1];
      if (type === 'utility' && /--utility-sub-type=([\w.]+)/.test(cmd)) type = `utility:${cmd.match(/--utility-sub-type=([\w.]+)/)[1]}`;
    } catch {
      continue;
    }
    out[pid] = { type, cpu: s.cpu };
  }
  return out;
}

const gpuPid = (procs) => Object.keys(procs).find((p) => procs[p].type === 'gpu-process');

/** The renderer that burned the most CPU since `before`: the page's own process. */
function busiestRenderer(before) {
  const now = chromiumProcesses();
  let best = null;
  let most = -1;
  for (const [pid, p] of Object.entries(now)) {
    if (p.type !== 'renderer') continue;
    const used = p.cpu - (before[pid]?.cpu ?? 0);
    if (used > most) {
      most = used;
      best = Number(pid);
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// One measurement: a fresh context and page.

function withTimeout(promise, seconds, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${seconds} s`), { timedOut: true })), seconds * 1000);
    }),
  ]);
}

const mib = (bytes) => (bytes == null ? null : bytes / 1048576);

async function measure(browser, base, m) {
  const r = { ...m };
  const t0 = Date.now();
  const procsBefore = chromiumProcesses();
  const gpuBefore = statusMib(gpuPid(procsBefore), 'VmRSS');
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text().slice(0, 300)));
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message.slice(0, 300)}`));
  page.on('crash', () => problems.push('the page crashed'));
  const cdp = await context.newCDPSession(page);
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage').catch(() => {});
    const h = await cdp.send('Runtime.getHeapUsage').catch(() => ({}));
    return { js_heap_mib: mib(h.usedSize), backing_store_mib: mib(h.backingStorageSize) };
  };
  const memory = async () => ({ ...(await page.evaluate(() => window.bench.memory())), ...(await heap()) });
  const call = (fn, arg, what) => withTimeout(page.evaluate(fn, arg), OP_TIMEOUT_S, what);
  let renderer = null;
  try {
    await page.goto(`${base}bench/browser/page.html${WASM_THREADS > 1 ? `?threads=${WASM_THREADS}` : ''}`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 });
    r.setup = await call((impl) => window.bench.setup(impl), m.impl, 'setup');
    r.load = await call((model) => window.bench.load(model), m.model, 'load');
    r.mem_load = await memory();
    const args = { layer: m.layer, mode: m.mode, filters: FILTERS, steps: STEPS };
    const first = await call(([name, a]) => window.bench.op(name, a), [m.case, args], '1st call');
    r.first_s = first.s;
    const second = await call(([name, a]) => window.bench.op(name, a), [m.case, args], '2nd call');
    r.second_s = second.s;
    r.check = second.out;
    // Untimed checks, in run 1, off WebGPU (each a whole forward pass there): Lite0's top-5 classes
    // (VGG16's seeded softmax is saturated: p = 1.00 for one class, 0 for the rest); TF.js's
    // Grad-CAM map for the logit, to compare with native ConvLens's (bench/.cache/results.json).
    if (m.case === 'gradcam' && m.run === 1 && !m.impl.endsWith('webgpu')) {
      if (m.model === 'lite0') r.predict = (await call(() => window.bench.op('predict', { top: 5 }), null, 'predict')).out;
      if (m.impl.startsWith('tfjs')) r.logit_cam = (await call(() => window.bench.op('gradcam', { score: 'logit' }), null, 'logit Grad-CAM')).out;
    }
    renderer = busiestRenderer(procsBefore);
    r.mem_end = await memory();
  } catch (e) {
    r.error = (e.timedOut ? e.message : `${e.message.split('\n')[0]}`).slice(0, 400) + (problems.length ? ` [page: ${problems[0]}]` : '');
    r.timed_out = Boolean(e.timedOut);
    renderer ||= busiestRenderer(procsBefore);
  }
  r.renderer_peak_rss_mib = renderer ? statusMib(renderer, 'VmHWM') : null;
  const gpuNow = statusMib(gpuPid(chromiumProcesses()), 'VmRSS');
  r.gpu_process_rss_delta_mib = gpuBefore != null && gpuNow != null ? gpuNow - gpuBefore : null;
  if (r.timed_out && renderer) {
    try {
      process.kill(renderer, 'SIGKILL'); // a renderer stuck in a call: ours, by its pid
    } catch {}
  }
  await withTimeout(context.close(), 30, 'closing the page').catch(() => {});
  r.page_wall_s = (Date.now() - t0) / 1000;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Statistics and the report (the formatting of bench/run_bench.py).

const median = (xs) => {
  const v = xs.filter((x) => x != null && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const h = v.length >> 1;
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
};
const g3 = (v) => Number(v.toPrecision(3)).toString();
const fmtS = (v) => (v == null ? '–' : v < 1 ? `${v.toFixed(3)} s` : v < 100 ? `${v.toFixed(2)} s` : `${v.toFixed(0)} s`);
function fmtSpread(xs) {
  const v = xs.filter((x) => x != null);
  if (!v.length) return '–';
  const m = median(v);
  return v.length < 2 ? fmtS(m) : `${fmtS(m)} <sub>(${g3(Math.min(...v))}–${g3(Math.max(...v))})</sub>`;
}
const fmtRatio = (v) => (v == null ? '–' : `${v.toFixed(2)}×`);
const fmtMib = (v) => (v == null ? '–' : `${Math.round(v).toLocaleString('en-US')} MiB`);
const fmtDelta = (v) => (v == null ? '–' : `${v >= 0.5 ? '+' : v <= -0.5 ? '−' : '±'}${Math.abs(Math.round(v)).toLocaleString('en-US')} MiB`);
const table = (header, rows) =>
  [`| ${header.join(' | ')} |`, `|${'---|'.repeat(header.length)}`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

/** ConvLens's native Grad-CAM maps for the logit (bench/run_bench.py's results.json), if any. */
function nativeLogitMaps() {
  try {
    const d = JSON.parse(readFileSync(path.join(cache, 'results.json'), 'utf8'));
    const out = {};
    for (const model of ['vgg16', 'lite0']) {
      const r = (d[`gradcam / ${model} /  /  / convlens-cpu`] || []).find((x) => x.check?.map);
      if (r) out[model] = r.check.map;
    }
    return out;
  } catch {
    return {};
  }
}

function report(results, meta) {
  const native = nativeLogitMaps();
  const byKey = new Map();
  for (const r of results) {
    const k = keyOf(r);
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k).push(r);
  }
  const runsOf = (m, impl) => byKey.get(keyOf({ ...m, impl })) || [];
  const ok = (m, impl) => runsOf(m, impl).filter((r) => !r.error);
  const present = (m) => IMPLS.filter((i) => byKey.has(keyOf({ ...m, impl: i })));
  const failed = (rs) => {
    const errs = rs.filter((r) => r.error);
    const timeouts = errs.filter((r) => r.timed_out).length;
    return timeouts === errs.length ? `timed out (${timeouts}×, limit ${OP_TIMEOUT_S} s a call)` : `failed (${errs.length}×): ${errs[0].error.slice(0, 160).replace(/\|/g, '\\|')}`;
  };
  /** Per run: ConvLens ÷ the fastest TF.js backend of that run (2nd call); median; and which was fastest. */
  const vsTfjs = (m, impl, field = 'second_s') => {
    const ratios = [];
    const fastest = [];
    for (let run = 1; run <= meta.runs; run++) {
      const mine = runsOf(m, impl).find((r) => r.run === run && !r.error);
      const peers = TFJS_IMPLS.map((i) => runsOf(m, i).find((r) => r.run === run && !r.error)).filter(Boolean);
      if (!mine || !peers.length) continue;
      const best = peers.reduce((a, b) => (pick(a, field) <= pick(b, field) ? a : b));
      ratios.push(pick(mine, field) / pick(best, field));
      fastest.push(best.impl);
    }
    const counts = {};
    fastest.forEach((f) => (counts[f] = (counts[f] || 0) + 1));
    const top = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
    return { ratio: median(ratios), fastest: top ? IMPL_NAMES[top[0]].replace('TF.js ', '') + (top[1] < fastest.length ? ` (${top[1]}/${fastest.length})` : '') : '–' };
  };
  /** Per run: ConvLens ÷ TF.js on the same kind of device (webgpu ÷ webgpu, cpu ÷ wasm); median. */
  const vsSame = (m, impl, field = 'second_s') => {
    const peer = impl === 'convlens-webgpu' ? 'tfjs-webgpu' : 'tfjs-wasm';
    const ratios = [];
    for (let run = 1; run <= meta.runs; run++) {
      const a = runsOf(m, impl).find((r) => r.run === run && !r.error);
      const b = runsOf(m, peer).find((r) => r.run === run && !r.error);
      if (a && b && pick(b, field)) ratios.push(pick(a, field) / pick(b, field));
    }
    return median(ratios);
  };
  const pick = (r, field) => (field === 'load_s' ? r.load?.load_s : r[field]);
  const col = (rs, f) => rs.map((r) => r[f]);
  const label = (impl, rs) => IMPL_NAMES[impl] + (rs.length < meta.runs ? ` (${rs.length} run${rs.length > 1 ? 's' : ''})` : '');
  const maxDiff = (a, b) => (a && b && a.length === b.length ? Math.max(...a.map((x, i) => Math.abs(x - b[i]))) : null);

  const L = [];
  L.push('## 5. In the browser\n');
  L.push(
    `Written by \`node bench/browser/bench.mjs\`${QUICK ? ' (QUICK=1)' : ''} on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC in ${(meta.wall_s / 60).toFixed(1)} min. ` +
      `One headless Chromium; for each of **${meta.runs} interleaved runs**, each case and each implementation gets a **fresh page** (its own browser context and renderer process), ` +
      'which fetches and loads the weights (timed), then times the operation twice in the page (`performance.now()`): **1st call** (includes shader compilation / warm-up) and ' +
      '**2nd call** (steady state). Medians over the runs, (min–max) in small print. **÷ fastest TF.js** = ConvLens 2nd call ÷ the faster of TF.js webgpu and TF.js wasm ' +
      'measured in the same run, median over runs (above 1×: ConvLens is slower); the *fastest TF.js* column names which backend that was. **÷ TF.js same kind**: the same ratio against TF.js on the same kind of device (ConvLens webgpu ÷ TF.js webgpu, ConvLens cpu ÷ TF.js wasm).\n',
  );
  const s = meta.setup;
  L.push(
    table(['', ''], [
      ['browser', `Chromium ${meta.chromium} headless (Debian), driven by playwright-core ${meta.playwright}; flags \`${meta.flags.join(' ')}\``],
      ['WebGPU adapter', `${s.adapter || '?'} — a **software** adapter on the same 2 CPU cores (no GPU here): it shows that the WebGPU paths work and what they cost without a GPU, not GPU speed`],
      ['ConvLens', `\`pkg/convlens_bg.wasm\` as found (built by \`make wasm\` ${meta.pkg_mtime}; ${(meta.pkg_bytes / 1048576).toFixed(1)} MiB), through its wasm API (\`Engine.create\`, \`load\`, \`setPhoto\`, \`gradcam\`, \`filters\`, \`activations\`) on the page's main thread; its CPU backend is burn \`flex\` in wasm32 (one thread)${IMPLS.includes('convlens-threads') ? '. *threads*: \`pkg/threads/\` (\`make wasm-threads\`: flex on rayon; the pool is the worker that calls it plus Web Workers; ' + (WASM_THREADS > 1 ? WASM_THREADS : 'navigator.hardwareConcurrency') + ' threads) in a dedicated worker, as the page runs it (on a main thread rayon\'s waits spin)' : ''}`],
      ['TF.js', `@tensorflow/tfjs ${meta.tfjs} with tfjs-backend-webgpu and tfjs-backend-wasm ${meta.tfjs} (npm, bench/browser/package-lock.json), UMD bundles; wasm binary: **${s.wasm_binary || '?'}**${s.wasm_threads > 1 ? ` (${s.wasm_threads} threads)` : ' (one thread' + (WASM_THREADS ? ': tfjs\'s default pool on 2 cores; WASM_THREADS=2 asks for 2' : ': the page is not cross-origin isolated; WASM_THREADS=1 serves it with COOP/COEP for the threaded binary') + ')'}`],
      ['TF.js models', 'written with tf ops in bench/browser/tfjs_impl.mjs (NHWC): VGG16 with `tf.fused.conv2d` (+bias+ReLU), `tf.maxPool`, `tf.fused.matMul`, caffe preprocessing; Lite0 with `tf.fused.conv2d` / `tf.fused.depthwiseConv2d` (+bias+ReLU6), TF-SAME = tf.js `\'same\'` padding, batch norms folded into the convs on the host at load (as ConvLens does). Both read **our** safetensors files (the same bytes ConvLens gets), f16 → f32 in JS'],
      ['weights, photo', `VGG16: \`${FILES.vgg16}\` (seeded He-normal, f16, ${(meta.bytes.vgg16 / 1048576).toFixed(0)} MiB); Lite0: \`${FILES.lite0}\`; photo \`${FILES.photo}\` (224×224) decoded once per page with \`createImageBitmap\` and given to both as RGBA`],
      ['machine', `${meta.machine.cpu}, ${meta.machine.cores} cores shared with other jobs (load average ${meta.machine.load} at the start, ${meta.load_end} at the end), ${meta.machine.ram}; Node ${process.version}`],
    ]),
  );
  L.push('');
  const notes = [];
  if (QUICK) {
    notes.push(
      `**QUICK=1** (a few minutes on 2 shared cores, so not everything, and not everything ${meta.runs}×): every run measures Lite0 Grad-CAM and Lite0 activations on ConvLens cpu and TF.js wasm; ` +
        '**run 1 only** adds Lite0 Grad-CAM and Lite0 activations on ConvLens webgpu and TF.js webgpu, and VGG16 Grad-CAM, VGG16 activations and the batched filter grid on ConvLens cpu and TF.js wasm (rows marked *(1 run)*; each VGG16 page costs 10–20 s here, mostly loading the 264 MiB of weights). ' +
        `Filter grids are **${FILTERS} filters × ${STEPS} steps** of \`block3_conv1\` only (not 64 × 40, no \`block5_conv1\`). ` +
        '**Left out**: VGG16 on WebGPU for both ConvLens and TF.js (SwiftShader: 50–85 s per VGG16 Grad-CAM call here), the single-filter grids (so no *speed-up of batching*). The full run (no QUICK) measures every case on all four.',
    );
  }
  else if (!WEBGPU_VGG) notes.push('VGG16 on WebGPU is left out (WEBGPU_VGG=0).');
  notes.push('Grad-CAM: ConvLens\'s wasm API differentiates the top class\'s softmax **probability** (`Score::Probability` in `Engine.gradcam`; the native table 1 uses the logit), so the TF.js peer does too; the maps are compared value by value.');
  notes.push('Max-pool gradient ties: TF.js\'s backends route the gradient of a 2×2 window with equal maxima differently: cpu to the first (as ConvLens and torch), webgpu to the last, wasm to the last, and **none at all for a window of zeros** (checked on tiny tensors). Post-ReLU maps are full of zero windows, so the TF.js wasm Grad-CAM of VGG16 at `block5_conv3` (whose channel weights average the gradient over every position) differs from ConvLens\'s by a few percent; the same activation differentiated on tfjs\'s cpu backend matched native ConvLens within 2e-6 when this benchmark was written. Filter ascent is not affected (the ReLU below a zero window stops its gradient anyway).');
  notes.push('Activations: ConvLens\'s wasm API renders one layer per call (`Engine.activations(layer)`, as the page asks when you pick a layer), so ConvLens makes 18 calls in layer order; builds since commit 6d3104c keep a walk through the layers for the current photo, so those 18 calls share one forward pass (older builds ran a forward pass per call). The page sets the photo again (untimed) before every timed call, which drops that walk, so the 2nd call computes as much as the 1st. TF.js makes one forward pass that returns the 18 activations.');
  if (meta.pkg_changed) notes.unshift(`**pkg/ was rebuilt during this run** (${meta.pkg_mtime} at the start, ${meta.pkg_changed} at the end): pages opened after the rebuild ran the new build, so the ConvLens rows mix two builds. Run again.`);
  L.push(notes.map((n) => `- ${n}`).join('\n') + '\n');

  const checkRef = (m) => ok(m, 'convlens-cpu').at(-1);

  // 5.1 Grad-CAM
  L.push('### 5.1 Grad-CAM on one 224×224 photo\n');
  L.push(
    'Forward to the last conv layer (VGG16 `block5_conv3`, Lite0 `_conv_head`), gradient of the top class\'s probability w.r.t. that layer\'s output, Chollet\'s map (channel weights = mean gradient over space, weighted mean, ReLU, ÷ max), ' +
      'then the jet heatmap and the overlay at 224×224. ConvLens: `engine.gradcam(layer, -1, "gradcam", "jet", 0.4)`. TF.js: `tf.valueAndGrad` of the softmax probability w.r.t. the layer\'s output (the forward to the layer is outside the tape), the map with tf ops, heatmap and overlay in JS. ' +
      '*Check*: top class and its probability; max |Δ| of the 0–1 map against ConvLens cpu (for the seeded VGG16 the softmax is saturated, p = 1.00 in f32, so the probability\'s gradient and the map are exactly 0 on every implementation: *map all 0*); ' +
      'in run 1, off WebGPU: Lite0\'s top-5 classes from `predict(5)` (same order as ConvLens cpu?) and their largest probability difference, and, for TF.js, an extra untimed Grad-CAM of the top class\'s **logit** compared with native ConvLens\'s logit map from table 1 (`bench/.cache/results.json`).\n',
  );
  let rows = [];
  for (const model of ['vgg16', 'lite0']) {
    const m = { case: 'gradcam', model, layer: '', mode: '' };
    const ref = checkRef(m);
    for (const impl of present(m)) {
      const rs = ok(m, impl);
      if (!rs.length) {
        rows.push([MODEL_NAMES[model], IMPL_NAMES[impl], failed(runsOf(m, impl)), '', '', '', '', '']);
        continue;
      }
      const conv = impl.startsWith('convlens');
      const v = conv ? vsTfjs(m, impl) : null;
      const c = rs.at(-1).check;
      let check = `class ${c.class}, p ${c.prob.toPrecision(3)}`;
      const allZero = c.map.every((x) => x === 0);
      if (allZero) check += ', map all 0';
      const p = runsOf(m, impl).find((r) => r.predict)?.predict;
      const refP = runsOf(m, 'convlens-cpu').find((r) => r.predict)?.predict;
      if (ref && impl !== 'convlens-cpu') {
        const d = maxDiff(c.map, ref.check.map);
        check += d == null ? '; map shape differs' : `; map max \\|Δ\\| ${d.toExponential(1)}`;
        if (p && refP) {
          const same = p.every((t, i) => t.index === refP[i].index);
          const dp = Math.max(...p.map((t, i) => Math.abs(t.prob - refP[i].prob)));
          check += `; top-5 ${same ? 'same' : 'DIFFERENT: ' + p.map((t) => t.index).join(',')}, max \\|Δp\\| ${dp.toExponential(1)}`;
        }
      } else if (p) {
        check += `; top-5 ${p.map((t) => t.index).join(', ')}`;
      }
      const logit = runsOf(m, impl).find((r) => r.logit_cam)?.logit_cam;
      if (logit) {
        const d = maxDiff(logit.map, native[model]);
        check += `; logit map (class ${logit.class}) vs native ConvLens ${d == null ? 'n/a (no bench/.cache/results.json)' : `max \\|Δ\\| ${d.toExponential(1)}`}`;
      }
      rows.push([MODEL_NAMES[model], label(impl, rs), fmtSpread(col(rs, 'first_s')), fmtSpread(col(rs, 'second_s')), fmtRatio(v?.ratio), v ? v.fastest : '', v ? fmtRatio(vsSame(m, impl)) : '', check]);
    }
  }
  L.push(table(['model', 'implementation', '1st call', '2nd call', '÷ fastest TF.js', 'fastest TF.js', '÷ TF.js same kind', 'check'], rows));
  L.push('');

  // 5.2 Filters
  L.push(`### 5.2 Filter grid: ${FILTERS} filters of VGG16, 64×64, ${STEPS} steps\n`);
  L.push(
    'The book\'s algorithm from ConvLens\'s seeded gray noise (SplitMix64, seed 0, reimplemented bit for bit in JS): loss = the filter\'s mean activation, `x += g / (sqrt(mean(g²)) + 1e-5)`, then `deprocess_image` and the 8-per-row grid. ' +
      `**batched**: all ${FILTERS} filters in one batch, each image's loss its own filter (ConvLens: \`engine.filters(layer, 0, ${FILTERS}, 64, ${STEPS}, "classic", 0, 0, cb)\`; TF.js: \`tf.grad\` w.r.t. the input batch, one-hot filter selection). ` +
      `**single**: ${FILTERS} calls of one filter each. *speed-up* = single ÷ batched, same implementation and run. *final loss*: mean over the filters of the last step's loss, which every implementation should reproduce (Δ against ConvLens cpu).\n`,
  );
  rows = [];
  for (const layer of ['block3_conv1', 'block5_conv1']) {
    for (const mode of ['batched', 'single']) {
      const m = { case: 'filters', model: 'vgg16', layer, mode };
      const ref = checkRef(m);
      for (const impl of present(m)) {
        const rs = ok(m, impl);
        if (!rs.length) {
          rows.push([`\`${layer}\``, mode, IMPL_NAMES[impl], failed(runsOf(m, impl)), '', '', '', '', '', '']);
          continue;
        }
        const v = impl.startsWith('convlens') ? vsTfjs(m, impl) : null;
        let speedup = '';
        if (mode === 'batched') {
          const ratios = [];
          for (let run = 1; run <= meta.runs; run++) {
            const a = ok({ ...m, mode: 'single' }, impl).find((r) => r.run === run);
            const b = rs.find((r) => r.run === run);
            if (a && b) ratios.push(a.second_s / b.second_s);
          }
          speedup = ratios.length ? `${median(ratios).toFixed(2)}×` : '';
        }
        const loss = median(rs.map((r) => r.check?.final_loss));
        const delta = ref && impl !== 'convlens-cpu' ? ` (Δ ${(loss - ref.check.final_loss).toExponential(1)})` : '';
        rows.push([`\`${layer}\``, mode, label(impl, rs), fmtSpread(col(rs, 'first_s')), fmtSpread(col(rs, 'second_s')), fmtRatio(v?.ratio), v ? v.fastest : '', v ? fmtRatio(vsSame(m, impl)) : '', speedup, loss == null ? '–' : `${loss.toPrecision(6)}${delta}`]);
      }
    }
  }
  L.push(table(['layer', 'mode', 'implementation', '1st call', '2nd call', '÷ fastest TF.js', 'fastest TF.js', '÷ TF.js same kind', 'speed-up of batching', 'final loss'], rows));
  L.push('');

  // 5.3 Activations
  L.push('### 5.3 Activations of every conv/pool layer, rendered to grids\n');
  L.push(
    'Every spatial layer (VGG16: 13 convs + 5 pools; Lite0: stem, 16 blocks, head), each channel standardized (−mean, ÷std, ×64, +128, clipped), viridis, enlarged to ≥ 32 px, 16 per row: ConvLens `engine.activations(layer, "viridis")` once per layer; TF.js one forward returning the 18 activations, read back, and the same grid drawn in JS (bench/browser/common.mjs). ' +
      '*Check*: the grids\' total pixels and the largest relative difference of the 18 layers\' mean activations against ConvLens cpu.\n',
  );
  rows = [];
  for (const model of ['vgg16', 'lite0']) {
    const m = { case: 'activations', model, layer: '', mode: '' };
    const ref = checkRef(m);
    for (const impl of present(m)) {
      const rs = ok(m, impl);
      if (!rs.length) {
        rows.push([MODEL_NAMES[model], IMPL_NAMES[impl], failed(runsOf(m, impl)), '', '', '', '', '']);
        continue;
      }
      const v = impl.startsWith('convlens') ? vsTfjs(m, impl) : null;
      const a = rs.at(-1).check;
      let check = `${a.layers} layers, ${a.grid_pixels.toLocaleString('en-US')} px`;
      if (ref && impl !== 'convlens-cpu' && ref.check.layer_means.length === a.layer_means.length) {
        const rel = Math.max(...a.layer_means.map((x, i) => Math.abs(x - ref.check.layer_means[i]) / Math.max(Math.abs(ref.check.layer_means[i]), 1e-6)));
        check += `; means within ${rel.toExponential(0)}`;
      }
      rows.push([MODEL_NAMES[model], label(impl, rs), fmtSpread(col(rs, 'first_s')), fmtSpread(col(rs, 'second_s')), fmtRatio(v?.ratio), v ? v.fastest : '', v ? fmtRatio(vsSame(m, impl)) : '', check]);
    }
  }
  L.push(table(['model', 'implementation', '1st call', '2nd call', '÷ fastest TF.js', 'fastest TF.js', '÷ TF.js same kind', 'check'], rows));
  L.push('');

  // 5.4 Load and memory
  L.push('### 5.4 Loading the weights, and what the page holds\n');
  L.push(
    'From the Grad-CAM pages. *Start*: ConvLens `init()` + `Engine.create(backend)`; TF.js: the UMD bundles + `tf.setBackend` + `tf.ready()`. *Fetch*: the weights file into an ArrayBuffer (local server). *Build*: ConvLens `load(bytes)` (parse, f16 → f32, batch norms folded, tensors to the device); TF.js: our safetensors parsed in JS (f16 → f32), conv weights transposed to tf layout with tf ops, batch norms folded (Lite0), tensors created ' +
      '(tfjs-webgpu uploads lazily, at the first call). *After load* / *after 2 calls*: ConvLens: the wasm linear memory; TF.js: `tf.memory().numBytes` (webgpu: bytes in GPU buffers in brackets) + the tfjs wasm heap (wasm backend). *JS heap*: V8 heap used after a GC (CDP `Runtime.getHeapUsage`; ArrayBuffers and wasm memory are not in it). ' +
      '*Renderer peak RSS*: VmHWM of the page\'s renderer process (it holds the wasm memories and the CPU copies); the WebGPU buffers live in the shared GPU process (SwiftShader), whose RSS growth during the page is the last column.\n',
  );
  rows = [];
  const memText = (mm) => {
    if (!mm) return '–';
    if (mm.tf_num_bytes != null) {
      const parts = [`tf ${fmtMib(mib(mm.tf_num_bytes))}`];
      if (mm.tf_bytes_in_gpu != null) parts[0] += ` [GPU ${fmtMib(mib(mm.tf_bytes_in_gpu))}]`;
      if (mm.wasm_bytes != null) parts.push(`wasm heap ${fmtMib(mib(mm.wasm_bytes))}`);
      return parts.join(', ');
    }
    return `wasm ${fmtMib(mib(mm.wasm_bytes))}`;
  };
  for (const model of ['vgg16', 'lite0']) {
    const m = { case: 'gradcam', model, layer: '', mode: '' };
    for (const impl of present(m)) {
      const rs = runsOf(m, impl).filter((r) => r.load);
      if (!rs.length) {
        rows.push([MODEL_NAMES[model], IMPL_NAMES[impl], failed(runsOf(m, impl)), '', '', '', '', '', '', '', '', '']);
        continue;
      }
      const v = impl.startsWith('convlens') ? vsTfjs(m, impl, 'load_s') : null;
      const last = rs.filter((r) => r.mem_end).at(-1) || rs.at(-1);
      rows.push([
        MODEL_NAMES[model],
        label(impl, rs),
        fmtS(median(rs.map((r) => r.setup?.start_s))),
        fmtS(median(rs.map((r) => r.load.fetch_s))),
        fmtS(median(rs.map((r) => r.load.build_s))),
        fmtSpread(rs.map((r) => r.load.load_s)),
        fmtRatio(v?.ratio),
        memText(last.mem_load),
        memText(last.mem_end),
        fmtMib(median(rs.map((r) => r.mem_end?.js_heap_mib ?? r.mem_load?.js_heap_mib))),
        fmtMib(median(rs.map((r) => r.renderer_peak_rss_mib))),
        fmtDelta(median(rs.map((r) => r.gpu_process_rss_delta_mib))),
      ]);
    }
  }
  L.push(table(['model', 'implementation', 'start', 'fetch', 'build', 'load = fetch + build', '÷ fastest TF.js', 'after load', 'after 2 calls', 'JS heap', 'renderer peak RSS', 'GPU process +RSS'], rows));
  L.push('');

  const errors = results.filter((r) => r.error);
  if (errors.length) {
    L.push('### Failed or timed-out measurements\n');
    for (const r of errors.slice(0, 20)) L.push(`- run ${r.run} \`${[r.case, r.model, r.layer, r.mode, r.impl].filter(Boolean).join(' ')}\`: ${r.error.replace(/\|/g, '\\|')}`);
    if (errors.length > 20) L.push(`- … and ${errors.length - 20} more (bench/.cache/browser.json)`);
    L.push('');
  }
  L.push(`Reproduce: \`(cd bench/browser && npm ci) && node bench/browser/bench.mjs\` (QUICK=1 for the short version); knobs: \`RUNS=\`, \`FILTERS=\`, \`STEPS=\`, \`WEBGPU_VGG=1\`, \`OP_TIMEOUT_S=\`, \`WASM_THREADS=1\`, \`ONLY=\`, \`IMPLS=\`. Raw per-page JSON: \`bench/.cache/browser.json\`.\n`);
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  const plan = matrix();
  const meta = {
    runs: RUNS,
    quick: QUICK,
    filters: FILTERS,
    steps: STEPS,
    webgpu_vgg: WEBGPU_VGG,
    op_timeout_s: OP_TIMEOUT_S,
    machine: {
      cpu: os.cpus()[0]?.model || '?',
      cores: os.cpus().length,
      ram: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    },
    tfjs: JSON.parse(readFileSync(path.join(repo, FILES.tfjs), 'utf8')).version,
    playwright: JSON.parse(readFileSync(require.resolve('playwright-core/package.json'), 'utf8')).version,
    pkg_bytes: (await stat(path.join(repo, FILES.convlens))).size,
    pkg_mtime: (await stat(path.join(repo, FILES.convlens))).mtime.toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    bytes: { vgg16: (await stat(path.join(repo, FILES.vgg16))).size },
    setup: {},
  };
  // The repository root (pkg/, weights/, bench/.cache/, bench/browser/), never cached, by the page's own server.
  const { server, url } = await serve(repo, { port: 0, crossOriginIsolated: Boolean(WASM_THREADS), cacheControl: 'no-store' });
  const flags = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  meta.flags = flags;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: flags });
  meta.chromium = browser.version();
  log(`bench/browser: Chromium ${meta.chromium}, TF.js ${meta.tfjs}; ${plan.length} pages in run 1, ${plan.filter((m) => !m.once).length} in the others, ${RUNS} runs${QUICK ? ' (QUICK)' : ''}; serving ${repo} at ${url}${WASM_THREADS ? ' with COOP/COEP' : ''}`);
  const results = [];
  mkdirSync(cache, { recursive: true });
  const save = () => writeFileSync(`${OUT}.json`, JSON.stringify({ meta, results }, null, 1));
  try {
    for (let run = 1; run <= RUNS; run++) {
      const tRun = Date.now();
      for (const m of plan) {
        if (m.once && run > 1) continue;
        const r = await measure(browser, url, { run, ...m });
        results.push(r);
        for (const k of ['adapter', 'wasm_binary', 'wasm_threads']) if (r.setup?.[k] != null) meta.setup[k] = r.setup[k];
        const what = [m.case, m.model, m.layer, m.mode, m.impl].filter(Boolean).join(' ');
        log(r.error ? `  run ${run} ${what}: ${r.error}` : `  run ${run} ${what}: load ${fmtS(r.load.load_s)}, 1st ${fmtS(r.first_s)}, 2nd ${fmtS(r.second_s)} (page ${r.page_wall_s.toFixed(1)} s)`);
        save();
      }
      log(`run ${run}/${RUNS} done in ${((Date.now() - tRun) / 1000).toFixed(0)} s`);
    }
  } finally {
    await browser.close().catch(() => {});
    server.close();
  }
  meta.load_end = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const pkgNow = (await stat(path.join(repo, FILES.convlens))).mtime.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  if (pkgNow !== meta.pkg_mtime) meta.pkg_changed = pkgNow;
  meta.wall_s = (Date.now() - t0) / 1000;
  save();
  const md = report(results, meta);
  writeFileSync(`${OUT}.md`, md);
  log(`bench/browser: wrote ${path.relative(repo, OUT)}.md and .json in ${(meta.wall_s / 60).toFixed(1)} min`);
}

main().catch((e) => fail(e.stack || e.message));
