#!/usr/bin/env node
// A tiny, dependency-free static file server for the ConvLens page.
//
//   node tools/serve.mjs DIR [PORT]     (default 127.0.0.1:8080; PORT 0 picks a free port)
//
// BASE_PATH=/convlens/ serves DIR under that sub-path only (as GitHub Pages serves a project
// site under /<repo>/), so `make deploy-check` catches a page that assumes it lives at the root.
//
// It serves files under DIR only (no directory traversal, no symlinks out of DIR), with the MIME
// types browsers insist on (application/wasm for streaming compilation, text/javascript for
// module scripts), and prints the URL it listens on as its first line of output.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
  '.h5': 'application/octet-stream',
  '.pth': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.map': 'application/json; charset=utf-8',
};

const [dirArg, portArg] = process.argv.slice(2);
if (!dirArg || dirArg === '-h' || dirArg === '--help') {
  console.log('usage: node tools/serve.mjs DIR [PORT]   (serves DIR on http://127.0.0.1:PORT/, default 8080)');
  process.exit(dirArg ? 0 : 2);
}
const port = portArg === undefined ? 8080 : Number(portArg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve: '${portArg}' is not a port number (0-65535)`);
  process.exit(2);
}
const host = process.env.HOST || '127.0.0.1';
const base = `/${(process.env.BASE_PATH || '').split('/').filter(Boolean).join('/')}/`.replace('//', '/');

let root;
try {
  root = await realpath(dirArg);
  if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
} catch (e) {
  console.error(`serve: cannot serve '${dirArg}': ${e.code === 'ENOENT' ? 'no such directory' : e.message}`);
  process.exit(1);
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// Resolves a request path to a file inside root, or null.
async function resolve(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  let file = path.resolve(root, '.' + path.posix.normalize('/' + decoded));
  try {
    file = await realpath(file);
  } catch {
    return null;
  }
  if (file !== root && !file.startsWith(root + path.sep)) return null;
  let info = await stat(file);
  if (info.isDirectory()) {
    file = path.join(file, 'index.html');
    try {
      info = await stat(file);
    } catch {
      return null;
    }
  }
  return info.isFile() ? { file, info } : null;
}

const server = createServer(async (req, res) => {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    const fullPath = new URL(req.url, 'http://localhost').pathname;
    if (fullPath + '/' === base) {
      res.writeHead(301, { Location: base });
      return res.end();
    }
    if (!fullPath.startsWith(base)) return send(res, 404, `not found (this server serves ${base} only)\n`);
    const urlPath = fullPath.slice(base.length - 1);
    // A directory without its trailing slash: redirect so that relative URLs resolve inside it.
    const found = await resolve(urlPath);
    if (!found) return send(res, 404, 'not found\n');
    if (!urlPath.endsWith('/') && found.file.endsWith(path.sep + 'index.html') && !urlPath.endsWith('index.html')) {
      res.writeHead(301, { Location: fullPath + '/' });
      return res.end();
    }
    const type = MIME[path.extname(found.file).toLowerCase()] || 'application/octet-stream';
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': found.info.size,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(found.file)
      .on('error', () => res.destroy())
      .pipe(res);
  } catch {
    if (!res.headersSent) send(res, 500, 'server error\n');
    else res.destroy();
  }
});

server.on('error', (e) => {
  console.error(`serve: ${e.code === 'EADDRINUSE' ? `port ${port} is in use; pass another: node tools/serve.mjs DIR PORT` : e.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const { port: actual } = server.address();
  console.log(`Serving ${root} at http://${host}:${actual}${base}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
