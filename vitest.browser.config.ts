/**
 * Browser-mode tests: `packages/<pkg>/test/browser/**\/*.browser.test.ts`, run in headless
 * Chromium (Debian's /usr/bin/chromium, WebGPU on its SwiftShader Vulkan) through Playwright.
 *
 *   npx vitest run --config vitest.browser.config.ts
 *
 * `CHROMIUM_PATH` overrides the browser; with `CI` or `KILN_WEBGPU_REQUIRED` set, a page without
 * a WebGPU adapter fails the webgpu suite instead of skipping it.
 */
import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { kilnAliases, clientConditions } from './vitest.shared.js';

export default defineConfig({
  resolve: { alias: kilnAliases, conditions: clientConditions },
  define: {
    __KILN_WEBGPU_REQUIRED__: JSON.stringify(Boolean(process.env.CI || process.env.KILN_WEBGPU_REQUIRED)),
  },
  optimizeDeps: { exclude: ['webgpu'] },
  // Cross-origin isolation gives the page SharedArrayBuffer, so the wasm backend runs its
  // multithreaded path (Web Workers over a shared memory) in the browser suite.
  server: {
    headers: {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    },
  },
  test: {
    include: ['packages/*/test/browser/**/*.browser.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    browser: {
      enabled: true,
      headless: true,
      provider: playwright({
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
          args: [
            '--enable-unsafe-webgpu',
            '--no-sandbox',
            '--disable-gpu-sandbox',
            '--disable-background-networking',
            '--disable-component-update',
            '--no-first-run',
            '--disable-sync',
          ],
        },
      }),
      instances: [{ browser: 'chromium' }],
    },
  },
});
