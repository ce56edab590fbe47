/** The benchmark cases, shared by run.ts (Kiln side); torch_bench.py mirrors the shapes. */
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

export interface BenchCase<S = any> {
  name: string;
  flops?: number;
  /**
   * Bytes a bandwidth-bound case must move at the least (each input read once, each output written
   * once), for its GB/s and its efficiency against the measured copy bandwidth.
   */
  bytes?: number;
  /**
   * FLOPs the wasm backend actually executes, where its algorithm differs from the one `flops`
   * counts (Winograd convolutions), for an efficiency that cannot pass 100%.
   */
  executedFlops?: number;
  /** Fewer repetitions. */
  heavy?: boolean;
  /** Why the cpu reference backend is not timed on this case. */
  skipCpu?: string;
  setup(): S;
  run(state: S): Promise<void>;
  teardown?(state: S): void;
}

const seeded = (shape: number[], seed: number, requiresGrad = false): Tensor => {
  const t = k.randn(shape, { seed });
  return requiresGrad ? t.requiresGrad_(true) : t;
};

/**
 * Forces the result to exist (ops are synchronous; reading one element keeps it honest). The
 * one-element view is disposed: a live view shares `t`'s storage, which would keep AdamW off its
 * in-place fused kernel.
 */
const done = async (t: Tensor): Promise<void> => {
  const one = k.tidy(() => t.reshape([-1]).slice(0, 0, 1));
  await one.data();
  one.dispose();
};

function gemm(n: number, skipCpu?: string): BenchCase<Tensor[]> {
  return {
    name: `gemm_${n}`,
    flops: 2 * n ** 3,
    heavy: n >= 2048,
    skipCpu,
    setup: () => [seeded([n, n], 1), seeded([n, n], 2)],
    run: async ([a, b]) => {
      const c = a.matmul(b);
      await done(c);
      c.dispose();
    },
    teardown: (s) => s.forEach((t) => t.dispose()),
  };
}

const convFlops = 2 * 2 * 320 * 320 * 9 * 32 * 32;

/**
 * FLOPs of one transform `L · X · Lᵀ` as the wasm kernels emit it (winograd.ts: zero terms
 * skipped, ±1 coefficients without a multiply; one add per further term, one multiply per other
 * coefficient), counted from its matrices: input tile Bᵀ d B 336, output-gradient tile A dy Aᵀ 180,
 * output tile Aᵀ M A 200, weights G g Gᵀ 189, weight gradient Gᵀ Z G 216.
 */
const WINO_TRANSFORM_FLOPS = { input: 336, outputGrad: 180, output: 200, weight: 189, weightGrad: 216 };

/**
 * FLOPs the wasm backend executes for a 3×3 stride-1 convolution through Winograd F(4×4, 3×3):
 * per pass 36 batched [O×C]·[C×tiles] GEMMs plus the tile and weight transforms. The backward pass
 * is two more such passes (input gradient: a forward with the roles of C and O swapped; weight
 * gradient: GEMMs over tiles).
 */
function winogradFlops(n: number, c: number, o: number, h: number, w: number, backward: boolean): number {
  const F = WINO_TRANSFORM_FLOPS;
  const tiles = n * Math.ceil(h / 4) * Math.ceil(w / 4);
  const gemm = 2 * 36 * o * c * tiles;
  const forward = gemm + c * tiles * F.input + o * c * F.weight + o * tiles * F.output;
  if (!backward) return forward;
  const inputGrad = gemm + o * tiles * F.input + o * c * F.weight + c * tiles * F.output;
  const weightGrad = gemm + c * tiles * F.input + o * tiles * F.outputGrad + o * c * F.weightGrad;
  return forward + inputGrad + weightGrad;
}

function conv(backward: boolean): BenchCase<Tensor[]> {
  return {
    name: backward ? 'conv2d_3x3_fwd_bwd' : 'conv2d_3x3_fwd',
    flops: backward ? 3 * convFlops : convFlops,
    executedFlops: winogradFlops(2, 320, 320, 32, 32, backward),
    skipCpu: 'direct f64 loops take tens of seconds',
    setup: () => [seeded([2, 320, 32, 32], 3, backward), seeded([320, 320, 3, 3], 4, backward), seeded([2, 320, 32, 32], 5)],
    run: async ([x, w, g]) => {
      if (!backward) {
        const y = k.noGrad(() => k.conv2d(x, w, null, { padding: 1 }));
        await done(y);
        y.dispose();
        return;
      }
      const y = k.conv2d(x, w, null, { padding: 1 });
      y.backward(g);
      await done(x.grad!);
      await done(w.grad!);
      y.dispose();
      x.grad!.dispose();
      w.grad!.dispose();
      x.grad = null;
      w.grad = null;
    },
    teardown: (s) => s.forEach((t) => t.dispose()),
  };
}

