/**
 * AdamW on the wasm backend keeps its fused kernel when the parameter's storage is shared (a live
 * view, as a benchmark's or a logger's read leaves behind): before, such a step fell back to the
 * composite, a dozen full-size temporaries, ~100× slower at 100M parameters. The update must
 * still match the cpu backend and leave the view's data alone (the storage is swapped, as
 * `assign_` promises).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';

const hp = (step: number) => ({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step });

async function steps(shareViews: boolean): Promise<{ p: Float32Array; m: Float32Array; v: Float32Array; view: Float32Array | null }> {
  const n = 1001; // not a multiple of 4: the SIMD body and the scalar tail
  const [p, g, m, v] = [k.randn([n], { seed: 1 }), k.randn([n], { seed: 2 }), k.zeros([n]), k.zeros([n])];
  const view = shareViews ? p.slice(0, 0, 10) : null;
  const mView = shareViews ? m.reshape([7, 143]) : null;
  for (let s = 1; s <= 3; s++) k.adamwUpdate(p, g, m, v, hp(s));
  const out = {
    p: (await p.data()) as Float32Array,
    m: (await m.data()) as Float32Array,
    v: (await v.data()) as Float32Array,
    view: view && ((await view.data()) as Float32Array),
  };
  [p, g, m, v, view, mView].forEach((t) => t?.dispose());
  return out;
}

describe('wasm adamw with shared storage', () => {
  beforeAll(async () => {
    await k.useBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it('runs the fused kernel and matches the cpu backend', async () => {
    await k.useBackend('cpu');
    const ref = await steps(false);
    const wasm = await k.useBackend('wasm');
    const target = wasm as unknown as { adamw: (...a: unknown[]) => unknown };
    const original = target.adamw;
    let calls = 0;
    target.adamw = (...a: unknown[]) => {
      calls++;
      return original.apply(wasm, a);
    };
    const got = await steps(true).finally(() => {
      delete (target as { adamw?: unknown }).adamw;
    });
    expect(calls).toBe(3);
    for (const key of ['p', 'm', 'v'] as const) {
      for (let i = 0; i < ref[key].length; i++)
        expect(Math.abs(got[key][i] - ref[key][i]), `${key}[${i}]`).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(ref[key][i]));
    }
    // The view taken before the steps still holds the initial parameters.
    await k.useBackend('wasm');
    const first = k.tidy(() => k.randn([1001], { seed: 1 }).slice(0, 0, 10));
    expect([...got.view!]).toEqual([...((await first.data()) as Float32Array)]);
    first.dispose();
  });

  it('streams a parameter over several chunks and claimed blocks, as the cpu backend computes it', async () => {
    // 2^20 + 4,103: nine staged chunks through both buffer sets, the last with one whole and one
    // partial 4,096-element block, then a 3-element tail in JS.
    const n = (1 << 20) + 4103;
    const run = async () => {
      const [p, g, m, v] = [k.randn([n], { seed: 3 }), k.randn([n], { seed: 4 }), k.zeros([n]), k.zeros([n])];
      for (let s = 1; s <= 2; s++) k.adamwUpdate(p, g, m, v, hp(s));
      const out = await Promise.all([p, m, v].map(async (t) => (await t.data()) as Float32Array));
      [p, g, m, v].forEach((t) => t.dispose());
      return out;
    };
    await k.useBackend('cpu');
    const ref = await run();
    await k.useBackend('wasm');
    const got = await run();
    ref.forEach((r, j) => {
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[j][i] - r[i]) / (1e-6 + 1e-5 * Math.abs(r[i])));
      expect(worst, ['p', 'm', 'v'][j]).toBeLessThanOrEqual(1);
    });
  });
});
