/** Attention on the wasm engine (f32): the flash-style forward kernel. */
import { pool } from './bufpool.js';
import { ATTN } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';

/** Flash-style attention forward: per (batch, 64-query block) S = q kᵀ, softmax, S v. f32 views. */
export function attentionForward(scratch: Scratch, q: WView, k: WView, v: WView, mask: WView | null, causal: boolean, scale: number): Float32Array {
  const [B, Lq, E] = q.shape;
  const Lk = k.shape[1];
  const Ev = v.shape[2];
  const out = pool.f32(B * Lq * Ev);
  if (out.length === 0) return out;
  if (Lk === 0) return out.fill(0);
  const e = scratch.engine;
  e.reset();
  const qs = scratch.stageContig(q);
  // kᵀ per batch ([B, E, Lk]) so the packed panels are plain copies.
  const kt = e.alloc(B * E * Lk * 4);
  {
    const src = contig(k);
    const f = e.f32;
    const base = kt / 4;
    for (let b = 0; b < B; b++)
      for (let j = 0; j < Lk; j++) {
        const s = (b * Lk + j) * E;
        const d = base + b * E * Lk + j;
        for (let x = 0; x < E; x++) f[d + x * Lk] = src[s + x];
      }
  }
  const vs = scratch.stageContig(v);
  const ms = mask ? scratch.stageContig(mask) : 0;
  const o = e.alloc(out.length * 4);
  const bq = 64;
  const ldS = Math.ceil(Lk / 4) * 4;
  const ws = scratch.workspaces(bq * ldS * 4);
  const f = new Array<number>(16);
  const A = ATTN;
  f[A.Q] = qs; f[A.K] = kt; f[A.V] = vs; f[A.O] = o; f[A.mask] = ms; f[A.B] = B; f[A.Lq] = Lq; f[A.Lk] = Lk;
  f[A.E] = E; f[A.Ev] = Ev; f[A.causal] = causal ? 1 : 0; f[A.scale] = bitsOf(scale); f[A.ws] = ws.ws; f[A.wsStride] = ws.stride;
  f[A.bq] = bq; f[A.ldS] = ldS;
  e.run('task_attention', e.desc(f));
  return scratch.copyOut(o, out);
}
