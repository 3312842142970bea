// Shared by the TF.js side of the browser benchmark (and testable in Node): our safetensors
// format read in plain JS, ConvLens's SplitMix64 noise bit for bit, and the host-side pictures
// (colormaps, the activation grid, deprocess_image, the pattern grid, the Grad-CAM overlay) written
// the way src/picture and src/viz write them.

// ---------------------------------------------------------------------------------------------
// safetensors: 8-byte little-endian header length, a JSON header, then the raw tensors.

let F16_TABLE = null;

/** f16 bit pattern -> f32, for all 65536 patterns (built once, 256 KiB). */
function f16Table() {
  if (F16_TABLE) return F16_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  F16_TABLE = t;
  return t;
}

/**
 * Parses a ConvLens safetensors file. Returns {meta, tensors: Map(name -> {shape, data: Float32Array})}.
 * f16 is widened to f32 on the host, as ConvLens does (WeightSet::from_safetensors).
 */
export function parseSafetensors(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const meta = header.__metadata__ || {};
  delete header.__metadata__;
  const base = 8 + n;
  const tensors = new Map();
  const table = f16Table();
  for (const [name, info] of Object.entries(header)) {
    const [start, end] = info.data_offsets;
    const count = info.shape.reduce((a, b) => a * b, 1);
    let data;
    if (info.dtype === 'F16') {
      const offset = base + start;
      const halves = offset % 2 === 0 ? new Uint16Array(buffer, offset, count) : new Uint16Array(buffer.slice(offset, base + end));
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = table[halves[i]];
    } else if (info.dtype === 'F32') {
      data = new Float32Array(buffer.slice(base + start, base + end));
    } else {
      throw new Error(`tensor '${name}' is ${info.dtype}; expected F16 or F32`);
    }
    tensors.set(name, { shape: info.shape, data });
  }
  return { meta, tensors };
}

// ---------------------------------------------------------------------------------------------
// SplitMix64 uniform noise of src/viz/filters.rs (`uniform_noise`), in 32-bit halves (BigInt
// would take ~1 s for a 64-image batch).

/** Low 64 bits of (ah:al) * (bh:bl), as [hi, lo] unsigned 32-bit. */
function mul64(ah, al, bh, bl) {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  const hi = (carry + Math.imul(al, bh) + Math.imul(ah, bl)) >>> 0;
  return [hi, lo];
}

/** `len` uniform values in [0, 1), bit-identical to ConvLens's `uniform_noise(seed, len)` (seed < 2^32). */
export function uniformNoise(seed, len) {
  const GH = 0x9e3779b9, GL = 0x7f4a7c15;
  let sh = (0 ^ GH) >>> 0, sl = (seed ^ GL) >>> 0; // state = seed ^ golden
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    const lo = (sl + GL) >>> 0; // state += golden
    sh = (sh + GH + (lo < sl ? 1 : 0)) >>> 0;
    sl = lo;
    // z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    let zh = sh, zl = sl;
    let xl = (zl ^ ((zl >>> 30) | (zh << 2))) >>> 0, xh = (zh ^ (zh >>> 30)) >>> 0;
    [zh, zl] = mul64(xh, xl, 0xbf58476d, 0x1ce4e5b9);
    // z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    xl = (zl ^ ((zl >>> 27) | (zh << 5))) >>> 0;
    xh = (zh ^ (zh >>> 27)) >>> 0;
    [zh, zl] = mul64(xh, xl, 0x94d049bb, 0x133111eb);
    // ((z ^ (z >> 31)) >> 40): only the high word matters.
    const top = (zh ^ (zh >>> 31)) >>> 0;
    out[i] = (top >>> 8) / 16777216;
  }
  return out;
}

/** The same with BigInt, for the self-test. */
export function uniformNoiseBigInt(seed, len) {
  const M = (1n << 64n) - 1n, G = 0x9e3779b97f4a7c15n;
  let state = BigInt(seed) ^ G;
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    state = (state + G) & M;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    out[i] = Number((z ^ (z >> 31n)) >> 40n) / 16777216;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pictures, as src/picture/colormap.rs, src/viz/activations.rs and src/viz/filters.rs draw them.

const VIRIDIS = [
  [68, 1, 84], [71, 13, 96], [72, 24, 106], [72, 35, 116], [71, 45, 123], [69, 55, 129], [66, 64, 134], [62, 73, 137],
  [59, 82, 139], [55, 91, 141], [51, 99, 141], [47, 107, 142], [44, 114, 142], [41, 122, 142], [38, 130, 142], [35, 137, 142],
  [33, 145, 140], [31, 152, 139], [31, 160, 136], [34, 167, 133], [40, 174, 128], [50, 182, 122], [63, 188, 115], [78, 195, 107],
  [94, 201, 98], [112, 207, 87], [132, 212, 75], [152, 216, 62], [173, 220, 48], [194, 223, 35], [216, 226, 25], [236, 229, 27],
  [253, 231, 37],
];

function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * 32;
  const i = Math.min(Math.floor(x), 31);
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(VIRIDIS[i][k] * (1 - f) + VIRIDIS[i + 1][k] * f));
}

function jet(t) {
  t = Number.isNaN(t) ? 0 : Math.min(Math.max(t, 0), 1);
  const ramp = (c) => Math.round(Math.min(Math.max(1.5 - Math.abs(4 * t - c), 0), 1) * 255);
  return [ramp(3), ramp(2), ramp(1)];
}

