/**
 * The webgpu backend's fused gradient kernels (attentionBackward, layerNormBackward,
 * groupNormBackward): the shared fused-backward table through the op layer, and the kernels called
 * directly against the cpu backend's autograd gradients of the same op on the same seeded inputs
 * (several key and query tiles, masks, causal, a fully masked row, SiLU, missing affine operands,
 * strided inputs, and float16 storage: `array<f16>` on shader-f16 devices, packed bits elsewhere).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor, View } from '@kiln/tensor-core';
import { fusedBackwardSuite } from './fused-backward.js';
import { webgpuUnavailable } from './webgpu-env.js';

const suite = webgpuUnavailable === null ? describe : describe.skip;

// The shared table of fused-gradient cases through the op layer (it checks the kernel ran).
if (webgpuUnavailable === null) fusedBackwardSuite('webgpu', { dtypes: ['float32', 'float16'] });

type Half = 'float32' | 'float16';

/** Same seeded inputs on `device`, in `dtype`. */
function inputs(device: string, shapes: readonly (readonly number[])[], dtype: Half, requiresGrad = false): Tensor[] {
  return shapes.map((s, i) => {
    const t = k.randn([...s], { seed: 20 + i, device }).to(dtype);
    return requiresGrad ? t.requiresGrad_(true) : t;
  });
}

/** Gradients of Σ(op(xs) · g) on cpu (f32 autograd, the op layer's composite), for the given inputs. */
async function cpuGrads(
  shapes: readonly (readonly number[])[],
  gShape: readonly number[],
  op: (...xs: Tensor[]) => Tensor,
): Promise<Float32Array[]> {
  const xs = inputs('cpu', shapes, 'float32', true);
  const g = k.randn([...gShape], { seed: 99, device: 'cpu' });
  op(...xs)
    .mul(g)
    .sum()
    .backward();
  return Promise.all(xs.map(async (x) => Float32Array.from(await x.grad!.data())));
}

async function read(dtype: Half, shape: readonly number[], storage: unknown): Promise<Float32Array> {
  const be = k.getBackend();
  const n = shape.reduce((a, b) => a * b, 1);
  const data = await be.download({ storage, dtype, shape: [n], strides: [1], offset: 0 });
  be.free(storage);
  return Float32Array.from(dtype === 'float16' ? Array.from(data, (h) => k.f16BitsToF32(h)) : data);
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]) - rtol * Math.abs(want[i]);
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      at = i;
    }
  }
  expect(worst <= atol, `${what}, element ${at}: webgpu ${got[at]} vs cpu ${want[at]}`).toBe(true);
}

const tol = (dtype: Half) => (dtype === 'float32' ? { atol: 2e-4, rtol: 2e-4 } : { atol: 3e-2, rtol: 3e-2 });

