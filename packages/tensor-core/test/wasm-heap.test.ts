/**
 * Tensors in the wasm engine's heap (`heap.ts`): the allocator itself, and every kernel that
 * reads its operands and writes its results in place there. The oracle is the same kernel on
 * tensors outside the heap (copied through scratch): in place or copied, the bits must agree, with
 * every operand in the heap, some of them, or none, and the inputs must come back untouched.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../src/errors.js';
import { pool } from '../src/backends/wasm/bufpool.js';
import { Heap } from '../src/backends/wasm/heap.js';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { WasmBackend } from '../src/backends/wasm/index.js';
import { SCRATCH_BASE } from '../src/backends/wasm/pool.js';
import type { View } from '@kiln/tensor-core';
import type { TypedArray } from '../src/dtype.js';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;

describe('the heap allocator', () => {
  const KiB = 1024;
  const fresh = () => new Heap(new ArrayBuffer(1024 * KiB), 512 * KiB, 1024 * KiB);

  it('hands out 64-byte-aligned, disjoint blocks inside its region, from the top down', () => {
    const h = fresh();
    const a = h.f32(1000)!;
    const b = h.f32(17)!;
    expect(a.length).toBe(1000);
    expect(a.byteOffset + 4032).toBe(1024 * KiB); // 4000 bytes rounded up to 4032
    expect(b.byteOffset % 64).toBe(0);
    expect(b.byteOffset + 128).toBe(a.byteOffset);
    expect(h.addr(a)).toBe(a.byteOffset);
    expect(h.addr(a.subarray(10))).toBe(a.byteOffset + 40);
    expect(h.addr(new Float32Array(16))).toBe(-1);
    expect(h.bytes).toBe(4032 + 128);
  });

  it('reuses a freed block, refuses what it did not hand out, and frees once', () => {
    const h = fresh();
    const a = h.f32(4096)!;
    h.f32(4096);
    expect(h.free(a.subarray(0, 16))).toBe(false);
    expect(h.free(new Float32Array(4096))).toBe(false);
    expect(h.free(a)).toBe(true);
    expect(h.free(a)).toBe(false);
    expect(h.f32(4096)!.byteOffset).toBe(a.byteOffset);
  });

  it('returns null when full, and merges neighbouring free blocks to fit a larger one', () => {
    const h = fresh();
    const blocks = Array.from({ length: 8 }, () => h.f32(16 * KiB)!); // 8 × 64 KiB fill the 512 KiB
    expect(h.f32(1)).toBeNull();
    h.free(blocks[1]);
    h.free(blocks[3]);
    expect(h.f32(32 * KiB)).toBeNull(); // 128 KiB: two 64 KiB blocks are free, but not side by side
    h.free(blocks[4]);
    h.free(blocks[5]);
    const big = h.f32(32 * KiB)!; // the front of blocks 5, 4 and 3 merged
    expect(big.byteOffset).toBe(blocks[5].byteOffset);
    expect(h.f32(16 * KiB)!.byteOffset).toBe(blocks[3].byteOffset); // the split's remainder
    h.free(blocks[6]);
    h.free(blocks[7]); // the lowest two: back to the untouched part when merged
    expect(h.f32(32 * KiB)!.byteOffset).toBe(blocks[7].byteOffset);
    expect(h.f32(1)!.byteOffset).toBe(blocks[1].byteOffset); // splits block 1
    expect(h.f32(16 * KiB)).toBeNull();
  });
});

describe('wasm engines with a heap', () => {
  it('validates heapBytes, and without a heap keeps every tensor outside', async () => {
    await expect(createWasmBackend({ threads: 1, heapBytes: -1 })).rejects.toThrow(ArgumentError);
    await expect(createWasmBackend({ threads: 1, heapBytes: 2 ** 31 })).rejects.toThrow(/heapBytes/);
    const none = await createWasmBackend({ threads: 1, heapBytes: 0 });
    expect(none.engine.heap).toBeNull();
    expect(none.engine.maxScratch).toBe(2 ** 31 - 65536 - SCRATCH_BASE);
    none.dispose();
    const b = await createWasmBackend({ threads: 1, heapBytes: 1 << 20 });
    const h = b.engine.heap!;
    expect(h.hi - h.lo).toBe(1 << 20);
    expect(b.engine.maxScratch).toBe(h.lo - SCRATCH_BASE);
    const inside = b.alloc('float32', 1 << 16); // 256 KiB
    expect(h.addr(inside)).toBeGreaterThanOrEqual(h.lo);
    expect(b.memoryInfo().wasmHeapBytes).toBe(1 << 18);
    const rest = [0, 1, 2, 3].map(() => b.alloc('float32', 1 << 16)); // one fits, then outside
    expect(rest.map((a) => h.addr(a) >= 0)).toEqual([true, true, true, false]);
    b.free(inside);
    expect(h.addr(b.alloc('float32', 1 << 16))).toBe(inside.byteOffset);
    b.dispose();
  });

  const backends = [createWasmBackend({ threads: 1 }), createWasmBackend({ threads: 3, parallelMinUs: 0 })];
  afterAll(async () => {
    for (const b of backends) (await b).dispose();
  });

  /** `v` with its storage copied into b's heap. */
  const inHeap = (b: WasmBackend, v: V): V => {
    const storage = b.engine.heap!.f32(v.storage.length)!;
    storage.set(v.storage);
    return { ...v, storage };
  };

  const conv = (padding: number) => ({ stride: [1, 1], padding: [padding, padding], dilation: [1, 1], groups: 1 }) as const;
  const hp = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
  // Operands large enough for the heap (≥ 64 KiB) and several stream chunks.
  const cases: [string, V[], (b: WasmBackend, o: V[]) => (TypedArray | null)[]][] = [
    ['batched matmul', [seededView([2, 96, 200], 1), seededView([2, 200, 130], 2)], (b, [x, y]) => [b.matmul(x, y)]],
    [
      'matmul of a transposed view',
      [seededView([1, 300, 200], 3), seededView([1, 300, 160], 4)],
      (b, [x, y]) => [b.matmul({ ...x, shape: [1, 200, 300], strides: [60000, 1, 200] }, y)],
    ],
    ...(
      [
        ['Winograd 3×3', [2, 16, 40, 40], [24, 16, 3, 3], 1],
        ['im2col 5×5', [1, 8, 48, 48], [16, 8, 5, 5], 2],
        ['pointwise 1×1', [2, 32, 30, 30], [48, 32, 1, 1], 0],
      ] as const
    ).map(([name, xs, ws, pad]): (typeof cases)[number] => {
      const ys = [xs[0], ws[0], xs[2] + 2 * pad - ws[2] + 1, xs[3] + 2 * pad - ws[3] + 1];
      return [
        `conv2d ${name}: forward, input and weight gradients`,
        [seededView([...xs], 5), seededView([...ws], 6), seededView(ys, 7)],
        (b, [x, w, gy]) => [b.conv2d(x, w, conv(pad)), b.conv2dInputGrad(gy, w, xs, conv(pad)), b.conv2dWeightGrad(x, gy, ws, conv(pad))],
      ];
    }),
    ['SiLU over 2^15 + 3 elements', [seededView([(1 << 15) + 3], 24)], (b, [x]) => [b.unary('silu', x, 'float32')]],
    [
      'add of the same shape (one operand at an offset), and mul by one value per row, over 2^20 elements',
      [seededView([4096, 256], 25), seededView([4097 * 256], 26), seededView([4100], 27)],
      (b, [x, y, r]) => [
        b.binary('add', x, { ...y, shape: [4096, 256], strides: [256, 1], offset: 256 }, 'float32'),
        b.binary('mul', x, { ...r, shape: [4096, 256], strides: [1, 0], offset: 3 }, 'float32'),
      ],
    ],
    [
      'attention forward and backward',
      [seededView([2, 150, 64], 8), seededView([2, 170, 64], 9), seededView([2, 170, 64], 10), seededView([2, 150, 64], 11)],
      (b, [q, k, v, gy]) => [b.attention!(q, k, v, null, false, 0.125), ...b.attentionBackward!(q, k, v, null, false, 0.125, gy)],
    ],
    [
      'layerNorm forward and backward',
      [seededView([1200, 260], 12), seededView([260], 13), seededView([260], 14), seededView([1200, 260], 15)],
      (b, [x, w, bias, gy]) => [b.layerNorm!(x, w, bias, 260, 1e-5), ...b.layerNormBackward!(x, w, bias, 260, 1e-5, gy)],
    ],
    [
      'groupNorm+SiLU forward and backward',
      [seededView([2, 32, 48, 48], 16), seededView([32], 17), seededView([32], 18), seededView([2, 32, 48, 48], 19)],
      (b, [x, w, bias, gy]) => [b.groupNorm!(x, 8, w, bias, 1e-6, true), ...b.groupNormBackward!(x, 8, w, bias, 1e-6, true, gy)],
    ],
    [
      'AdamW, in place over 300,003 parameters',
      [seededView([300_003], 20), seededView([300_003], 21), seededView([300_003], 22), seededView([300_003], 23)],
      (b, [p, g, m, v]) => {
        for (let i = 0; i < v.storage.length; i++) v.storage[i] = Math.abs(v.storage[i]);
        b.adamw!(p.storage, g, m.storage, v.storage, p.storage.length, 'float32', hp);
        b.adamw!(p.storage, g, m.storage, v.storage, p.storage.length, 'float32', { ...hp, step: 2 });
        return [p.storage, m.storage, v.storage];
      },
    ],
  ];

  const same = (got: ArrayLike<number> | null, want: ArrayLike<number> | null): boolean => {
    if (!got || !want) return got === want;
    if (got.length !== want.length) return false;
    for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) return false;
    return true;
  };

  it.each(cases)('%s: the same bits in place as copied, on 1 and on 3 threads, inputs untouched', async (name, operands, run) => {
    const inPlace = name.startsWith('AdamW');
    for (const bp of backends) {
      const b = await bp;
      pool.useHeap(b.engine.heap!, true); // this engine's heap takes the results
      const copy = (o: V[]) => o.map((v) => ({ ...v, storage: v.storage.slice() }));
      const want = run(b, copy(operands));
      for (const mask of [(1 << operands.length) - 1, 0b0101, 0b1010]) {
        const o = copy(operands).map((v, i) => ((mask >> i) & 1 ? inHeap(b, v) : v));
        const got = run(b, o);
        expect(got.map((g, i) => same(g, want[i]))).toEqual(want.map(() => true));
        const heapResults = got.filter((g) => g && b.engine.heap!.addr(g) >= 0);
        if (!inPlace) {
          expect(heapResults.length).toBeGreaterThan(0);
          expect(o.map((v, i) => same(v.storage, operands[i].storage))).toEqual(o.map(() => true));
        }
      }
    }
  });
});
