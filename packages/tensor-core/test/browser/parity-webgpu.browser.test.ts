/**
 * The op-parity suite for the webgpu backend inside headless Chromium (`navigator.gpu`), run by
 * `npx vitest run --config vitest.browser.config.ts`.
 */
import { describe, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { paritySuite } from '../parity.js';

declare const __KILN_WEBGPU_REQUIRED__: boolean;

const unavailable: string | null = await k.initBackend('webgpu').then(
  () => null,
  (err: Error) => err.message,
);
if (unavailable !== null && __KILN_WEBGPU_REQUIRED__) {
  throw new Error(`webgpu backend required (CI/KILN_WEBGPU_REQUIRED is set) but unavailable in this browser: ${unavailable}`);
}

if (unavailable === null) {
  describe('browser webgpu', () => {
    it('runs on navigator.gpu', () => {
      if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) throw new Error('navigator.gpu is missing');
    });
  });
  paritySuite('webgpu');
  paritySuite('webgpu', { dtype: 'float16' });
} else {
  describe.skip(`op parity: webgpu in the browser (${unavailable})`, () => {
    it('needs a WebGPU adapter', () => {});
  });
}