suite('webgpu fused gradients', () => {
  beforeAll(async () => {
    await k.useBackend('webgpu');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  const attentionCases: { name: string; q: number[]; kv: number[]; ev: number; mask?: number[]; causal?: boolean }[] = [
    // vec4 head dims, several key tiles and query blocks, Lq ≠ Lk.
    { name: 'vec4, 2 batches, several tiles', q: [2, 70, 16], kv: [2, 100, 16], ev: 8 },
    // scalar head dims, an additive mask and causal together.
    { name: 'scalar dims, mask and causal', q: [1, 33, 6], kv: [1, 45, 6], ev: 5, mask: [33, 45], causal: true },
  ];
  for (const dtype of ['float32', 'float16'] as const) {
    for (const c of attentionCases) {
      it(`attentionBackward ${dtype}: ${c.name}`, async () => {
        const [B, Lq, E] = c.q;
        const Lk = c.kv[1];
        const shapes = [c.q, c.kv, [B, Lk, c.ev], ...(c.mask ? [c.mask] : [])];
        const scale = 0.3;
        const op = (q: Tensor, kk: Tensor, v: Tensor, m?: Tensor) =>
          k.scaledDotProductAttention(q, kk, v, { attnMask: m ?? null, isCausal: c.causal ?? false, scale });
        const want = await cpuGrads(shapes, [B, Lq, c.ev], op);
        const [q, kk, v, m] = inputs('webgpu', shapes, dtype);
        const g = k.randn([B, Lq, c.ev], { seed: 99, device: 'webgpu' }).to(dtype);
        const mask = m ? k.contiguous(k.expand(m, [B, Lq, Lk])) : null;
        const [dq, dk, dv] = k.getBackend().attentionBackward!(
          q._view(),
          kk._view(),
          v._view(),
          mask?._view() ?? null,
          c.causal ?? false,
          scale,
          g._view(),
        );
        const got = [await read(dtype, [B, Lq, E], dq), await read(dtype, [B, Lk, E], dk), await read(dtype, [B, Lk, c.ev], dv)];
        const t = tol(dtype);
        ['dq', 'dk', 'dv'].forEach((name, i) => expectClose(got[i], want[i], t.atol, t.rtol, name));
      });
    }
  }

  it('attentionBackward: one key-row pass per gradient when dk and dv together would pass the binding limit', async () => {
    const [B, Lq, Lk, E, Ev] = [2, 9, 11, 8, 4];
    const shapes = [
      [B, Lq, E],
      [B, Lk, E],
      [B, Lk, Ev],
    ];
    const want = await cpuGrads(shapes, [B, Lq, Ev], (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { isCausal: true }));
    const [q, kk, v] = inputs('webgpu', shapes, 'float32');
    const g = k.randn([B, Lq, Ev], { seed: 99, device: 'webgpu' });
    // Only the kernel's choice reads this limit (the buffer pool keeps its own copy).
    const { limits } = k.getBackend() as unknown as { limits: { maxStorageBufferBindingSize: number } };
    const saved = limits.maxStorageBufferBindingSize;
    limits.maxStorageBufferBindingSize = B * Lk * (E + Ev) * 4 - 4;
    const before = k.memory().gpuDispatches as number;
    let res: unknown[];
    try {
      res = k.getBackend().attentionBackward!(q._view(), kk._view(), v._view(), null, true, 1 / Math.sqrt(E), g._view());
    } finally {
      limits.maxStorageBufferBindingSize = saved;
    }
    // The query-row kernel and two key-row passes, no split copies.
    expect((k.memory().gpuDispatches as number) - before).toBe(3);
    const got = [
      await read('float32', [B, Lq, E], res[0]),
      await read('float32', [B, Lk, E], res[1]),
      await read('float32', [B, Lk, Ev], res[2]),
    ];
    ['dq', 'dk', 'dv'].forEach((name, i) => expectClose(got[i], want[i], 2e-4, 2e-4, name));
  });

  it('attentionBackward: a fully masked query row passes no gradient', async () => {
    // Row 2 of the mask is all −∞: dq's row is zero and dk, dv equal the gradients without that row.
    const [B, Lq, Lk, E] = [1, 5, 7, 8];
    const maskData = Array.from({ length: Lq * Lk }, (_, i) => (Math.floor(i / Lk) === 2 ? -Infinity : 0));
    const q = k.randn([B, Lq, E], { seed: 1 });
    const kk = k.randn([B, Lk, E], { seed: 2 });
    const v = k.randn([B, Lk, E], { seed: 3 });
    const g = k.randn([B, Lq, E], { seed: 4 });
    const mask = k.tensor(maskData).reshape([B, Lq, Lk]);
    const [dq, dk, dv] = k.getBackend().attentionBackward!(q._view(), kk._view(), v._view(), mask._view(), false, 0.5, g._view());
    const got = [await read('float32', [Lq, E], dq), await read('float32', [Lk, E], dk), await read('float32', [Lk, E], dv)];
    expect(Array.from(got[0].slice(2 * E, 3 * E))).toEqual(new Array(E).fill(0));
    // Reference: the same attention with query row 2 removed, on cpu.
    const keep = [0, 1, 3, 4];
    const sub = async (t: Tensor) =>
      k
        .cat(
          keep.map((r) => t.slice(1, r, r + 1)),
          1,
        )
        .toBackend('cpu');
    const [qc, gc] = [await sub(q), await sub(g)];
    const [kc, vc] = [await kk.toBackend('cpu'), await v.toBackend('cpu')];
    [qc, kc, vc].forEach((t) => t.requiresGrad_(true));
    k.scaledDotProductAttention(qc, kc, vc, { scale: 0.5 }).mul(gc).sum().backward();
    expectClose(got[1], await kc.grad!.data(), 2e-5, 2e-5, 'dk');
    expectClose(got[2], await vc.grad!.data(), 2e-5, 2e-5, 'dv');
    const dqc = await qc.grad!.data();
    keep.forEach((r, i) => expectClose(got[0].slice(r * E, (r + 1) * E), dqc.slice(i * E, (i + 1) * E), 2e-5, 2e-5, `dq row ${r}`));
  });

  it('attentionBackward rejects head dims that do not fit workgroup memory, naming them', () => {
    const q = k.zeros([1, 2, 2000]);
    const be = k.getBackend();
    expect(() => be.attentionBackward!(q._view(), q._view(), q._view(), null, false, 1, q._view())).toThrow(k.BackendError);
    expect(() => be.attentionBackward!(q._view(), q._view(), q._view(), null, false, 1, q._view())).toThrow(/E=2000, Ev=2000/);
    q.dispose();
  });

  const normCases: {
    name: string;
    x: number[];
    op: 'layer' | 'group';
    affine: 'wb' | 'w' | 'b' | 'none';
    silu?: boolean;
    groups?: number;
  }[] = [
    { name: 'layerNorm rows wider than a workgroup, weight and bias', x: [5, 300], op: 'layer', affine: 'wb' },
    { name: 'layerNorm over 2 trailing dims, no affine', x: [3, 4, 2, 10], op: 'layer', affine: 'none' },
    { name: 'layerNorm, bias only, more rows than one chunk', x: [130, 6], op: 'layer', affine: 'b' },
    { name: 'groupNorm + SiLU, weight and bias', x: [2, 8, 5, 7], op: 'group', groups: 4, affine: 'wb', silu: true },
    { name: 'groupNorm, weight only, one channel per group, 3-d input', x: [3, 6, 150], op: 'group', groups: 6, affine: 'w' },
  ];
  for (const dtype of ['float32', 'float16'] as const) {
    for (const c of normCases) {
      it(`${c.op}NormBackward ${dtype}: ${c.name}`, async () => {
        const ch = c.op === 'layer' ? c.x.slice(c.op === 'layer' && c.x.length === 4 ? 2 : 1) : [c.x[1]];
        const nAffine = ch.reduce((a, b) => a * b, 1);
        const shapes = [c.x, ...(c.affine.includes('w') ? [[nAffine]] : []), ...(c.affine.includes('b') ? [[nAffine]] : [])];
        const eps = 1e-5;
        const parts = (xs: Tensor[]) => {
          let i = 1;
          const w = c.affine.includes('w') ? xs[i++] : null;
          const b = c.affine.includes('b') ? xs[i++] : null;
          return { w: w && c.op === 'layer' ? w.reshape(ch) : w, b: b && c.op === 'layer' ? b.reshape(ch) : b };
        };
        const op = (...xs: Tensor[]) => {
          const { w, b } = parts(xs);
          return c.op === 'layer' ? k.layerNorm(xs[0], ch, w, b, eps) : k.groupNorm(xs[0], c.groups!, w, b, eps, { silu: c.silu ?? false });
        };
        const want = await cpuGrads(shapes, c.x, op);
        const xs = inputs('webgpu', shapes, dtype);
        const g = k.randn(c.x, { seed: 99, device: 'webgpu' }).to(dtype);
        const { w, b } = parts(xs);
        const be = k.getBackend();
        const v = (t: Tensor | null): View | null => t?._view() ?? null;
        const res =
          c.op === 'layer'
            ? be.layerNormBackward!(xs[0]._view(), v(w), v(b), nAffine, eps, g._view())
            : be.groupNormBackward!(xs[0]._view(), c.groups!, v(w), v(b), eps, c.silu ?? false, g._view());
        expect(res[1] !== null).toBe(w !== null);
        expect(res[2] !== null).toBe(b !== null);
        const t = tol(dtype);
        expectClose(await read(dtype, c.x, res[0]), want[0], t.atol, t.rtol, 'dx');
        let i = 1;
        if (res[1]) expectClose(await read(dtype, [nAffine], res[1]), want[i++], t.atol * 4, t.rtol, 'dweight');
        if (res[2]) expectClose(await read(dtype, [nAffine], res[2]), want[i++], t.atol * 4, t.rtol, 'dbias');
      });
    }
  }

  it('norm gradients read strided inputs (a transposed x and gy)', async () => {
    const x = k.randn([6, 20], { seed: 5 }).t(); // [20, 6], strides [1, 20]
    const g = k.randn([6, 20], { seed: 6 }).t();
    const w = k.randn([6], { seed: 7 });
    const [dx, dw] = k.getBackend().layerNormBackward!(x._view(), w._view(), null, 6, 1e-5, g._view());
    const xc = (await x.toBackend('cpu')).contiguous().requiresGrad_(true);
    const wc = (await w.toBackend('cpu')).requiresGrad_(true);
    k.layerNorm(xc, [6], wc)
      .mul(await g.toBackend('cpu'))
      .sum()
      .backward();
    expectClose(await read('float32', [20, 6], dx), await xc.grad!.data(), 2e-5, 2e-5, 'dx');
    expectClose(await read('float32', [6], dw!), await wc.grad!.data(), 2e-5, 2e-5, 'dweight');
  });
});
