/**
 * The op-parity suite for the wasm backend in a real browser (vitest browser mode). Without
 * cross-origin isolation there is no SharedArrayBuffer, and the backend runs on one thread;
 * with it, the backend starts Web Workers over a shared memory.
 */
import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { paritySuite } from '../parity.js';

describe('wasm backend in the browser', () => {
  it('uses one thread unless the page is cross-origin isolated', async () => {
    await k.useBackend('wasm');
    const threads = Number(k.memory().wasmThreads);
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    console.log(`wasm in the browser: crossOriginIsolated=${isolated}, threads=${threads}`);
    if (isolated) expect(threads).toBe(Math.max(1, navigator.hardwareConcurrency));
    else expect(threads).toBe(1);
    const y = k
      .tensor([
        [1, 2],
        [3, 4],
      ])
      .matmul(k.tensor([[5], [6]]));
    expect(Array.from(await y.data())).toEqual([17, 39]);
    await k.useBackend('cpu');
  });
});

paritySuite('wasm');