function attention(L: number, backward: boolean): BenchCase<Tensor[]> {
  const fwd = 4 * 8 * L * L * 64;
  return {
    name: `attention_${L}_${backward ? 'fwd_bwd' : 'fwd'}`,
    flops: backward ? 3.5 * fwd : fwd,
    heavy: L >= 4096,
    skipCpu: 'the f64 reference attention takes seconds per run',
    setup: () => [
      seeded([1, 8, L, 64], 6, backward),
      seeded([1, 8, L, 64], 7, backward),
      seeded([1, 8, L, 64], 8, backward),
      seeded([1, 8, L, 64], 9),
    ],
    run: async ([q, kk, v, g]) => {
      if (!backward) {
        const y = k.noGrad(() => k.scaledDotProductAttention(q, kk, v));
        await done(y);
        y.dispose();
        return;
      }
      const y = k.scaledDotProductAttention(q, kk, v);
      y.backward(g);
      for (const t of [q, kk, v]) {
        await done(t.grad!);
        t.grad!.dispose();
        t.grad = null;
      }
      y.dispose();
    },
    teardown: (s) => s.forEach((t) => t.dispose()),
  };
}

const groupNormSilu: BenchCase<Tensor[]> = {
  name: 'groupnorm_silu',
  bytes: 2 * 2 * 320 * 64 * 64 * 4,
  setup: () => [seeded([2, 320, 64, 64], 10), seeded([320], 11), seeded([320], 12)],
  run: async ([x, w, b]) => {
    const y = k.noGrad(() => k.groupNormSilu(x, 32, w, b, 1e-6));
    await done(y);
    y.dispose();
  },
  teardown: (s) => s.forEach((t) => t.dispose()),
};

/** Forward and backward of a norm on x and its affine parameters (inputs [x, w, b, upstream gradient]). */
function normFwdBwd(name: string, xShape: number[], C: number, fn: (x: Tensor, w: Tensor, b: Tensor) => Tensor): BenchCase<Tensor[]> {
  return {
    name,
    // Forward: read x, write y; backward: read x and the upstream gradient, write dx.
    bytes: 5 * xShape.reduce((a, b) => a * b, 1) * 4,
    skipCpu: 'the f64 reference is not a contender',
    setup: () => [seeded(xShape, 15, true), seeded([C], 16, true), seeded([C], 17, true), seeded(xShape, 18)],
    run: async ([x, w, b, g]) => {
      const y = fn(x, w, b);
      y.backward(g);
      for (const t of [x, w, b]) {
        await done(t.grad!);
        t.grad!.dispose();
        t.grad = null;
      }
      y.dispose();
    },
    teardown: (s) => s.forEach((t) => t.dispose()),
  };
}

const groupNormSiluFwdBwd = normFwdBwd('groupnorm_silu_fwd_bwd', [2, 320, 64, 64], 320, (x, w, b) => k.groupNormSilu(x, 32, w, b, 1e-6));
const layerNormFwdBwd = normFwdBwd('layernorm_fwd_bwd', [2, 4096, 320], 320, (x, w, b) => k.layerNorm(x, [320], w, b));

const adamw: BenchCase<{ ts: Tensor[]; step: number }> = {
  name: 'adamw_100m',
  heavy: true,
  // Read p, g, m, v; write p, m, v.
  bytes: 7 * 100_000_000 * 4,
  skipCpu: 'the f64 reference copies 3.2 GB per step',
  setup: () => {
    const n = 100_000_000;
    return { ts: [k.randn([n], { seed: 13 }), k.randn([n], { seed: 14 }), k.zeros([n]), k.zeros([n])], step: 0 };
  },
  run: async (s) => {
    const [p, g, m, v] = s.ts;
    k.adamwUpdate(p, g, m, v, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step: ++s.step });
    await done(p);
  },
  teardown: (s) => s.ts.forEach((t) => t.dispose()),
};

export const CASES: BenchCase[] = [
  gemm(512),
  gemm(1024, 'naive f64 loops take seconds'),
  gemm(2048, 'naive f64 loops take minutes'),
  conv(false),
  conv(true),
  attention(1024, false),
  attention(1024, true),
  attention(4096, false),
  groupNormSilu,
  groupNormSiluFwdBwd,
  layerNormFwdBwd,
  adamw,
];
