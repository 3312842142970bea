// What the browser tests run against, read from the environment once: shared by
// playwright.config.mjs (the server, the browser) and the specs (URLs, waits, screenshots).
//
//   BASE_PATH       the sub-path dist/ is served under (default /convlens/, as GitHub Pages does)
//   E2E_PORT        the static server's port (default 8642)
//   E2E_DIST        the bundle to test (default dist/)
//   E2E_TIMEOUT_MS  the longest wait for one thing on the page (default 300000: SwiftShader is slow)
//   E2E_BACKEND     webgpu or cpu: run one backend's project only (or: npx playwright test --project=cpu)
//   E2E_VULKAN=1    Chromium with --enable-features=Vulkan
//   CHROMIUM        the browser (default /usr/bin/chromium, Debian's; no browser is downloaded)
//   CROSS_ORIGIN_ISOLATED=0  the server leaves out COOP/COEP (tools/serve.mjs), as GitHub Pages does

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizeBase } from '../../tools/serve.mjs';

const env = process.env;
const here = path.dirname(fileURLToPath(import.meta.url));

export const REPO = path.resolve(here, '../..');
export const DIST = path.resolve(REPO, env.E2E_DIST || 'dist');
export const PORT = Number(env.E2E_PORT || 8642);
export const BASE_PATH = normalizeBase(env.BASE_PATH || '/convlens/');
export const BASE_URL = `http://127.0.0.1:${PORT}${BASE_PATH}`;
export const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
export const WAIT = Number(env.E2E_TIMEOUT_MS || 300_000);
export const SHOTS = path.join(here, 'screenshots');
export const BACKENDS = env.E2E_BACKEND ? [env.E2E_BACKEND] : ['webgpu', 'cpu'];
