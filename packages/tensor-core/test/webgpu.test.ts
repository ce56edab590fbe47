/**
 * webgpu-specific checks beyond the op-parity suite: shapes large enough to cross tile, split-K
 * and key-tile boundaries, every storage dtype, the Philox kernel, in-place AdamW, memory pooling
 * and batching, and the errors for oversized tensors and a lost device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { webgpuUnavailable } from './webgpu-env.js';

const suite = webgpuUnavailable === null ? describe : describe.skip;

/** Runs `fn` on cpu and on webgpu with the same seeded inputs; returns both results as f32 arrays. */
async function both(
  shapes: number[][],
  fn: (...xs: Tensor[]) => Tensor,
  dtype: 'float32' | 'float16' | 'bfloat16' = 'float32',
): Promise<{ cpu: Float32Array; gpu: Float32Array; shape: readonly number[] }> {
  const out: Float32Array[] = [];
  let shape: readonly number[] = [];
  for (const device of ['cpu', 'webgpu']) {
    const xs = shapes.map((s, i) => k.randn(s, { seed: 10 + i, device }).to(dtype));
    const y = fn(...xs);
    shape = y.shape;
    out.push(Float32Array.from(await y.to('float32').data()));
    xs.forEach((x) => x.dispose());
    y.dispose();
  }
  return { cpu: out[0], gpu: out[1], shape };
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = atol): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - b[i]) - rtol * Math.abs(b[i]);
    if (err > worst || Number.isNaN(a[i]) !== Number.isNaN(b[i])) {
      worst = Number.isNaN(err) ? Infinity : err;
      at = i;
    }
  }
  expect(worst <= atol, `element ${at}: webgpu ${a[at]} vs cpu ${b[at]}`).toBe(true);
}

