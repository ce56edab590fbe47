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
import { cat } from './join.js';
import { contiguous, expand, expandView, reshape, slice, sumTo, transpose } from './view.js';

/** Options of `scaledDotProductAttention` (PyTorch's keyword arguments). @example k.scaledDotProductAttention(q, key, v, { isCausal: true, scale: 1 / 8 }); */
export interface AttentionOptions {
  /** Boolean (true = attend, as PyTorch) or additive float mask, broadcastable to [..., L, S]. */
  attnMask?: Tensor | null;
  /** Mask out keys after the query position (top-left aligned, as PyTorch). */
  isCausal?: boolean;
  /** Defaults to 1/sqrt(E). */
  scale?: number;
}

/** Rows [r0, r1) of the top-left-aligned causal mask over S keys (−∞ above the diagonal). */
function causalMask(like: Tensor, r0: number, r1: number, S: number): Tensor {
  const b = like._backend();
  const rows = r1 - r0;
  const data = new Float32Array(rows * S);
  for (let i = 0; i < rows; i++) for (let j = r0 + i + 1; j < S; j++) data[i * S + j] = -Infinity;
  const m = make(b, b.upload('float32', data), 'float32', [rows, S]);
  return cast(m, like.dtype);
}

/**
 * The gradient recomputes attention probabilities in blocks of query rows with at most this many
 * scores each (16 MiB in f32), so its memory does not grow with L×S and no block outgrows a GPU
 * binding limit.
 */
const BACKWARD_BLOCK_SCORES = 2 ** 22;

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
    throw new ShapeError(
      `scaledDotProductAttention: q ${fmt(q.shape)}, k ${fmt(k.shape)} and v ${fmt(v.shape)} must have the same rank >= 2`,
    );
  }
  const batch = q.shape.slice(0, -2);
  const [L, E] = q.shape.slice(-2);
  const [S, Ek] = k.shape.slice(-2);
  const [Sv, Ev] = v.shape.slice(-2);
  if (!sameShape(k.shape.slice(0, -2), batch) || !sameShape(v.shape.slice(0, -2), batch) || Ek !== E || Sv !== S) {
    throw new ShapeError(
      `scaledDotProductAttention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not fit ([..., L, E], [..., S, E], [..., S, Ev])`,
    );
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

  /** Attention probabilities for query rows [r0, r1). */
  const scores = (r0 = 0, r1 = L): Tensor => {
    const whole = r0 === 0 && r1 === L;
    let s = mul(matmul(whole ? cq : slice(cq, -2, r0, r1), transpose(ck, -1, -2)), scale);
    if (mask) s = add(s, whole || mask.ndim < 2 || mask.shape[mask.ndim - 2] !== L ? mask : slice(mask, -2, r0, r1));
    if (causal) s = add(s, causalMask(s, r0, r1, S));
    return softmax(s, -1);
  };

  /** The fused kernels' operands: contiguous [B, L, E], [B, S, E], [B, S, Ev] and an expanded [B, L, S] mask. */
  const flat = () => ({
    q3: contiguous(reshape(cq, [B, L, E]))._view(),
    k3: contiguous(reshape(ck, [B, S, E]))._view(),
    v3: contiguous(reshape(cv, [B, S, Ev]))._view(),
    m3: mask ? contiguous(reshape(expand(mask, [...batch, L, S]), [B, L, S]))._view() : null,
  });

  const y = noGrad(() =>
    tidy(() => {
      if (be.attention) {
        const { q3, k3, v3, m3 } = flat();
        return make(be, be.attention(q3, k3, v3, m3, causal, scale), dtype, [...batch, L, Ev]);
      }
      return matmul(scores(), cv);
    }),
  );

  const inputs = [cq, ck, cv, ...(mask ? [mask] : [])];
  return record(y, 'scaledDotProductAttention', inputs, (g) => {
    // The fused gradient (flash-style, f32 accumulation) when the backend has it; a mask that
    // needs its own gradient takes the composite, which materialises the scores.
    if (be.attentionBackward && !mask?.requiresGrad && g.dtype === dtype) {
      const { q3, k3, v3, m3 } = flat();
      const g3 = contiguous(reshape(g, [B, L, Ev]))._view();
      const [dq, dk, dv] = be.attentionBackward(q3, k3, v3, m3, causal, scale, g3);
      return [make(be, dq, dtype, cq.shape), make(be, dk, dtype, ck.shape), make(be, dv, dtype, cv.shape), ...(mask ? [null] : [])];
    }
    // A mask that needs its own gradient takes the whole score matrix in one block.
    const rows = mask?.requiresGrad ? L : Math.max(1, Math.floor(BACKWARD_BLOCK_SCORES / Math.max(1, B * S)));
    const block = (r0: number, r1: number) => {
      const whole = r0 === 0 && r1 === L;
      const p = scores(r0, r1);
      const gc = whole ? g : slice(g, -2, r0, r1);
      const gv = matmul(transpose(p, -1, -2), gc);
      const gp = matmul(gc, transpose(cv, -1, -2));
      const gs = mul(p, sub(gp, sum(mul(gp, p), -1, true)));
      const gq = mul(matmul(gs, ck), scale);
      const gk = mul(matmul(transpose(gs, -1, -2), whole ? cq : slice(cq, -2, r0, r1)), scale);
      return { gq, gk, gv, gs };
    };
    if (rows >= L) {
      const { gq, gk, gv, gs } = block(0, L);
      return [gq, gk, gv, ...(mask ? [mask.requiresGrad ? sumTo(gs, mask.shape) : null] : [])];
    }
    const gqs: Tensor[] = [];
    let gk: Tensor | null = null;
    let gv: Tensor | null = null;
    for (let r0 = 0; r0 < L; r0 += rows) {
      const prevK: Tensor | null = gk;
      const prevV: Tensor | null = gv;
      // Each block's probabilities and partial products are freed before the next block.
      const part = tidy((): { gq: Tensor; gk: Tensor; gv: Tensor } => {
        const b = block(r0, Math.min(L, r0 + rows));
        return { gq: b.gq, gk: prevK ? add(prevK, b.gk) : b.gk, gv: prevV ? add(prevV, b.gv) : b.gv };
      });
      prevK?.dispose();
      prevV?.dispose();
      gqs.push(part.gq);
      gk = part.gk;
      gv = part.gv;
    }
    const gq = cat(gqs, -2);
    gqs.forEach((t) => t.dispose());
    return [gq, gk, gv, ...(mask ? [null] : [])];
  });
}
