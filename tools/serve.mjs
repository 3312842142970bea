#!/usr/bin/env node
// The static file server for the ConvLens page, its browser tests and the browser benchmark:
// `sirv` sends the files (headers, ranges, streaming); this wrapper adds what sirv does not do.
//
//   node tools/serve.mjs DIR [PORT]     (default 127.0.0.1:8080; PORT 0 picks a free port)
//
// Environment: HOST (default 127.0.0.1); BASE_PATH=/convlens/ serves DIR under that sub-path only
// (as GitHub Pages serves a project site under /<repo>/), so `make deploy-check` catches a page
// that assumes it lives at the root. It sends COOP/COEP (`Cross-Origin-Opener-Policy: same-origin`,
// `Cross-Origin-Embedder-Policy: require-corp`), which a page needs for SharedArrayBuffer (the
// threaded wasm); CROSS_ORIGIN_ISOLATED=0 leaves them out, as GitHub Pages does (the page then
// isolates itself through its service worker from the second visit on). It prints the URL it
// listens on as its first line of output.
//
// What the wrapper adds to sirv: the sub-path; GET and HEAD only; no file outside DIR, not even
// through a symbolic link (sirv follows links); a directory's index.html, with a redirect to the
// trailing slash so relative URLs resolve inside it; the MIME types browsers insist on
// (application/wasm for streaming compilation, text/javascript for module scripts) and ours for
// model files; `Cache-Control: no-cache` (always revalidate: tests see the files just copied).
//
// Other scripts import `serve` (or `staticFiles`, the request handler): bench/browser/bench.mjs.

import { createServer } from 'node:http';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sirv from 'sirv';

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
  '.map': 'application/json; charset=utf-8',
  // Model and weights files: bytes the page reads itself.
  '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.keras': 'application/octet-stream',
  '.h5': 'application/octet-stream',
  '.hdf5': 'application/octet-stream',
  '.pth': 'application/octet-stream',
  '.pt': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.ckpt': 'application/octet-stream',
};

const CROSS_ORIGIN_ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// "/convlens", "convlens/", "" → "/convlens/", "/".
export function normalizeBase(base = '') {
  return `/${base.split('/').filter(Boolean).join('/')}/`.replace('//', '/');
}

function sendText(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// The file a request path names inside `root` (a directory: its index.html), or null.
async function resolveFile(root, urlPath) {
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
  const isDirectory = info.isDirectory();
  if (isDirectory) {
    file = path.join(file, 'index.html');
    try {
      file = await realpath(file);
      info = await stat(file);
    } catch {
      return null;
    }
    if (!file.startsWith(root + path.sep)) return null;
  }
  return info.isFile() ? { file, isDirectory } : null;
}

// A request handler serving the directory `root` (a real path) under `base`.
export function staticFiles(root, { base = '/', crossOriginIsolated = true, cacheControl = 'no-cache' } = {}) {
  base = normalizeBase(base);
  const files = sirv(root, {
    dev: true, // looks files up per request: the tests copy files into a served folder
    extensions: [], // the wrapper has already found the exact file
    setHeaders(res, pathname) {
      res.setHeader('Content-Type', MIME[path.extname(pathname).toLowerCase()] || 'application/octet-stream');
      res.setHeader('Cache-Control', cacheControl);
    },
  });
  return async (req, res) => {
    try {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      if (crossOriginIsolated) for (const [name, value] of Object.entries(CROSS_ORIGIN_ISOLATION)) res.setHeader(name, value);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        return sendText(res, 405, 'method not allowed\n');
      }
      const fullPath = new URL(req.url, 'http://localhost').pathname;
      if (fullPath + '/' === base) {
        res.writeHead(301, { Location: base });
        return res.end();
      }
      if (!fullPath.startsWith(base)) return sendText(res, 404, `not found (this server serves ${base} only)\n`);
      const urlPath = fullPath.slice(base.length - 1);
      const found = await resolveFile(root, urlPath);
      if (!found) return sendText(res, 404, 'not found\n');
      // A directory without its trailing slash: redirect so that relative URLs resolve inside it.
      if (found.isDirectory && !urlPath.endsWith('/')) {
        res.writeHead(301, { Location: fullPath + '/' });
        return res.end();
      }
      // sirv looks up the file found above (its own lookup would follow links out of root).
      req.url = '/' + encodeURI(path.relative(root, found.file).split(path.sep).join('/'));
      files(req, res, () => sendText(res, 404, 'not found\n'));
    } catch {
      if (!res.headersSent) sendText(res, 500, 'server error\n');
      else res.destroy();
    }
  };
}

// Serves `dir` on http://host:port/base; resolves to {server, url, root} once it listens.
export async function serve(dir, { host = '127.0.0.1', port = 8080, base = '/', crossOriginIsolated = true, cacheControl } = {}) {
  const root = await realpath(dir);
  if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
  base = normalizeBase(base);
  const server = createServer(staticFiles(root, { base, crossOriginIsolated, cacheControl }));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, root, url: `http://${host}:${server.address().port}${base}` };
}

async function main(args) {
  const [dirArg, portArg] = args;
  if (!dirArg || dirArg === '-h' || dirArg === '--help') {
    console.log('usage: node tools/serve.mjs DIR [PORT]   (serves DIR on http://127.0.0.1:PORT/, default 8080; env HOST, BASE_PATH, CROSS_ORIGIN_ISOLATED=0)');
    process.exit(dirArg ? 0 : 2);
  }
  const port = portArg === undefined ? 8080 : Number(portArg);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve: '${portArg}' is not a port number (0-65535)`);
    process.exit(2);
  }
  const env = process.env;
  const crossOriginIsolated = !['0', 'false', 'no'].includes(env.CROSS_ORIGIN_ISOLATED);
  let served;
  try {
    served = await serve(dirArg, { host: env.HOST || '127.0.0.1', port, base: env.BASE_PATH || '', crossOriginIsolated });
  } catch (e) {
    if (e.code === 'EADDRINUSE') console.error(`serve: port ${port} is in use; pass another: node tools/serve.mjs DIR PORT`);
    else if (e.syscall === 'listen') console.error(`serve: ${e.message}`);
    else console.error(`serve: cannot serve '${dirArg}': ${e.code === 'ENOENT' ? 'no such directory' : e.message}`);
    process.exit(1);
  }
  console.log(`Serving ${served.root} at ${served.url}${crossOriginIsolated ? ' (cross-origin isolated: COOP/COEP)' : ''}`);
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
