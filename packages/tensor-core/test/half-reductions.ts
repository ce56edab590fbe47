/**
 * Reductions over float16/bfloat16 tensors accumulate in f32 and round once, as PyTorch does
 * (`acc_type`), on every backend: `paritySuite` runs these on each backend it is given, and
 * `half-reductions.test.ts` on cpu, also through the composites. The expected values are computed
 * here in f64 from the half-rounded inputs, independently of the library's reductions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

type Half = 'float16' | 'bfloat16';

/** Relative spacing of the half types: values within a few of these of the f64 answer are right. */
const ULP: Record<Half, number> = { float16: 2 ** -10, bfloat16: 2 ** -7 };

/** `data` (made on cpu in f32 from a seed) as a `dtype` tensor on the selected backend. */
async function onBackend(backend: string, make: () => Tensor, dtype: Half): Promise<{ x: Tensor; values: Float32Array }> {
  await k.useBackend('cpu');
  const src = make();
  const half = src.to(dtype);
  const values = (await half.data()) as Float32Array;
  await k.useBackend(backend);
  const x = await half.toBackend(backend);
  src.dispose();
  half.dispose();
  return { x, values };
}

const sum64 = (v: ArrayLike<number>, from = 0, to = v.length): number => {
  let s = 0;
  for (let i = from; i < to; i++) s += v[i];
  return s;
};

function expectNear(got: number, want: number, ulps: number, what: string): void {
  expect(Number.isFinite(got), `${what}: ${got} is not finite (want ${want})`).toBe(true);
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(ulps * Math.abs(want) + 1e-6);
}

