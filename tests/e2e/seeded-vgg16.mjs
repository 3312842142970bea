// A seeded, full-size VGG16 in timm's `vgg16.tv_in1k` layout, as the hub serves it: a
// .safetensors of f32 tensors named `features.N`, `pre_logits.fc1`/`fc2` (the classifier stored as
// 7×7 and 1×1 convs) and `head.fc`. He-uniform weights from xorshift32, zero biases: the network
// runs like the real one (same shapes, same work); its predictions mean nothing.

import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';

const SEED = 20261202;
const WIDTHS = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];

function tensors() {
  const out = [];
  let index = 0;
  let cin = 3;
  for (const w of WIDTHS) {
    if (w !== 'M') {
      out.push([`features.${index}.weight`, [w, cin, 3, 3]], [`features.${index}.bias`, [w]]);
      cin = w;
    }
    index += w === 'M' ? 1 : 2; // a conv is followed by its ReLU
  }
  out.push(['pre_logits.fc1.weight', [4096, 512, 7, 7]], ['pre_logits.fc1.bias', [4096]]);
  out.push(['pre_logits.fc2.weight', [4096, 4096, 1, 1]], ['pre_logits.fc2.bias', [4096]]);
  out.push(['head.fc.weight', [1000, 4096]], ['head.fc.bias', [1000]]);
  return out;
}

// Writes the file unless it is already there (same size): ~553 MB, a few seconds.
export function seededTimmVgg16(file) {
  const list = tensors();
  const header = {};
  let offset = 0;
  for (const [name, shape] of list) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  header.__metadata__ = { format: 'pt', origin: `ConvLens e2e: seeded VGG16 in timm layout (xorshift32 seed ${SEED})` };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the data starts 8-byte aligned
  const size = 8 + json.length + offset;
  if (existsSync(file) && statSync(file).size === size) return;
  mkdirSync(path.dirname(file), { recursive: true });
  const partial = `${file}.partial`;
  const fd = openSync(partial, 'w');
  try {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, prefix);
    writeSync(fd, Buffer.from(json, 'latin1'));
    let state = SEED;
    for (const [name, shape] of list) {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (name.endsWith('.weight')) {
        const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
        const limit = Math.sqrt(6 / fanIn);
        for (let i = 0; i < values.length; i++) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          values[i] = ((state >>> 0) / 4294967296 * 2 - 1) * limit;
        }
      }
      writeSync(fd, Buffer.from(values.buffer));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(partial, file);
}
