import { promoteTypes } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import { fmt, numel, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record } from './dispatch.js';
import { add, cast, mul, sub, where } from './elementwise.js';
import { sum } from './reduce.js';
import { softmax } from './softmax.js';
import { matmul } from './matmul.js';
import { contiguous, expand, expandView, reshape, sumTo, transpose } from './view.js';

export interface AttentionOptions {
  /** Boolean (true = attend, as PyTorch) or additive float mask, broadcastable to [..., L, S]. */
  attnMask?: Tensor | null;
  /** Mask out keys after the query position (top-left aligned, as PyTorch). */
  isCausal?: boolean;
  /** Defaults to 1/sqrt(E). */
  scale?: number;
}

function causalMask(like: Tensor, L: number, S: number): Tensor {
  const b = like._backend();
  const data = new Float32Array(L * S);
  for (let i = 0; i < L; i++) for (let j = i + 1; j < S; j++) data[i * S + j] = -Infinity;
  const m = make(b, b.upload('float32', data), 'float32', [L, S]);
  return cast(m, like.dtype);
}

/**
 * `softmax(q kᵀ · scale + mask) v` over [..., L, E] queries, [..., S, E] keys and [..., S, Ev]
 * values (`torch.nn.functional.scaled_dot_product_attention`). Backends with a fused kernel run
 * it without materialising the L×S scores; the gradient recomputes them.
 *
 * @example
 * ```ts
 * const out = k.scaledDotProductAttention(q, key, v, { isCausal: true }); // [B, heads, L, Ev]
 * ```
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  if (q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim) {
    throw new ShapeError(`scaledDotProductAttention: q ${fmt(q.shape)}, k ${fmt(k.shape)} and v ${fmt(v.shape)} must have the same rank >= 2`);
  }
  const batch = q.shape.slice(0, -2);
  const [L, E] = q.shape.slice(-2);
  const [S, Ek] = k.shape.slice(-2);
  const [Sv, Ev] = v.shape.slice(-2);
  if (!sameShape(k.shape.slice(0, -2), batch) || !sameShape(v.shape.slice(0, -2), batch) || Ek !== E || Sv !== S) {
    throw new ShapeError(`scaledDotProductAttention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not fit ([..., L, E], [..., S, E], [..., S, Ev])`);
  }
  const be = backendOf('scaledDotProductAttention', q, k, v);
  const dtype = promoteTypes(promoteTypes(q.dtype, k.dtype), v.dtype);
  const [cq, ck, cv] = [cast(q, dtype), cast(k, dtype), cast(v, dtype)];
  const scale = options.scale ?? 1 / Math.sqrt(E);
  let mask = options.attnMask ?? null;
  if (mask) {
    backendOf('scaledDotProductAttention', q, mask);
    if (mask.dtype === 'bool') mask = where(mask, 0, -Infinity);
    mask = cast(mask, dtype);
    try {
      expandView(mask, [...batch, L, S]);
    } catch {
      throw new ShapeError(`scaledDotProductAttention: attnMask ${fmt(mask.shape)} does not broadcast to [${[...batch, L, S].join(', ')}]`);
    }
  }
  const causal = options.isCausal ?? false;
  const B = numel(batch);

  const scores = (): Tensor => {
    let s = mul(matmul(cq, transpose(ck, -1, -2)), scale);
    if (mask) s = add(s, mask);
    if (causal) s = add(s, causalMask(s, L, S));
    return softmax(s, -1);
  };

  const y = noGrad(() =>
    tidy(() => {
      if (be.attention) {
        const q3 = contiguous(reshape(cq, [B, L, E]));
        const k3 = contiguous(reshape(ck, [B, S, E]));
        const v3 = contiguous(reshape(cv, [B, S, Ev]));
        const m3 = mask ? contiguous(reshape(expand(mask, [...batch, L, S]), [B, L, S])) : null;
        const out = be.attention(q3._view(), k3._view(), v3._view(), m3?._view() ?? null, causal, scale);
        return make(be, out, dtype, [...batch, L, Ev]);
      }
      return matmul(scores(), cv);
    }),
  );

  const inputs = [cq, ck, cv, ...(mask ? [mask] : [])];
  return record(y, 'scaledDotProductAttention', inputs, (g) => {
    const p = scores();
    const gv = matmul(transpose(p, -1, -2), g);
    const gp = matmul(g, transpose(cv, -1, -2));
    const gs = mul(p, sub(gp, sum(mul(gp, p), -1, true)));
    const gq = mul(matmul(gs, ck), scale);
    const gk = mul(matmul(transpose(gs, -1, -2), cq), scale);
    return [gq, gk, gv, ...(mask ? [mask.requiresGrad ? sumTo(gs, mask.shape) : null] : [])];
  });
}
