// Before the browser tests: the bundle and the browser they need are there (else one clear message
// instead of every test failing), and the screenshot folder exists.

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { CHROMIUM, DIST, REPO, SHOTS } from './settings.mjs';

export default function globalSetup() {
  const pageModules = readdirSync(path.join(REPO, 'www/js')).map((file) => `js/${file}`);
  const required = ['index.html', 'app.js', ...pageModules, 'worker.js', 'sw.js', 'style.css', 'pkg/convlens.js', 'pkg/convlens_bg.wasm', 'pkg/threads/convlens.js', 'pkg/threads/convlens_bg.wasm', 'weights/manifest.json', 'samples/cat.jpg'];
  const missing = required.filter((file) => !existsSync(path.join(DIST, file)));
  if (missing.length) throw new Error(`${DIST} lacks ${missing.join(', ')}: build the bundle first (make dist)`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium), or set CHROMIUM`);
  mkdirSync(SHOTS, { recursive: true });
}
