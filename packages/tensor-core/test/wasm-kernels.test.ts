/**
 * The wasm backend's kernels at sizes the op-parity suite does not reach: several GEMM cache
 * blocks (M > mc, K > kc, N > nc), edge tiles, thread splits, conv chunking, attention query blocks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

async function both(fn: () => Tensor): Promise<[Float32Array, Float32Array]> {
  await k.useBackend('cpu');
  const ref = k.tidy(fn);
  await k.useBackend('wasm');
  const got = k.tidy(fn);
  const out: [Float32Array, Float32Array] = [(await got.data()) as Float32Array, (await ref.data()) as Float32Array];
  got.dispose();
  ref.dispose();
  return out;
}

function expectClose(a: Float32Array, e: Float32Array, tol: number): void {
  expect(a.length).toBe(e.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < e.length; i++) {
    const err = Math.abs(a[i] - e[i]) / (tol + tol * Math.abs(e[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  expect(worst, `element ${at}: ${a[at]} vs ${e[at]}`).toBeLessThanOrEqual(1);
}

/** Inputs are made on the current backend from seeds, so both backends see the same numbers. */
const r = (shape: number[], seed: number) => k.randn(shape, { seed });

describe('wasm kernels at block-crossing sizes', () => {
  beforeAll(async () => {
    await k.useBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it('matmul crossing mc, kc and nc blocks, with edge tiles', async () => {
    const [a, e] = await both(() => r([101, 300], 1).matmul(r([300, 1031], 2)));
    expectClose(a, e, 1e-4);
  });

  it('batched matmul with transposed and broadcast operands', async () => {
    const [a, e] = await both(() =>
      r([3, 70, 45], 3)
        .transpose(1, 2)
        .matmul(r([1, 70, 33], 4).expand([3, 70, 33])),
    );
    expectClose(a, e, 1e-4);
    const [c, d] = await both(() => r([5, 9, 17], 5).matmul(r([17, 6], 6).t().t()));
    expectClose(c, d, 1e-4);
  });

  it('tall-skinny and wide-short matmuls split across threads', async () => {
    const [a, e] = await both(() => r([517, 33], 7).matmul(r([33, 5], 8)));
    expectClose(a, e, 1e-4);
    const [c, d] = await both(() => r([3, 64], 9).matmul(r([64, 700], 10)));
    expectClose(c, d, 1e-4);
  });

  it('conv2d forward and both gradients (3x3, padding, stride 2)', async () => {
    for (const opts of [{ padding: 1 }, { stride: 2, padding: 1 }, { padding: [0, 2] as [number, number], dilation: 2 }]) {
      const fwd = () => k.conv2d(r([2, 12, 17, 19], 11), r([10, 12, 3, 3], 12), null, opts);
      const [y, ye] = await both(fwd);
      expectClose(y, ye, 1e-4);
      for (const which of [0, 1]) {
        const [g, ge] = await both(() => {
          const x = r([2, 12, 17, 19], 11).requiresGrad_(true);
          const w = r([10, 12, 3, 3], 12).requiresGrad_(true);
          const out = k.conv2d(x, w, null, opts);
          out
            .mul(r(out.shape as number[], 13))
            .sum()
            .backward();
          return k.keep(which === 0 ? x.grad! : w.grad!);
        });
        expectClose(g, ge, 2e-4);
      }
    }
  });

  it('conv2d 3x3 through Winograd F(4x4,3x3): padding 0/1/2, ragged tiles, both gradients', async () => {
    for (const [padding, H, W] of [
      [1, 13, 10],
      [0, 11, 9],
      [2, 6, 7],
      [1, 18, 23], // whole groups of four tiles and a partial one per row
    ] as const) {
      const opts = { padding };
      const xs = [2, 10, H, W]; // 10 channels: the 4-wide weight transforms end on a partial group
      const wsh = [24, 10, 3, 3];
      const [y, ye] = await both(() => k.conv2d(r(xs, 40), r(wsh, 41), null, opts));
      expectClose(y, ye, 2e-4);
      for (const which of [0, 1]) {
        const [g, ge] = await both(() => {
          const x = r(xs, 40).requiresGrad_(true);
          const w = r(wsh, 41).requiresGrad_(true);
          const out = k.conv2d(x, w, null, opts);
          out
            .mul(r(out.shape as number[], 42))
            .sum()
            .backward();
          return k.keep(which === 0 ? x.grad! : w.grad!);
        });
        expectClose(g, ge, 3e-4);
      }
    }
  });

  it('1x1 convolutions use the image as the GEMM operand (forward and both gradients)', async () => {
    const xs = [3, 24, 7, 9];
    const wsh = [17, 24, 1, 1];
    const [y, ye] = await both(() => k.conv2d(r(xs, 90), r(wsh, 91), r([17], 92)));
    expectClose(y, ye, 1e-4);
    for (const which of [0, 1]) {
      const [g, ge] = await both(() => {
        const x = r(xs, 90).requiresGrad_(true);
        const w = r(wsh, 91).requiresGrad_(true);
        const out = k.conv2d(x, w);
        out
          .mul(r(out.shape as number[], 93))
          .sum()
          .backward();
        return k.keep(which === 0 ? x.grad! : w.grad!);
      });
      expectClose(g, ge, 2e-4);
    }
  });

  it('attention over several query blocks, with mask and causal', async () => {
    const [a, e] = await both(() => k.scaledDotProductAttention(r([2, 3, 150, 16], 14), r([2, 3, 70, 16], 15), r([2, 3, 70, 24], 16)));
    expectClose(a, e, 1e-4);
    const [c, d] = await both(() =>
      k.scaledDotProductAttention(r([1, 2, 130, 8], 17), r([1, 2, 130, 8], 18), r([1, 2, 130, 8], 19), { isCausal: true }),
    );
    expectClose(c, d, 1e-4);
    const [m, n] = await both(() =>
      k.scaledDotProductAttention(r([2, 66, 8], 20), r([2, 33, 8], 21), r([2, 33, 5], 22), { attnMask: r([66, 33], 23) }),
    );
    expectClose(m, n, 1e-4);
  });

  it('softmax over long and odd rows; groupNorm+silu and layerNorm at size', async () => {
    const [a, e] = await both(() => r([7, 1001], 24).mul(3).softmax(-1));
    expectClose(a, e, 1e-5);
    const [b, f] = await both(() => k.groupNormSilu(r([2, 64, 9, 9], 25), 32, r([64], 26), r([64], 27), 1e-6));
    expectClose(b, f, 1e-4);
    const [b2, f2] = await both(() => k.groupNormSilu(r([2, 64, 8, 12], 35).mul(3).add(1), 16, r([64], 26), r([64], 27), 1e-6));
    expectClose(b2, f2, 1e-4);
    const [b4, f4] = await both(() => k.groupNorm(r([2, 8, 16, 16], 63).mul(0.5).add(100), 4));
    expectClose(b4, f4, 3e-4);
    const [b3, f3] = await both(() => k.groupNorm(r([3, 6, 4], 36), 3));
    expectClose(b3, f3, 1e-4);
    const [c, g] = await both(() => k.layerNorm(r([3, 10, 320], 28), [320], r([320], 29), r([320], 30)));
    expectClose(c, g, 1e-4);
    const [c2, g2] = await both(() => k.layerNorm(r([5, 4, 8], 37).mul(2).add(0.5), [4, 8]));
    expectClose(c2, g2, 1e-4);
    const [c3, g3] = await both(() => k.layerNorm(r([7, 6], 38), [6], r([6], 39), null));
    expectClose(c3, g3, 1e-4);
  });

  it('large elementwise add/sub/mul/div: same shape, scalar, per-row and swapped broadcasts', async () => {
    const shape = [4, 260, 1032]; // > 2^20 elements, rows a multiple of 4
    const [a, e] = await both(() =>
      r(shape, 50)
        .mul(r(shape, 51))
        .sub(r(shape, 52).div(r(shape, 53).abs().add(1))),
    );
    expectClose(a, e, 1e-5);
    const [b, f] = await both(() =>
      r(shape, 54)
        .mul(0.125)
        .add(3)
        .sub(r([4, 260, 1], 55))
        .div(r([4, 260, 1], 56).abs().add(1)),
    );
    expectClose(b, f, 1e-5);
    const [c, g] = await both(() => k.add(r([1032], 57), r(shape, 58)).mul(k.sub(2, r(shape, 59))));
    expectClose(c, g, 1e-5);
  });

  it('large transcendental unaries (exp, sigmoid, silu, tanh, gelu erf/tanh) with a ragged tail', async () => {
    const shape = [3, 7001]; // > 2^14 elements, n % 4 != 0
    const x = () => r(shape, 60).mul(4);
    for (const f of [
      (t: Tensor) => t.exp(),
      (t: Tensor) => t.sigmoid(),
      (t: Tensor) => t.silu(),
      (t: Tensor) => t.tanh(),
      (t: Tensor) => t.gelu(),
      (t: Tensor) => t.gelu({ approximate: 'tanh' }),
      (t: Tensor) => t.mul(0.3).erf(),
    ]) {
      const [a, e] = await both(() => f(x()));
      expectClose(a, e, 2e-6);
    }
    const [big, bigE] = await both(() => r(shape, 61).mul(40).exp().add(r(shape, 62).mul(-40).exp()).log());
    expectClose(big, bigE, 1e-5);
  });

  it('reductions over any axes of contiguous and strided views (bias gradients, NaN in max)', async () => {
    const cases: (() => Tensor)[] = [
      () => r([2, 6, 5, 7], 70).sum([0, 2, 3]),
      () => r([2, 6, 5, 7], 71).sum([1, 3], true),
      () => r([2, 6, 5, 7], 72).max(2),
      () => r([2, 6, 5, 7], 73).permute([3, 1, 0, 2]).min([0, 2]),
      () => r([4, 5, 6], 74).transpose(0, 2).sum([1]),
      () => r([3, 4], 75).log().max(1), // NaN rows propagate
    ];
    for (const fn of cases) {
      const [a, e] = await both(fn);
      expect(a.length).toBe(e.length);
      for (let i = 0; i < e.length; i++) {
        if (Number.isNaN(e[i])) expect(a[i]).toBeNaN();
        else expect(Math.abs(a[i] - e[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(e[i])));
      }
    }
  });

  it('backward frees the intermediates of gradient rules (no growth across steps)', async () => {
    const [q, kk, v] = [80, 81, 82].map((s) => r([2, 3, 40, 8], s).requiresGrad_(true));
    const step = () => {
      k.tidy(() => k.scaledDotProductAttention(q, kk, v).square().mean().backward());
      for (const t of [q, kk, v]) {
        t.grad!.dispose();
        t.grad = null;
      }
    };
    step();
    const before = k.memory().liveBytes;
    for (let i = 0; i < 3; i++) step();
    expect(k.memory().liveBytes).toBe(before);
    [q, kk, v].forEach((t) => t.dispose());
  });

  it('a small UNet-like training step (conv, groupNorm+SiLU, attention, GEGLU, MSE, AdamW) matches cpu', async () => {
    const run = async () => {
      const params = [r([16, 8, 3, 3], 100), r([16], 101), r([16], 102), r([16, 16, 1, 1], 103), r([64, 16], 104), r([16, 32], 105)].map(
        (t, i) => (i === 1 ? t.abs().add(0.5) : t.mul(0.2)).requiresGrad_(true),
      );
      const [w1, gamma, beta, w2, wff, wout] = params;
      const x = r([2, 8, 16, 16], 106);
      const target = r([2, 16, 16, 16], 107);
      const loss = k.tidy(() => {
        let h = k.conv2d(x, w1, null, { padding: 1 });
        h = k.groupNormSilu(h, 4, gamma, beta, 1e-5);
        h = k.conv2d(h, w2);
        const seq = h.reshape([2, 16, 256]).transpose(1, 2); // [2, 256, 16]
        const q = seq.reshape([2, 256, 2, 8]).transpose(1, 2);
        const att = k.scaledDotProductAttention(q, q, q).transpose(1, 2).reshape([2, 256, 16]);
        const [a, gate] = k.linear(att, wff).chunk(2, -1);
        const ff = k.linear(a.mul(gate.gelu()), wout);
        const y = seq.add(ff).transpose(1, 2).reshape([2, 16, 16, 16]);
        const l = k.mseLoss(y, target);
        l.backward();
        return l;
      });
      const m = params.map((p) => k.zerosLike(p));
      const v = params.map((p) => k.zerosLike(p));
      params.forEach((p, i) =>
        k.adamwUpdate(p, p.grad!, m[i], v[i], { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 }),
      );
      const out = [
        (await loss.data()) as Float32Array,
        ...(await Promise.all(params.map(async (p) => (await p.grad!.data()) as Float32Array))),
        ...(await Promise.all(params.map(async (p) => (await p.data()) as Float32Array))),
      ];
      [loss, x, target, ...params, ...params.map((p) => p.grad!), ...m, ...v].forEach((t) => t.dispose());
      return out;
    };
    await k.useBackend('cpu');
    const e = await run();
    await k.useBackend('wasm');
    const a = await run();
    a.forEach((arr, i) => expectClose(arr, e[i], 3e-4));
  });

  it('adamw matches the cpu kernel', async () => {
    const step = async () => {
      const p = r([1003], 31);
      const g = r([1003], 32);
      const m = r([1003], 33).abs().mul(0.1);
      const v = r([1003], 34).abs().mul(0.1);
      for (let s = 1; s <= 3; s++) k.adamwUpdate(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: s });
      const out = (await p.data()) as Float32Array;
      [p, g, m, v].forEach((t) => t.dispose());
      return out;
    };
    await k.useBackend('cpu');
    const e = await step();
    await k.useBackend('wasm');
    const a = await step();
    expectClose(a, e, 1e-5);
  });
});