/** Registers the half-precision reduction tests for `backend`. */
export function halfReductionSuite(backend: string, dtypes: readonly Half[] = ['float16', 'bfloat16']): void {
  describe(`half-precision reductions accumulate in f32: ${backend}`, () => {
    beforeAll(async () => {
      await k.useBackend(backend);
    });
    afterAll(async () => {
      await k.useBackend('cpu');
    });

    for (const dtype of dtypes) {
      const ulp = ULP[dtype];

      it(`${dtype}: the mean of 70,000 values (their sum exceeds 65504) is finite and right`, async () => {
        const { x, values } = await onBackend(backend, () => k.rand([2, 70000], { seed: 1 }).add(1), dtype);
        const all = await x.mean().item();
        expectNear(all, sum64(values) / 140000, 2 * ulp, 'mean()');
        const rows = (await x.mean(1).to('float32').data()) as Float32Array;
        expectNear(rows[0], sum64(values, 0, 70000) / 70000, 2 * ulp, 'mean(1)[0]');
        expectNear(rows[1], sum64(values, 70000) / 70000, 2 * ulp, 'mean(1)[1]');
        x.dispose();
      });

      it(`${dtype}: a sum of 70,000 small values does not stall`, async () => {
        // In f16 a running sum stops growing once the addend is below half an ulp (at 2048 for
        // ones, at 32 for 0.01): the f32 answer is ~700.
        const { x, values } = await onBackend(backend, () => k.rand([70000], { seed: 2 }).mul(0.002).add(0.009), dtype);
        expectNear(await x.sum().item(), sum64(values), 2 * ulp, 'sum()');
        x.dispose();
      });

      it(`${dtype}: sum keeps the result type (overflow past the type's range, as torch.sum)`, async () => {
        const { x } = await onBackend(backend, () => k.full([70000], 1.5), dtype);
        const s = await x.sum().item();
        if (dtype === 'float16') expect(s).toBe(Infinity);
        else expectNear(s, 105000, 2 * ulp, 'bf16 sum()');
        x.dispose();
      });

      it(`${dtype}: var and std of values around 3 with spread 0.01 are not NaN`, async () => {
        const { x, values } = await onBackend(backend, () => k.randn([3000], { seed: 3 }).mul(0.01).add(3), dtype);
        const mu = sum64(values) / values.length;
        let ss = 0;
        for (const v of values) ss += (v - mu) ** 2;
        const want = ss / (values.length - 1);
        expectNear(await x.var().item(), want, 8 * ulp + 1e-2, 'var()');
        expectNear(await x.std().item(), Math.sqrt(want), 8 * ulp + 1e-2, 'std()');
        x.dispose();
      });

      it(`${dtype}: mseLoss over 70,000 elements is the mean squared error, with a finite gradient`, async () => {
        const a = await onBackend(backend, () => k.randn([70000], { seed: 4 }), dtype);
        const b = await onBackend(backend, () => k.randn([70000], { seed: 5 }), dtype);
        let ss = 0;
        for (let i = 0; i < a.values.length; i++) ss += (a.values[i] - b.values[i]) ** 2;
        a.x.requiresGrad_();
        const loss = k.tidy(() => {
          const l = k.mseLoss(a.x, b.x);
          l.backward();
          return l;
        });
        expect(loss.dtype).toBe(dtype);
        expectNear(await loss.item(), ss / 70000, 2 * ulp, 'mseLoss');
        const g = (await a.x.grad!.to('float32').data()) as Float32Array;
        const i = 123;
        expectNear(g[i], (2 * (a.values[i] - b.values[i])) / 70000, 4 * ulp, 'mseLoss gradient');
        [a.x, b.x, loss, a.x.grad!].forEach((t) => t.dispose());
      });

      it(`${dtype}: norm() of elements above 256 (their squares overflow f16) is finite and right`, async () => {
        const { x, values } = await onBackend(backend, () => k.rand([1000], { seed: 7 }).mul(100).add(250), dtype);
        let ss = 0;
        for (const v of values) ss += v * v;
        expectNear(await x.norm().item(), Math.sqrt(ss), 2 * ulp, 'norm()');
        x.dispose();
      });

      it(`${dtype}: logSoftmax and softmax over a row of 70,000 (its sum of exponentials is past 65504)`, async () => {
        const { x, values } = await onBackend(backend, () => k.rand([1, 70000], { seed: 8 }).mul(0.01), dtype);
        let m = -Infinity;
        for (const v of values) m = Math.max(m, v);
        let s = 0;
        for (const v of values) s += Math.exp(v - m);
        const lse = m + Math.log(s);
        const logp = (await x.logSoftmax(-1).to('float32').data()) as Float32Array;
        const p = (await x.softmax(-1).to('float32').data()) as Float32Array;
        for (const i of [0, 12345, 69999]) {
          expectNear(logp[i], values[i] - lse, 2 * ulp, `logSoftmax[${i}]`);
          // Probabilities near 1.4e-5 are f16 subnormals (spacing 6e-8): a few tenths of a percent.
          expectNear(p[i], Math.exp(values[i] - lse), dtype === 'float16' ? 1e-2 : 2 * ulp, `softmax[${i}]`);
        }
        x.dispose();
      });

      it(`${dtype}: layerNorm and groupNorm of rows whose squared deviations overflow the half range`, async () => {
        // 4096 values of spread 100: the sum of squared deviations (~4e7) is past 65504.
        const { x, values } = await onBackend(backend, () => k.randn([2, 4096], { seed: 6 }).mul(100).add(20), dtype);
        const expected = (row: number): Float64Array => {
          const r = values.subarray(row * 4096, row * 4096 + 4096);
          const mu = sum64(r) / 4096;
          let ss = 0;
          for (const v of r) ss += (v - mu) ** 2;
          const rstd = 1 / Math.sqrt(ss / 4096 + 1e-5);
          return Float64Array.from(r, (v) => (v - mu) * rstd);
        };
        const want = [...expected(0), ...expected(1)];
        const ln = (await k.layerNorm(x, [4096]).to('float32').data()) as Float32Array;
        const gn = (await k
          .groupNorm(x.reshape([2, 4, 32, 32]), 1)
          .to('float32')
          .data()) as Float32Array;
        for (const [name, got] of [
          ['layerNorm', ln],
          ['groupNorm', gn],
        ] as const) {
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) - 4 * ulp * Math.abs(want[i]));
          expect(worst, `${name}: worst error beyond 4 ulp`).toBeLessThanOrEqual(4 * ulp);
        }
        x.dispose();
      });
    }
  });
}