suite('webgpu backend', () => {
  beforeAll(async () => {
    await k.useBackend('webgpu');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it('Philox: the same numbers as the cpu generator (uniform exactly, normal to f32 precision)', async () => {
    const n = 4099;
    const ug = await k.rand([n], { seed: 123, device: 'webgpu' }).data();
    const uc = await k.rand([n], { seed: 123, device: 'cpu' }).data();
    expect(Array.from(ug)).toEqual(Array.from(uc));
    const ng = await k.randn([n], { seed: 123, device: 'webgpu' }).data();
    const nc = await k.randn([n], { seed: 123, device: 'cpu' }).data();
    expectClose(ng, nc, 2e-6, 2e-6);
    // A counter past 2^32 carries into the high word.
    const be = k.getBackend();
    const counter = 2 ** 32 - 3;
    const s = be.random!('normal', 'float32', 64, [5, 6], counter);
    const got = await be.download({ storage: s, dtype: 'float32', shape: [64], strides: [1], offset: 0 });
    be.free(s);
    const want = k.philoxFill('normal', new Float64Array(64), [5, 6], counter);
    expectClose(got as Float32Array, want, 2e-6, 2e-6);
  });

  it('sin and cos stay accurate for large arguments (SD timestep embeddings reach ~1000 rad)', async () => {
    // Exact inputs on both devices (webgpu's randn is only f32-close, which ×1000 would show).
    const xs = Float32Array.from({ length: 4096 }, (_, i) => (i - 2048) * 0.4873 + Math.sin(i) * 0.01);
    const run = async (device: string) => {
      const x = k.tensor(xs, { device });
      const y = k.cat([x.sin(), x.cos()], 0);
      const out = Float32Array.from(await y.data());
      x.dispose();
      y.dispose();
      return out;
    };
    expectClose(await run('webgpu'), await run('cpu'), 2e-6, 0);
  });

  it('int32 math is exact beyond 2^24 and bool round-trips', async () => {
    const big = k.tensor([2 ** 30 + 1, -(2 ** 29) - 3, 7], { dtype: 'int32' });
    expect(Array.from(await big.add(k.tensor([1, 1, 1], { dtype: 'int32' })).data())).toEqual([2 ** 30 + 2, -(2 ** 29) - 2, 8]);
    expect(Array.from(await big.sum().data())).toEqual([2 ** 30 + 1 - 2 ** 29 - 3 + 7]);
    expect(Array.from(await big.max().data())).toEqual([2 ** 30 + 1]);
    const ones = k.full([70000], 2 ** 20, { dtype: 'int32' });
    expect(Array.from(await ones.sum().data())).toEqual(
      [70000 * 2 ** 20 - 2 ** 32 * Math.floor((70000 * 2 ** 20) / 2 ** 32)].map((v) => v | 0),
    );
    expect(await k.tensor([1, -1, 0]).gt(0).toArray()).toEqual([true, false, false]);
    expect(await k.tensor([true, false, true]).logicalNot().toArray()).toEqual([false, true, false]);
    expect(Array.from(await k.tensor([1.7, -2.7, 3]).to('int32').data())).toEqual([1, -2, 3]);
  });

  it('float16 and bfloat16 storage round to nearest even like the cpu backend', async () => {
    const x = k.tensor([1.0009765625 + 2 ** -12, 65504, 70000, 1e-8, -2.5, 3e-6]);
    expect(Array.from(await x.to('float16').data())).toEqual(Array.from(await (await x.toBackend('cpu')).to('float16').data()));
    const b = k.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.14159]).to('bfloat16');
    expect(Array.from(await b.data())).toEqual([1, 1.015625, 3.140625]);
    // Odd offsets and strides into packed halves.
    for (const dt of ['float16', 'bfloat16'] as const) {
      const r = await both(
        [[5, 7]],
        (a) =>
          a
            .slice(1, 1, 7, 2)
            .t()
            .exp()
            .add(a.select(0, 2).slice(0, 1, 6)),
        dt,
      );
      expectClose(r.gpu, r.cpu, 1e-2, 1e-2);
    }
  });

  it('bfloat16 kernels: matmul, conv, norms, softmax, reductions', async () => {
    const cases: [number[][], (...x: Tensor[]) => Tensor][] = [
      [
        [
          [3, 9, 17],
          [17, 5],
        ],
        (a, b) => a.matmul(b),
      ],
      [
        [
          [1, 3, 6, 6],
          [4, 3, 3, 3],
        ],
        (x, w) => k.conv2d(x, w, null, { padding: 1 }),
      ],
      [[[2, 4, 3, 3]], (x) => k.groupNormSilu(x, 2)],
      [[[3, 10]], (x) => k.layerNorm(x, [10]).softmax(-1)],
      [[[4, 33]], (x) => x.sum(1)],
    ];
    for (const [shapes, fn] of cases) {
      const r = await both(shapes, fn, 'bfloat16');
      expectClose(r.gpu, r.cpu, 5e-2, 3e-2);
    }
  });

  it('matmul across tiles, with transposed and broadcast operands, and split-K', async () => {
    let r = await both(
      [
        [3, 70, 130],
        [130, 90],
      ],
      (a, b) => a.matmul(b),
    );
    expect(r.shape).toEqual([3, 70, 90]);
    expectClose(r.gpu, r.cpu, 2e-4, 1e-4);
    r = await both(
      [
        [130, 70],
        [90, 130],
      ],
      (a, b) => a.t().matmul(b.t()),
    );
    expectClose(r.gpu, r.cpu, 2e-4, 1e-4);
    r = await both(
      [
        [2, 68, 100],
        [96, 132],
      ],
      (a, b) => a.slice(2, 4, 100).matmul(b),
    ); // vec4 loads, offset 4
    expectClose(r.gpu, r.cpu, 2e-4, 1e-4);
    r = await both(
      [
        [2, 2100],
        [2100, 5],
      ],
      (a, b) => a.matmul(b),
    ); // small output, long K: split-K
    expectClose(r.gpu, r.cpu, 1e-3, 1e-4);
    r = await both(
      [
        [2, 2100],
        [2100, 5],
      ],
      (a, b) => a.matmul(b),
      'float16',
    );
    expectClose(r.gpu, r.cpu, 0.3, 2e-2);
  });

  it('conv2d 3×3 implicit GEMM with both gradients at several tile counts', async () => {
    const convCases: [number[], number[], k.Conv2dOptions][] = [
      [[2, 8, 17, 15], [16, 8, 3, 3], { padding: 1 }],
      [[1, 6, 20, 20], [70, 3, 3, 3], { padding: 1, stride: 2, groups: 2 }],
      [[2, 40, 24, 24], [8, 40, 3, 3], { padding: 1 }], // K = 360, wgrad K = 1152: split-K
    ];
    // Use the GPU split-K threshold (CPU drivers get a lower one) so the split weight-gradient path runs.
    const { tuning } = k.getBackend() as unknown as { tuning: { splitKBelowTiles: number } };
    const saved = tuning.splitKBelowTiles;
    tuning.splitKBelowTiles = 32;
    for (const [xs, ws, opts] of convCases) {
      const results: Float32Array[][] = [];
      for (const device of ['cpu', 'webgpu']) {
        const x = k.randn(xs, { seed: 1, device, requiresGrad: true });
        const w = k.randn(ws, { seed: 2, device, requiresGrad: true });
        const y = k.conv2d(x, w, null, opts);
        const g = k.randn(y.shape, { seed: 3, device });
        y.mul(g).sum().backward();
        results.push([await y.data(), await x.grad!.data(), await w.grad!.data()].map((a) => Float32Array.from(a)));
      }
      for (let i = 0; i < 3; i++) expectClose(results[1][i], results[0][i], 2e-3, 1e-4);
    }
    tuning.splitKBelowTiles = saved;
  });

  it('fused attention over several key tiles and query blocks, with mask and causal', async () => {
    let r = await both(
      [
        [2, 70, 40],
        [2, 100, 40],
        [2, 100, 24],
      ],
      (q, kk, v) => k.scaledDotProductAttention(q, kk, v),
    );
    expectClose(r.gpu, r.cpu, 1e-4);
    r = await both(
      [
        [1, 80, 16],
        [1, 80, 16],
        [1, 80, 16],
        [80, 80],
      ],
      (q, kk, v, m) => k.scaledDotProductAttention(q, kk, v, { attnMask: m, isCausal: true }),
    );
    expectClose(r.gpu, r.cpu, 1e-4);
  });

  it('row kernels and reductions beyond one workgroup', async () => {
    const cases: [number[][], (...x: Tensor[]) => Tensor][] = [
      [[[3, 1000]], (x) => x.softmax(-1)],
      [[[2, 300]], (x) => k.layerNorm(x, [300])],
      [[[2, 8, 32, 32], [8], [8]], (x, w, b) => k.groupNormSilu(x, 4, w, b, 1e-5)],
      [[[100000]], (x) => x.sum()],
      [[[300000]], (x) => x.max()], // two-pass: chunked partials, then a second reduction
      [[[2, 70000]], (x) => x.t().sum(0)],
      [[[3, 5000]], (x) => x.max(1)],
      [[[300, 200]], (x) => x.t().mean(1)],
      [[[64, 64, 3]], (x) => x.sum([0, 2])],
    ];
    for (const [shapes, fn] of cases) {
      const r = await both(shapes, fn);
      expectClose(r.gpu, r.cpu, 2e-4, 2e-4);
    }
  });

  it('float16/bfloat16 sums accumulate in f32 inside the reduce kernel (every path)', async () => {
    // In a half accumulator a sum of 0.01s stalls near 32; in f32 it reaches ~700.
    const be = k.getBackend();
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const x = k.full([70000], 0.01).to(dtype);
      const h = (await x.to('float32').data())[0];
      const cases: [number[], number[], number[]][] = [
        [[70000], [0], [70000 * h]], // chunked f32 partials, then a second pass
        [[4, 16000], [1], new Array(4).fill(16000 * h)], // a workgroup tree per output
        [[16000, 4], [0], new Array(4).fill(16000 * h)], // the same over strided reads
      ];
      for (const [shape, axes, want] of cases) {
        const strides = shape.length === 1 ? [1] : [shape[1], 1];
        const s = be.reduce('sum', { storage: x._view().storage, dtype, shape, strides, offset: 0 }, axes);
        const got = await be.download({ storage: s, dtype, shape: [want.length], strides: [1], offset: 0 });
        be.free(s);
        const vals = Array.from(got as Uint16Array, (b) => (dtype === 'float16' ? k.f16BitsToF32(b) : k.bf16BitsToF32(b)));
        vals.forEach((v, i) =>
          expect(Math.abs(v - want[i]), `${dtype} sum over ${shape}: ${v} vs ${want[i]}`).toBeLessThanOrEqual(
            want[i] * (dtype === 'float16' ? 2 ** -10 : 2 ** -7),
          ),
        );
      }
      x.dispose();
    }
  });

  it('embedding forward and backward with repeated ids', async () => {
    const ids = [3, 1, 3, 3, 0, 7, 1];
    const res: Float32Array[][] = [];
    for (const device of ['cpu', 'webgpu']) {
      const w = k.randn([9, 5], { seed: 4, device, requiresGrad: true });
      const y = k.embedding(k.tensor(ids, { dtype: 'int32', device }), w);
      y.mul(k.randn(y.shape, { seed: 5, device }))
        .sum()
        .backward();
      res.push([Float32Array.from(await y.data()), Float32Array.from(await w.grad!.data())]);
    }
    expectClose(res[1][0], res[0][0], 1e-6);
    expectClose(res[1][1], res[0][1], 1e-5);
  });

  it('AdamW updates param, m and v in place (f32, f16, bf16)', async () => {
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const res: Float32Array[][] = [];
      for (const device of ['cpu', 'webgpu']) {
        const [p, g, m] = [1, 2, 3].map((s) => k.randn([37], { seed: s, device }).to(dtype));
        const v = k.rand([37], { seed: 4, device }).to(dtype);
        const before = p._view().storage;
        k.adamwUpdate(p, g, m, v, hp);
        expect(p._view().storage).toBe(before);
        res.push([await p.data(), await m.data(), await v.data()].map((a) => Float32Array.from(a)));
      }
      const tol = dtype === 'float32' ? 1e-5 : 1e-2;
      for (let i = 0; i < 3; i++) expectClose(res[1][i], res[0][i], tol, tol);
    }
  });

  it('pools buffers, batches dispatches and reports pool bytes', async () => {
    const x = k.randn([64, 64], { seed: 1 });
    const step = () => k.tidy(() => x.matmul(x).relu().sum());
    for (let i = 0; i < 3; i++) {
      const w = step();
      await w.data();
      w.dispose();
    }
    const be = k.getBackend();
    const before = be.memoryInfo!();
    for (let i = 0; i < 20; i++) step().dispose();
    const s = step();
    await s.data();
    s.dispose();
    const after = be.memoryInfo!();
    expect(after.gpuAllocatedBytes).toBe(before.gpuAllocatedBytes);
    expect(after.gpuDispatches - before.gpuDispatches).toBeGreaterThan(3 * (after.gpuSubmits - before.gpuSubmits));
    const mem = k.memory();
    expect(mem.backend).toBe('webgpu');
    expect(typeof mem.gpuPoolBytes).toBe('number');
    x.dispose();
  });

  it('rejects a tensor larger than maxStorageBufferBindingSize with the size and the limit', async () => {
    const be = k.getBackend() as unknown as { limits: { maxStorageBufferBindingSize: number } };
    const limit = be.limits.maxStorageBufferBindingSize;
    const n = Math.floor(limit / 4) + 1;
    expect(() => k.zeros([n])).toThrow(k.BackendError);
    expect(() => k.zeros([n])).toThrow(new RegExp(`${n * 4} bytes.*maxStorageBufferBindingSize of ${limit}`));
  });

  it('rejects attention head dims that do not fit workgroup memory', () => {
    const q = k.zeros([1, 2, 2000]);
    expect(() => k.scaledDotProductAttention(q, q, q)).toThrow(/head dims E=2000/);
    q.dispose();
  });

  it('rejects float64 with a clear error', () => {
    expect(() => k.zeros([2], { dtype: 'float64' })).toThrow(/float64 is not supported/);
  });

  it('surfaces device loss as a BackendError on the next op', async () => {
    const { createWebGPUBackend } = await import('../src/backends/webgpu/index.js');
    const be = await createWebGPUBackend();
    const s = be.fill('float32', 4, 1);
    be.device.destroy();
    await be.device.lost;
    expect(() => be.fill('float32', 4, 1)).toThrow(/device was lost/);
    await expect(be.download({ storage: s, dtype: 'float32', shape: [4], strides: [1], offset: 0 })).rejects.toThrow(k.BackendError);
  });
});
