/**
 * gather, indexSelect, flip, isnan/isfinite/isinf and nearest interpolation against PyTorch 1.13
 * reference values (fixtures/torch-reference.json, made by fixtures/torch_reference.py).
 * Gradients and backend parity are covered by op-cases.ts.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';

interface InterpCase {
  in: [number, number];
  size: [number, number] | null;
  scaleFactor: number | [number, number] | null;
  out: number[][];
}
interface Reference {
  interpolate_nearest: InterpCase[];
  nearest_sweep: { maxIn: number; maxOut: number; differs: { in: number; out: number; index: number[] }[] };
  indexing: {
    x: number[][];
    gather_dim1: { index: number[][]; out: number[][]; grad: number[][] };
    gather_dim0: { index: number[][]; out: number[][] };
    index_select_dim1: { index: number[]; out: number[][] };
    flip_01: number[][];
    flip_1: number[][];
  };
}

const ref = JSON.parse(readFileSync(new URL('./fixtures/torch-reference.json', import.meta.url), 'utf8')) as Reference;
const int32 = (data: number[] | number[][]) => k.tensor(data, { dtype: 'int32' });

beforeAll(async () => {
  await k.useBackend('cpu');
});

describe('gather / indexSelect / flip match torch', () => {
  const r = ref.indexing;
  it('gather along dim 1 and dim 0, and its gradient sums repeated ids', async () => {
    const x = k.tensor(r.x, { requiresGrad: true });
    const y = k.gather(x, 1, int32(r.gather_dim1.index));
    expect(await y.toArray()).toEqual(r.gather_dim1.out);
    y.mul(k.arange(1, 7).reshape([2, 3]))
      .sum()
      .backward();
    expect(await x.grad!.toArray()).toEqual(r.gather_dim1.grad);
    expect(await k.gather(x, 0, int32(r.gather_dim0.index)).toArray()).toEqual(r.gather_dim0.out);
  });

  it('indexSelect along dim 1, and a 0-d index keeps the dim', async () => {
    const x = k.tensor(r.x);
    expect(await k.indexSelect(x, 1, int32(r.index_select_dim1.index)).toArray()).toEqual(r.index_select_dim1.out);
    expect(k.indexSelect(x, 0, k.tensor(1, { dtype: 'int32' })).shape).toEqual([1, 3]);
  });

  it('alphas_cumprod[timesteps] on a schedule', async () => {
    const alphas = k.linspace(0.9999, 0.98, 1000);
    const t = int32([999, 0, 500]);
    const picked = Array.from(await k.indexSelect(alphas, 0, t).data());
    const all = await alphas.data();
    expect(picked).toEqual([all[999], all[0], all[500]]);
  });

  it('flip over one and two dims; int tensors and empty dims', async () => {
    const x = k.tensor(r.x);
    expect(await k.flip(x, [0, 1]).toArray()).toEqual(r.flip_01);
    expect(await x.flip([-1]).toArray()).toEqual(r.flip_1);
    expect(Array.from(await k.flip(k.arange(5), [0]).data())).toEqual([4, 3, 2, 1, 0]);
    expect(await k.flip(x, []).toArray()).toEqual(r.x);
  });

  it('flip with long rows (one gather) and short rows (dim moved to the front) agree with a JS reversal', async () => {
    const [A, B, C] = [3, 4, 20];
    const x = k.arange(A * B * C).reshape([A, B, C]);
    const at = (a: number, b: number, c: number) => (a * B + b) * C + c;
    for (const dims of [[0], [1], [0, 1], [2], [0, 2], [0, 1, 2]]) {
      const want: number[] = [];
      for (let a = 0; a < A; a++) {
        for (let b = 0; b < B; b++) {
          for (let c = 0; c < C; c++)
            want.push(at(dims.includes(0) ? A - 1 - a : a, dims.includes(1) ? B - 1 - b : b, dims.includes(2) ? C - 1 - c : c));
        }
      }
      expect(Array.from(await k.flip(x, dims).data()), `dims ${dims.join(',')}`).toEqual(want);
    }
  });
});

describe('isnan / isfinite / isinf', () => {
  it('classify NaN and ±Infinity in float32, float16 and float64; ints are finite', async () => {
    for (const dtype of ['float32', 'float16', 'float64'] as const) {
      const x = k.tensor([1, NaN, Infinity, -Infinity, -0, 3e38], { dtype: 'float64' }).to(dtype);
      const big = dtype === 'float16' ? false : true; // 3e38 overflows float16 to Infinity
      expect(await k.isnan(x).toArray()).toEqual([false, true, false, false, false, false]);
      expect(await k.isfinite(x).toArray()).toEqual([true, false, false, false, true, big]);
      expect(await x.isinf().toArray()).toEqual([false, false, true, true, false, !big]);
      expect(k.isnan(x).dtype).toBe('bool');
    }
    expect(await k.isfinite(k.arange(3)).toArray()).toEqual([true, true, true]);
    expect(await k.isnan(k.arange(3)).toArray()).toEqual([false, false, false]);
  });
});

describe('interpolate nearest matches torch', () => {
  it.each(
    ref.interpolate_nearest.map(
      (c) => [`${c.in.join('x')} → ${c.size ? `size ${c.size.join('x')}` : `scale ${JSON.stringify(c.scaleFactor)}`}`, c] as const,
    ),
  )('%s', async (_name, c) => {
    const [h, w] = c.in;
    const x = k
      .arange(h * w)
      .reshape([1, 1, h, w])
      .to('float32');
    const options = c.size ? { size: c.size } : { scaleFactor: c.scaleFactor as number | [number, number] };
    const y = k.interpolate(x, options);
    expect(y.shape).toEqual([1, 1, c.out.length, c.out[0].length]);
    expect((await y.toArray()) as number[][][][]).toEqual([[c.out]]);
  });

  it(`source indices for every size pair up to ${ref.nearest_sweep.maxIn} → ${ref.nearest_sweep.maxOut}, float32 rounding included`, async () => {
    const { maxIn, maxOut, differs } = ref.nearest_sweep;
    const special = new Map(differs.map((d) => [`${d.in}:${d.out}`, d.index]));
    // The sweep's special cases are where float32 rounding moves an index off the exact formula.
    expect(special.size).toBeGreaterThan(0);
    let checked = 0;
    for (let n = 1; n <= maxIn; n++) {
      const row = k.arange(n).reshape([1, 1, 1, n]).to('float32');
      for (let m = 1; m <= maxOut; m++) {
        const want = special.get(`${n}:${m}`) ?? Array.from({ length: m }, (_, i) => Math.floor((i * n) / m));
        const got = Array.from(await k.tidy(() => k.interpolate(row, { size: [1, m] })).data());
        if (got.join() !== want.join()) throw new Error(`in ${n} → out ${m}: got [${got.join(', ')}], torch [${want.join(', ')}]`);
        checked++;
      }
      row.dispose();
    }
    expect(checked).toBe(maxIn * maxOut);
  });

  it('refuses size and scaleFactor together, bad sizes, and other modes', () => {
    const x = k.zeros([1, 1, 4, 4]);
    expect(() => k.interpolate(x, { size: [8, 8], scaleFactor: 2 })).toThrow(/give size or scaleFactor, not both/);
    expect(() => k.interpolate(x, { size: [0, 8] })).toThrow(k.ArgumentError);
    expect(() => k.interpolate(x, { size: [2.5, 8] as [number, number] })).toThrow(/size must be a positive integer/);
    expect(() => k.interpolate(x, { scaleFactor: 0.1 })).toThrow(/gives output size \[0, 0\]/);
    expect(() => k.interpolate(x, { size: 8, mode: 'bilinear' as never })).toThrow(/mode 'bilinear' is not supported/);
  });
});
