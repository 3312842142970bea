// The browser tests (tests/e2e/*.spec.mjs): `make e2e` or `npm run e2e` (= npx playwright test).
//
// dist/ is served by tools/serve.mjs under BASE_PATH (default /convlens/), and Debian's Chromium is
// driven twice: once on WebGPU (SwiftShader here: slow, so sizes stay small) and once with WebGPU
// removed (the CPU fallback). Any console.error, page error or unhandled rejection fails the test
// it happened in (tests/e2e/helpers.mjs). Settings: tests/e2e/settings.mjs.

import { defineConfig } from '@playwright/test';
import { BACKENDS, BASE_PATH, BASE_URL, CHROMIUM, DIST, PORT, WAIT } from './tests/e2e/settings.mjs';

const chromiumFlags = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
if (process.env.E2E_VULKAN) chromiumFlags.push('--enable-features=Vulkan');

const projects = {
  // Forced with #backend=webgpu where a test opens the bundled model.
  webgpu: { name: 'webgpu', use: { backend: 'webgpu' } },
  // navigator.gpu removed, backend Auto.
  cpu: { name: 'cpu', use: { backend: 'cpu' } },
};

export default defineConfig({
  testDir: 'tests/e2e',
  testMatch: '*.spec.mjs',
  outputDir: 'tests/e2e/results',
  globalSetup: './tests/e2e/global-setup.mjs',
  // 2 cores, and one test's timings should not include another's work.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: Boolean(process.env.CI),
  // A test waits for several things, each up to WAIT.
  timeout: 4 * WAIT,
  expect: { timeout: WAIT },
  reporter: [['list'], ['./tests/e2e/timings-reporter.mjs']],
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: { executablePath: CHROMIUM, args: chromiumFlags },
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    baseURL: BASE_URL,
    trace: 'off',
    screenshot: 'off',
    video: 'off',
  },
  projects: BACKENDS.map((name) => {
    if (!projects[name]) throw new Error(`E2E_BACKEND=${name}: choose webgpu or cpu`);
    return projects[name];
  }),
  webServer: {
    command: `node tools/serve.mjs "${DIST}" ${PORT}`,
    url: BASE_URL,
    env: { BASE_PATH },
    reuseExistingServer: false,
    stdout: 'pipe',
    timeout: 30_000,
  },
});
