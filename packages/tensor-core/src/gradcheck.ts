import { isFloat } from './dtype.js';
import { KilnError } from './errors.js';
import { noGrad, tidy } from './runtime.js';
import type { Tensor } from './tensor.js';
import { detach, mul, randn, sum, tensor } from './ops/index.js';

/** What `gradcheck` reports. @example const { ok, maxAbsError, worst } = await k.gradcheck((t) => t.exp(), [x64]); */
export interface GradcheckResult {
  /** Largest |analytic − numeric| over all inputs and elements. */
  maxAbsError: number;
  /** Whether every element satisfied |a − n| ≤ atol + rtol·|n|. */
  ok: boolean;
  /** Per input: the worst element, for error messages. */
  worst: { input: number; index: number; analytic: number; numeric: number }[];
}

/**
 * Compares autograd gradients of `fn` with central finite differences, like
 * `torch.autograd.gradcheck`. Use float64 inputs on the cpu backend. A non-scalar output is
 * reduced with fixed random weights, so the whole Jacobian is exercised.
 *
 * @example
 * ```ts
 * const x = k.randn([3, 4], { dtype: 'float64', seed: 1 });
 * const r = await k.gradcheck((x) => x.tanh(), [x]);
 * r.ok; // true
 * ```
 */
export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  options: { eps?: number; atol?: number; rtol?: number; seed?: number } = {},
): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-3;
  const values = await Promise.all(inputs.map((t) => t.data()));
  const dtypes = inputs.map((t) => t.dtype);
  const weightsFor = (y: Tensor) => randn(y.shape, { seed: options.seed ?? 1234, dtype: y.dtype, device: y.device });

  const leaves = inputs.map((t, i) =>
    tensor(values[i], { shape: t.shape, dtype: dtypes[i], device: t.device, requiresGrad: isFloat(dtypes[i]) }),
  );
  const analytic = tidy(() => {
    const y = fn(...leaves);
    const loss = sum(mul(y, weightsFor(y)));
    loss.backward();
    return leaves.map((l) => (l.grad ? detach(l.grad) : null));
  });
  const analyticData = await Promise.all(analytic.map((g) => g?.data() ?? null));

  const evalAt = async (i: number, index: number, delta: number): Promise<number> => {
    const v = Float64Array.from(values[i]);
    v[index] += delta;
    const loss = noGrad(() =>
      tidy(() => {
        const xs = inputs.map((t, j) => (j === i ? tensor(v, { shape: t.shape, dtype: dtypes[j], device: t.device }) : leaves[j]));
        const y = fn(...xs);
        return sum(mul(y, weightsFor(y)));
      }),
    );
    const out = await loss.item();
    loss.dispose();
    return out;
  };

  const result: GradcheckResult = { maxAbsError: 0, ok: true, worst: [] };
  for (let i = 0; i < inputs.length; i++) {
    if (!isFloat(dtypes[i])) continue;
    let worst = { input: i, index: -1, analytic: 0, numeric: 0 };
    let worstErr = -1;
    for (let index = 0; index < values[i].length; index++) {
      const numeric = ((await evalAt(i, index, eps)) - (await evalAt(i, index, -eps))) / (2 * eps);
      const a = analyticData[i]?.[index] ?? 0;
      const err = Math.abs(a - numeric);
      if (!(err <= atol + rtol * Math.abs(numeric))) result.ok = false;
      if (err > worstErr || Number.isNaN(err)) {
        worstErr = err;
        worst = { input: i, index, analytic: a, numeric };
      }
      result.maxAbsError = Math.max(result.maxAbsError, Number.isNaN(err) ? Infinity : err);
    }
    result.worst.push(worst);
  }
  analytic.forEach((g) => g?.dispose());
  leaves.forEach((l) => {
    l.grad?.dispose();
    l.dispose();
  });
  if (!Number.isFinite(result.maxAbsError) && result.ok) throw new KilnError('gradcheck: non-finite gradient');
  return result;
}
