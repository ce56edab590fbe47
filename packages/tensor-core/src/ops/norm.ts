import { ShapeError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import { fmt, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record } from './dispatch.js';
import { add, mul, rsqrt, sigmoid, silu, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape } from './view.js';

/**
 * Normalises rows of `x` (viewed as [rows, size]) and returns the backward pieces. The forward
 * result comes from the backend's fused kernel when it has one, so the graph holds no copies.
 */
function normalizedRows(xr: Tensor, eps: number): { xhat: Tensor; rstd: Tensor } {
  const mu = mean(xr, -1, true);
  const centered = sub(xr, mu);
  const rstd = rsqrt(add(mean(mul(centered, centered), -1, true), eps));
  return { xhat: mul(centered, rstd), rstd };
}

/** dL/dx for y = xhat * w + b given dL/dxhat, per row (the standard normalisation backward). */
function rowsBackward(gxhat: Tensor, xhat: Tensor, rstd: Tensor): Tensor {
  const a = mean(gxhat, -1, true);
  const c = mean(mul(gxhat, xhat), -1, true);
  return mul(rstd, sub(sub(gxhat, a), mul(xhat, c)));
}

/** Shared by groupNorm and layerNorm: `rowShape` splits x into normalised rows, `affineShape` broadcasts w/b. */
function normalize(
  op: 'groupNorm' | 'layerNorm',
  x: Tensor,
  rowShape: readonly number[],
  affineShape: readonly number[],
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  fused: () => unknown,
  silu_: boolean,
): Tensor {
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const b = backendOf(op, ...inputs);
  const affine = (t: Tensor): Tensor => {
    let y = weight ? mul(t, reshape(weight, affineShape)) : t;
    if (bias) y = add(y, reshape(bias, affineShape));
    return y;
  };
  const y = noGrad(() =>
    tidy(() => {
      const f = fused();
      if (f !== undefined) return make(b, f, x.dtype, x.shape);
      const z = affine(reshape(normalizedRows(reshape(x, rowShape), eps).xhat, x.shape));
      return silu_ ? silu(z) : z;
    }),
  );
  return record(y, op, inputs, (g) => {
    const { xhat, rstd } = normalizedRows(reshape(x, rowShape), eps);
    const xhatFull = reshape(xhat, x.shape);
    let gz = g;
    if (silu_) {
      const s = sigmoid(affine(xhatFull));
      const z = affine(xhatFull);
      gz = mul(g, mul(s, add(mul(z, sub(1, s)), 1)));
    }
    const reduceDims = affineShape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
    const gxhat = weight ? mul(gz, reshape(weight, affineShape)) : gz;
    const gx = reshape(rowsBackward(reshape(gxhat, rowShape), xhat, rstd), x.shape);
    const grads: (Tensor | null)[] = [gx];
    if (weight) grads.push(weight.requiresGrad ? reshape(sum(mul(gz, xhatFull), reduceDims), weight.shape) : null);
    if (bias) grads.push(bias.requiresGrad ? reshape(sum(gz, reduceDims), bias.shape) : null);
    return grads;
  });
}

function checkAffine(op: string, t: Tensor | null | undefined, size: number, what: string): void {
  if (t && numel(t.shape) !== size) throw new ShapeError(`${op}: ${what} ${fmt(t.shape)} must have ${size} elements`);
}

/**
 * Group normalisation over [N, C, *] (`torch.nn.functional.group_norm`), optionally fused with
 * SiLU as SD's ResNet blocks use it.
 *
 * @example
 * ```ts
 * k.groupNorm(x, 32, gamma, beta, 1e-6);
 * ```
 */
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
  options: { silu?: boolean } = {},
): Tensor {
  if (x.ndim < 2) throw new ShapeError(`groupNorm: input must be [N, C, *], got ${fmt(x.shape)}`);
  const [N, C] = x.shape;
  if (!Number.isInteger(numGroups) || numGroups < 1 || C % numGroups !== 0) {
    throw new ShapeError(`groupNorm: ${C} channels of input ${fmt(x.shape)} do not split into ${numGroups} groups`);
  }
  checkAffine('groupNorm', weight, C, 'weight');
  checkAffine('groupNorm', bias, C, 'bias');
  const affineShape = [1, C, ...x.shape.slice(2).map(() => 1)];
  const silu_ = options.silu ?? false;
  const be = x._backend();
  return normalize('groupNorm', x, [N, numGroups, -1], affineShape, weight ?? null, bias ?? null, eps, () =>
    be.groupNorm?.(x._view(), numGroups, weight?._view() ?? null, bias?._view() ?? null, eps, silu_), silu_);
}

/** `silu(groupNorm(...))` as one fused op. */
export function groupNormSilu(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return groupNorm(x, numGroups, weight, bias, eps, { silu: true });
}

/**
 * Layer normalisation over the trailing `normalizedShape` dims (`torch.nn.functional.layer_norm`).
 *
 * @example
 * ```ts
 * k.layerNorm(x, [768], gamma, beta, 1e-5);
 * ```
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || x.shape.slice(x.ndim - k).some((d, i) => d !== normalizedShape[i])) {
    throw new ShapeError(`layerNorm: normalizedShape ${fmt(normalizedShape)} does not match the trailing dims of input ${fmt(x.shape)}`);
  }
  const size = numel(normalizedShape);
  checkAffine('layerNorm', weight, size, 'weight');
  checkAffine('layerNorm', bias, size, 'bias');
  const affineShape = [...x.shape.slice(0, x.ndim - k).map(() => 1), ...normalizedShape];
  const be = x._backend();
  return normalize('layerNorm', x, [-1, size], affineShape, weight ?? null, bias ?? null, eps, () =>
    be.layerNorm?.(x._view(), weight?._view() ?? null, bias?._view() ?? null, size, eps), false);
}