/** 256 RGB levels of a colormap, packed as 0xAABBGGRR for Uint32 stores (little-endian RGBA). */
function levels(map) {
  const out = new Uint32Array(256);
  for (let l = 0; l < 256; l++) {
    const [r, g, b] = map(l / 255);
    out[l] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  return out;
}
let VIRIDIS_LEVELS = null;

/**
 * The book's activation grid of one layer (src/viz/activations.rs `layer_grid`), from an NHWC
 * activation of one image: each channel −mean, /std, ×64, +128, clipped, viridis, enlarged to
 * ≥ 32 px (nearest), 16 per row, 1 px apart on (24, 24, 28). Returns {width, height, rgba, mean}.
 */
export function layerGrid(values, h, w, c) {
  VIRIDIS_LEVELS ||= levels(viridis);
  const hw = h * w;
  const mean = new Float64Array(c);
  const varsum = new Float64Array(c);
  for (let p = 0; p < hw; p++) for (let k = 0; k < c; k++) mean[k] += values[p * c + k];
  let total = 0;
  for (let k = 0; k < c; k++) {
    total += mean[k];
    mean[k] /= hw;
  }
  for (let p = 0; p < hw; p++) {
    for (let k = 0; k < c; k++) {
      const d = values[p * c + k] - mean[k];
      varsum[k] += d * d;
    }
  }
  const inv = new Float64Array(c);
  for (let k = 0; k < c; k++) {
    const std = Math.sqrt(varsum[k] / hw);
    inv[k] = std > 0 ? 1 / std : 0;
  }
  const factor = Math.max(1, Math.floor(32 / Math.max(h, w)));
  const tw = w * factor, th = h * factor;
  const cols = Math.min(16, c), rows = Math.ceil(c / cols);
  const width = cols * tw + cols + 1, height = rows * th + rows + 1;
  const rgba = new Uint8ClampedArray(width * height * 4);
  const px = new Uint32Array(rgba.buffer);
  px.fill((255 << 24) | (28 << 16) | (24 << 8) | 24);
  for (let k = 0; k < c; k++) {
    const x0 = 1 + (k % cols) * (tw + 1), y0 = 1 + Math.floor(k / cols) * (th + 1);
    for (let y = 0; y < h; y++) {
      const row = (y0 + y * factor) * width + x0;
      for (let x = 0; x < w; x++) {
        const z = (values[(y * w + x) * c + k] - mean[k]) * inv[k];
        const level = Math.min(Math.max(Math.trunc(z * 64 + 128), 0), 255);
        px.fill(VIRIDIS_LEVELS[level], row + x * factor, row + (x + 1) * factor);
      }
      for (let r = 1; r < factor; r++) px.copyWithin(row + r * width, row, row + tw);
    }
  }
  return { width, height, rgba, mean: total / (hw * c) };
}

/** The book's deprocess_image of one NHWC image [s, s, 3] -> RGBA (src/viz/filters.rs `deprocess`). */
export function deprocess(values, s) {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i] - mean) ** 2;
  const std = Math.sqrt(v / n);
  const rgba = new Uint8ClampedArray(s * s * 4);
  for (let p = 0; p < s * s; p++) {
    for (let k = 0; k < 3; k++) {
      const t = ((values[p * 3 + k] - mean) / (std + 1e-5)) * 0.1 + 0.5;
      rgba[p * 4 + k] = Math.trunc(Math.min(Math.max(t, 0), 1) * 255);
    }
    rgba[p * 4 + 3] = 255;
  }
  return { width: s, height: s, rgba };
}

/** The book's 8-per-row pattern grid with 5 px margins on black (src/picture/grid.rs `tile`). */
export function patternGrid(tiles) {
  const { width: tw, height: th } = tiles[0];
  const cols = Math.min(8, tiles.length), rows = Math.ceil(tiles.length / cols), m = 5;
  const width = cols * tw + (cols + 1) * m, height = rows * th + (rows + 1) * m;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  tiles.forEach((t, i) => {
    const x0 = m + (i % cols) * (tw + m), y0 = m + Math.floor(i / cols) * (th + m);
    for (let y = 0; y < th; y++) rgba.set(t.rgba.subarray(y * tw * 4, (y + 1) * tw * 4), ((y0 + y) * width + x0) * 4);
  });
  return { width, height, rgba };
}

/** Pixel-centre bilinear upsampling of a map (src/viz/gradcam.rs `upsample`). */
function upsample(map, mh, mw, height, width) {
  const at = (x, y) => map[Math.min(y, mh - 1) * mw + Math.min(x, mw - 1)];
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const fy = Math.max(((y + 0.5) * mh) / height - 0.5, 0);
    const y0 = Math.floor(fy), ty = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(((x + 0.5) * mw) / width - 0.5, 0);
      const x0 = Math.floor(fx), tx = fx - x0;
      const top = at(x0, y0) * (1 - tx) + at(x0 + 1, y0) * tx;
      const bottom = at(x0, y0 + 1) * (1 - tx) + at(x0 + 1, y0 + 1) * tx;
      out[y * width + x] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}

/** The heatmap (jet) and the book's overlay (heat × opacity + photo) at the photo's size. */
export function camPictures(map, mh, mw, photo, opacity = 0.4) {
  const { width, height, rgba: photoRgba } = photo;
  const up = upsample(map, mh, mw, height, width);
  const heat = new Uint8ClampedArray(width * height * 4);
  const overlay = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const c = jet(up[i]);
    for (let k = 0; k < 3; k++) {
      heat[i * 4 + k] = c[k];
      overlay[i * 4 + k] = Math.trunc(Math.min(Math.max(c[k] * opacity + photoRgba[i * 4 + k], 0), 255));
    }
    heat[i * 4 + 3] = overlay[i * 4 + 3] = 255;
  }
  return { heatmap: { width, height, rgba: heat }, overlay: { width, height, rgba: overlay } };
}
