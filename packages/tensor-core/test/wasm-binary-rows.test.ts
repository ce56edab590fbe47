/**
 * f32 add/sub/mul/div on the wasm SIMD kernel where one operand is broadcast: a scalar, one value
 * per row of the trailing dims (a channel bias [1, C, 1, 1] on [N, C, H, W], a time embedding
 * [N, C, 1, 1]), and small tensors down to 256 elements. The oracle is the cpu backend: an f32
 * add, subtract, multiply or divide is correctly rounded either way, so the bits must agree.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { BinaryOp } from '../src/backend.js';
import { CpuBackend } from '../src/backends/cpu/index.js';
import { pool } from '../src/backends/wasm/bufpool.js';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import { contiguousStrides } from '../src/shape.js';
import type { View } from '@kiln/tensor-core';
import { firstDiff } from './first-diff.js';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;

/** `v` (of shape `own`, contiguous) broadcast to `shape`: stride 0 where `own` has 1. */
function broadcast(v: V, shape: number[]): V {
  const strides = contiguousStrides(v.shape);
  return { ...v, shape, strides: shape.map((_, i) => (v.shape[i] === 1 && shape[i] !== 1 ? 0 : strides[i])) };
}

describe('wasm binary ops with a broadcast operand, against the cpu backend', () => {
  const cpu = new CpuBackend();
  const backends = [createWasmBackend({ threads: 1 }), createWasmBackend({ threads: 3, parallelMinUs: 0 })];
  afterAll(async () => {
    for (const b of backends) (await b).dispose();
  });

  const cases: [string, number[], number[]][] = [
    ['a channel bias [1, 8, 1, 1] on [2, 8, 16, 16] (rows of 256, period 8)', [2, 8, 16, 16], [1, 8, 1, 1]],
    ['a time embedding [2, 8, 1, 1] on [2, 8, 16, 16] (period 16)', [2, 8, 16, 16], [2, 8, 1, 1]],
    ['one value per row of the last dim, [3, 5, 1] on [3, 5, 12]', [3, 5, 12], [3, 5, 1]],
    ['a middle dim repeated: [1, 6, 1] on [4, 6, 20]', [4, 6, 20], [1, 6, 1]],
    ['a scalar on 256 elements', [16, 16], [1, 1]],
    ['the same shape, 260 elements', [65, 4], [65, 4]],
    // A chunk holds 2^22 elements: here b's rows run on across the chunk boundary.
    ['rows of 4, b longer than one chunk: [1, 2^20 + 4, 1] on [1, 2^20 + 4, 4]', [1, (1 << 20) + 4, 4], [1, (1 << 20) + 4, 1]],
  ];

  it.each(cases)('%s: the bits of the cpu backend, on 1 and 3 threads, either operand order', async (name, shape, bShape) => {
    const a = seededView(shape, 1);
    const bb = broadcast(seededView(bShape, 2), shape);
    const ops: BinaryOp[] = name.includes('chunk') ? ['add', 'div'] : ['add', 'sub', 'mul', 'div'];
    for (const op of ops) {
      for (const [x, y] of [
        [a, bb],
        [bb, a],
      ]) {
        const want = cpu.binary(op, x, y, 'float32');
        for (const bp of backends) {
          const got = (await bp).binary(op, x, y, 'float32');
          expect(firstDiff(got, want), `${op}, ${x === a ? 'a op b' : 'b op a'}`).toBe(-1);
        }
      }
    }
  });

  it("reads b's rows where they lie in the engine's heap, starting over for each image", async () => {
    const shape = [3, 1 << 14, 4];
    const a = seededView(shape, 5);
    const small = seededView([1, 1 << 14, 1], 6);
    const want = cpu.binary('mul', a, broadcast(small, shape), 'float32');
    for (const bp of backends) {
      const b = await bp;
      pool.useHeap(b.engine.heap!, true);
      const storage = pool.f32(small.storage.length);
      expect(b.engine.heapAddr(storage)).toBeGreaterThanOrEqual(0);
      storage.set(small.storage);
      const got = b.binary('mul', a, broadcast({ ...small, storage }, shape), 'float32');
      expect(firstDiff(got, want)).toBe(-1);
    }
  });

  it('takes the SIMD kernel for a channel bias on [N, C, H, W]', async () => {
    const b = await backends[0];
    const { run } = b.engine;
    const tasks: string[] = [];
    b.engine.run = (task, ...rest) => {
      tasks.push(task);
      run.call(b.engine, task, ...rest);
    };
    try {
      b.binary('add', seededView([2, 8, 16, 16], 3), broadcast(seededView([1, 8, 1, 1], 4), [2, 8, 16, 16]), 'float32');
    } finally {
      b.engine.run = run;
    }
    expect(tasks).toEqual(['task_binary', 'task_binary']); // one chunk per image: b's 8 rows start over
  });
});
