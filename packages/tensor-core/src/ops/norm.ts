import { ShapeError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import { fmt, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record, willRecord } from './dispatch.js';
import { widen } from './accumulate.js';
import { add, cast, mul, rsqrt, sigmoid, silu, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape } from './view.js';

/** Normalises rows of `xr` ([rows, size]): the normalised rows and 1/std per row. */
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

/** The backend kernels behind one normalisation op; either may be absent (undefined). */
interface NormKernels {
  /** [y, statistics kept for `backward` or null] storages (`keep`: a backward may follow). */
  forward: (keep: boolean) => readonly [unknown, unknown] | undefined;
  /** [dx, dweight | null, dbias | null] storages for `g`, or undefined without a fused kernel. */
  backward: (g: Tensor, stats: unknown) => readonly [unknown, unknown, unknown] | undefined;
}

/** A forward kernel's output without kept statistics. */
const alone = (y: unknown): readonly [unknown, unknown] | undefined => (y === undefined ? undefined : [y, null]);

/**
 * Shared by groupNorm and layerNorm: `rowShape` splits x into normalised rows, `affineShape`
 * broadcasts w/b. Forward and gradient use the backend's fused kernels when it has them; the
 * composite below is the fallback and the oracle. The composite runs in f32 for half inputs (one
 * rounding at the end, like the fused kernels, see accumulate.ts).
 */
function normalize(
  op: 'groupNorm' | 'layerNorm',
  x: Tensor,
  rowShape: readonly number[],
  affineShape: readonly number[],
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  kernels: NormKernels,
  silu_: boolean,
): Tensor {
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const b = backendOf(op, ...inputs);
  /** The composite's pieces from the (widened) inputs. */
  const composite = () => {
    const [xw, ww, bw] = [widen(x), weight && widen(weight), bias && widen(bias)];
    const affine = (t: Tensor): Tensor => {
      let y = ww ? mul(t, reshape(ww, affineShape)) : t;
      if (bw) y = add(y, reshape(bw, affineShape));
      return y;
    };
    const { xhat, rstd } = normalizedRows(reshape(xw, rowShape), eps);
    const xhatFull = reshape(xhat, x.shape);
    return { ww, affine, xhat, rstd, xhatFull, z: affine(xhatFull) };
  };
  // Statistics the forward kept for the backward (a backend storage), freed with the graph.
  let stats: unknown = null;
  const keep = willRecord(inputs);
  const y = noGrad(() =>
    tidy(() => {
      const f = kernels.forward(keep);
      if (f !== undefined) {
        stats = f[1];
        return make(b, f[0], x.dtype, x.shape);
      }
      const { z } = composite();
      return cast(silu_ ? silu(z) : z, x.dtype);
    }),
  );
  const release = () => {
    if (stats !== null) b.free(stats);
    stats = null;
  };
  return record(
    y,
    op,
    inputs,
    (g) => {
      const fused = kernels.backward(g, stats);
      if (fused) {
        const [dx, dw, db] = fused;
        const grads: (Tensor | null)[] = [make(b, dx, x.dtype, x.shape)];
        // Unused weight/bias gradients still become tensors, so the gradient's tidy frees them.
        if (weight) grads.push(dw === null ? null : make(b, dw, weight.dtype, weight.shape));
        if (bias) grads.push(db === null ? null : make(b, db, bias.dtype, bias.shape));
        return inputs.map((t, i) => (t.requiresGrad ? grads[i] : null));
      }
      const { ww, xhat, rstd, xhatFull, z } = composite();
      let gz = widen(g);
      if (silu_) {
        const s = sigmoid(z);
        gz = mul(gz, mul(s, add(mul(z, sub(1, s)), 1)));
      }
      const reduceDims = affineShape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      const gxhat = ww ? mul(gz, reshape(ww, affineShape)) : gz;
      const gx = reshape(rowsBackward(reshape(gxhat, rowShape), xhat, rstd), x.shape);
      const grads: (Tensor | null)[] = [cast(gx, x.dtype)];
      if (weight) grads.push(weight.requiresGrad ? cast(reshape(sum(mul(gz, xhatFull), reduceDims), weight.shape), weight.dtype) : null);
      if (bias) grads.push(bias.requiresGrad ? cast(reshape(sum(gz, reduceDims), bias.shape), bias.dtype) : null);
      return grads;
    },
    release,
  );
}

/** Whether a fused gradient kernel may run: it computes in one dtype, that of x. */
function sameDType(x: Tensor, g: Tensor, ...rest: (Tensor | null | undefined)[]): boolean {
  return g.dtype === x.dtype && rest.every((t) => !t || t.dtype === x.dtype);
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
  const [w, b] = [weight ?? null, bias ?? null];
  return normalize(
    'groupNorm',
    x,
    [N, numGroups, -1],
    affineShape,
    w,
    b,
    eps,
    {
      forward: () => alone(be.groupNorm?.(x._view(), numGroups, w?._view() ?? null, b?._view() ?? null, eps, silu_)),
      backward: (g) =>
        sameDType(x, g, w, b)
          ? be.groupNormBackward?.(x._view(), numGroups, w?._view() ?? null, b?._view() ?? null, eps, silu_, g._view())
          : undefined,
    },
    silu_,
  );
}

/** `silu(groupNorm(...))` as one fused op. @example const h = k.groupNormSilu(x, 32, norm.weight, norm.bias, 1e-6); // = k.silu(k.groupNorm(x, 32, …)), one kernel */
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
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || x.shape.slice(x.ndim - k).some((d, i) => d !== normalizedShape[i])) {
    throw new ShapeError(`layerNorm: normalizedShape ${fmt(normalizedShape)} does not match the trailing dims of input ${fmt(x.shape)}`);
  }
  const size = numel(normalizedShape);
  checkAffine('layerNorm', weight, size, 'weight');
  checkAffine('layerNorm', bias, size, 'bias');
  const affineShape = [...x.shape.slice(0, x.ndim - k).map(() => 1), ...normalizedShape];
  const be = x._backend();
  const [w, b] = [weight ?? null, bias ?? null];
  return normalize(
    'layerNorm',
    x,
    [-1, size],
    affineShape,
    w,
    b,
    eps,
    {
      forward: (keep) => {
        const args = [x._view(), w?._view() ?? null, b?._view() ?? null, size, eps] as const;
        return keep && be.layerNormWithStats ? be.layerNormWithStats(...args) : alone(be.layerNorm?.(...args));
      },
      backward: (g, stats) =>
        sameDType(x, g, w, b)
          ? be.layerNormBackward?.(x._view(), w?._view() ?? null, b?._view() ?? null, size, eps, g._view(), stats)
          : undefined,
    },
    false,
  );
}
