/**
 * Attention on plain f64 arrays for the cpu backend: the forward and its gradient, one query row
 * at a time, recomputing each row's probabilities in the gradient (the fast backends' fused
 * gradients are tested against the op layer's composite, test/fused-backward.ts).
 */

/** q: [B, Lq, E], k: [B, Lk, E], v: [B, Lk, Ev], mask: [B, Lq, Lk] or null, gy: [B, Lq, Ev]. */
export interface AttentionDims {
  B: number;
  Lq: number;
  Lk: number;
  E: number;
  Ev: number;
}

/** softmax(q kᵀ·scale + mask + causal) v → [B, Lq, Ev]; a fully masked row gives 0. */
export function attentionForward(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  mask: Float64Array | null,
  d: AttentionDims,
  causal: boolean,
  scale: number,
): Float64Array {
  const { B, Lq, Lk, E, Ev } = d;
  const out = new Float64Array(B * Lq * Ev);
  const s = new Float64Array(Lk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Lq; i++) {
      let m = -Infinity;
      for (let j = 0; j < Lk; j++) {
        let dot = 0;
        for (let e = 0; e < E; e++) dot += q[(b * Lq + i) * E + e] * k[(b * Lk + j) * E + e];
        let sj = dot * scale + (mask ? mask[(b * Lq + i) * Lk + j] : 0);
        if (causal && j > i) sj = -Infinity; // top-left aligned, as torch
        s[j] = sj;
        m = Math.max(m, sj);
      }
      let sum = 0;
      for (let j = 0; j < Lk; j++) sum += s[j] = m === -Infinity ? 0 : Math.exp(s[j] - m);
      for (let j = 0; j < Lk; j++) {
        const pj = s[j] / sum;
        for (let e = 0; e < Ev; e++) out[(b * Lq + i) * Ev + e] += pj * v[(b * Lk + j) * Ev + e];
      }
    }
  return out;
}

/** [dq, dk, dv] of softmax(q kᵀ·scale + mask + causal) v, recomputing each query row's probabilities. */
export function attentionBackward(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  mask: Float64Array | null,
  gy: Float64Array,
  d: AttentionDims,
  causal: boolean,
  scale: number,
): [Float64Array, Float64Array, Float64Array] {
  const { B, Lq, Lk, E, Ev } = d;
  const dq = new Float64Array(B * Lq * E);
  const dk = new Float64Array(B * Lk * E);
  const dv = new Float64Array(B * Lk * Ev);
  const p = new Float64Array(Lk);
  const dp = new Float64Array(Lk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Lq; i++) {
      const qi = (b * Lq + i) * E;
      const gi = (b * Lq + i) * Ev;
      let m = -Infinity;
      for (let j = 0; j < Lk; j++) {
        let dot = 0;
        for (let e = 0; e < E; e++) dot += q[qi + e] * k[(b * Lk + j) * E + e];
        let s = dot * scale + (mask ? mask[(b * Lq + i) * Lk + j] : 0);
        if (causal && j > i) s = -Infinity; // top-left aligned, as torch
        p[j] = s;
        m = Math.max(m, s);
      }
      // A fully masked row has no probabilities and passes no gradient (the forward gives 0).
      if (m === -Infinity) continue;
      let total = 0;
      for (let j = 0; j < Lk; j++) total += p[j] = Math.exp(p[j] - m);
      let rowDot = 0;
      for (let j = 0; j < Lk; j++) {
        p[j] /= total;
        let g = 0;
        for (let e = 0; e < Ev; e++) g += gy[gi + e] * v[(b * Lk + j) * Ev + e];
        dp[j] = g;
        rowDot += p[j] * g;
      }
      for (let j = 0; j < Lk; j++) {
        const kj = (b * Lk + j) * E;
        const vj = (b * Lk + j) * Ev;
        for (let e = 0; e < Ev; e++) dv[vj + e] += p[j] * gy[gi + e];
        const ds = p[j] * (dp[j] - rowDot) * scale;
        if (ds === 0) continue;
        for (let e = 0; e < E; e++) {
          dq[qi + e] += ds * k[kj + e];
          dk[kj + e] += ds * q[qi + e];
        }
      }
    }
  return [dq, dk, dv];
}
