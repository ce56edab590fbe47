/**
 * The streamed memory-bound ops (layerNorm, groupNorm(+SiLU), their backward passes, AdamW) on a
 * Node engine with workers. Where every tensor is on a SharedArrayBuffer the workers are handed it
 * and each thread copies and computes its own chunks (`runStream`); elsewhere the calling thread
 * copies. Both give the bits of one thread: a normalised unit never spans two threads, and
 * per-block partial sums are added by the host in a fixed order.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { WasmBackend } from '../src/backends/wasm/index.js';
import type { View } from '@kiln/tensor-core';
import { firstDiff } from './first-diff.js';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;

/** The same view with its storage copied onto a SharedArrayBuffer. */
function onShared(v: V): V {
  const storage = new Float32Array(new SharedArrayBuffer(v.storage.byteLength));
  storage.set(v.storage);
  return { ...v, storage };
}

/** Each result's first element that differs from the reference's (−1: none), or its length if the lengths differ. */
function firstDiffs(got: (ArrayLike<number> | null)[], ref: (ArrayLike<number> | null)[]): number[] {
  return got.map((g, j) => {
    const r = ref[j];
    if (!g || !r) return g === r ? -1 : 0;
    return firstDiff(g, r);
  });
}

describe('wasm streams where the workers reach the tensors', () => {
  const one = createWasmBackend({ threads: 1 });
  const three = createWasmBackend({ threads: 3, parallelMinUs: 0 });
  afterAll(async () => {
    (await one).dispose();
    (await three).dispose();
  });

  /** Runs `fn` on the 3-thread backend, counting the streams every thread copied for itself. */
  async function streamed<T>(fn: (b: WasmBackend) => T): Promise<[T, number]> {
    const b = await three;
    const { runStream } = b.engine;
    let n = 0;
    b.engine.runStream = (...a) => {
      n++;
      runStream.apply(b.engine, a);
    };
    try {
      return [fn(b), n];
    } finally {
      b.engine.runStream = runStream;
    }
  }

  // Over several chunks of STREAM_CHUNK_FLOATS (2^17) floats per array.
  const cases: [string, (b: WasmBackend, sh: (v: V) => V) => (ArrayLike<number> | null)[]][] = [
    [
      'layerNorm forward and backward, 260-wide rows over 3 chunks',
      (b, sh) => {
        const [x, w, bias, gy] = [seededView([1200, 260], 1), seededView([260], 2), seededView([260], 3), seededView([1200, 260], 4)];
        return [b.layerNorm(sh(x), w, bias, 260, 1e-5), ...b.layerNormBackward(sh(x), w, bias, 260, 1e-5, sh(gy))];
      },
    ],
    [
      'groupNorm+SiLU forward and backward, [2, 32, 96, 96] in 8 groups over 6 chunks',
      (b, sh) => {
        const [x, w, bias, gy] = [seededView([2, 32, 96, 96], 5), seededView([32], 6), seededView([32], 7), seededView([2, 32, 96, 96], 8)];
        return [b.groupNorm(sh(x), 8, w, bias, 1e-6, true), ...b.groupNormBackward(sh(x), 8, w, bias, 1e-6, true, sh(gy))];
      },
    ],
    [
      'AdamW over 300,003 parameters (3 chunks and a JS tail)',
      (b, sh) => {
        const n = 300_003;
        const [p, g, m, v] = [seededView([n], 9), seededView([n], 10), seededView([n], 11), seededView([n], 12)].map(sh);
        for (let i = 0; i < n; i++) v.storage[i] = Math.abs(v.storage[i]);
        for (let step = 1; step <= 2; step++)
          b.adamw(p.storage, g, m.storage, v.storage, n, 'float32', {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay: 0.01,
            step,
          });
        return [p.storage, m.storage, v.storage];
      },
    ],
  ];

  it.each(cases)(
    '%s: identical bits on 1 thread, on 3 threads copying their own chunks, and on 3 threads fed by the calling thread',
    async (_name, run) => {
      const alone = run(await one, (v) => v);
      const [own, streams] = await streamed((b) => run(b, onShared));
      expect(streams).toBeGreaterThan(0);
      expect(firstDiffs(own, alone)).toEqual(alone.map(() => -1));
      const [fed, none] = await streamed((b) => run(b, (v) => v));
      expect(none).toBe(0);
      expect(firstDiffs(fed, alone)).toEqual(alone.map(() => -1));
    },
  );

  it('hands a SharedArrayBuffer to the workers once, and plain buffers never', async () => {
    const e = (await three).engine;
    const a = new Float32Array(new SharedArrayBuffer(1 << 16));
    const id = e.reach(a.subarray(16));
    expect(id).toBeGreaterThan(0);
    expect(e.reach(a)).toBe(id);
    expect(e.reach(new Float32Array(new SharedArrayBuffer(64)))).not.toBe(id);
    expect(e.reach(new Float32Array(1 << 14))).toBe(-1);
    expect((await one).engine.reach(a)).toBe(-1);
  });

  it("runs under the CLI's transform (tsx), whose helpers a worker does not have", () => {
    const child = fileURLToPath(new URL('./stream-child.ts', import.meta.url));
    const out = execFileSync(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', child], { encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ streams: 1, same: true });
  });

  it('allocates large f32 storage where the workers can reach it, while such an engine lives', async () => {
    const b = await three;
    expect(b.engine.sharesStorage).toBe(true);
    expect((await one).engine.sharesStorage).toBe(false);
    expect(b.alloc('float32', 1 << 16).buffer).toBeInstanceOf(SharedArrayBuffer);
    const other = await createWasmBackend({ threads: 2 });
    other.dispose();
    expect(b.alloc('float32', 1 << 16).buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});
