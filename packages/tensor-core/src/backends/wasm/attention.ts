/**
 * Attention on the wasm engine (f32): the flash-style forward and backward kernels. Operands are
 * staged once per call: q, k (and kᵀ, vᵀ per batch, so the GEMMs pack plain row copies), the
 * mask (once when it is shared by every batch), and dO for the backward.
 */
import { isContiguous } from '../../shape.js';
import { pool } from './bufpool.js';
import { ATTN, ATTN_BWD, packedBBytes } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';

/** Query rows per unit of work: the thread's score block is bq × Lk. */
const BQ = 64;

/** Stages x [B, R, C] as xᵀ per batch, [B, C, R]. */
function stageTransposed(scratch: Scratch, x: WView): number {
  const [B, R, C] = x.shape;
  const e = scratch.engine;
  const ptr = e.alloc(Math.max(1, B * R * C) * 4);
  const src = contig(x);
  const f = e.f32;
  const base = ptr / 4;
  for (let b = 0; b < B; b++)
    for (let j = 0; j < R; j++) {
      const s = (b * R + j) * C;
      const d = base + b * C * R + j;
      for (let i = 0; i < C; i++) f[d + i * R] = src[s + i];
    }
  return ptr;
}

/** Stages an additive mask [B, Lq, Lk]; one [Lq, Lk] copy when every batch shares it (batch stride 0). */
function stageMask(scratch: Scratch, mask: WView | null): { ptr: number; bs: number } {
  if (!mask) return { ptr: 0, bs: 0 };
  const [, Lq, Lk] = mask.shape;
  if (mask.strides[0] === 0 && isContiguous(mask.shape.slice(1), mask.strides.slice(1))) {
    return { ptr: scratch.stageContig({ ...mask, shape: mask.shape.slice(1), strides: mask.strides.slice(1) }), bs: 0 };
  }
  return { ptr: scratch.stageContig(mask), bs: Lq * Lk };
}

/** Single-thread time of an attention forward (µs, at ~20 GFLOP/s), for `engine.threadsFor`. */
function attentionUs(B: number, Lq: number, Lk: number, E: number, Ev: number): number {
  return (2 * B * Lq * Lk * (E + Ev)) / 20e3;
}

/** Flash-style attention forward: per (batch, 64-query block) S = q kᵀ, softmax, S v. f32 views. */
export function attentionForward(
  scratch: Scratch,
  q: WView,
  k: WView,
  v: WView,
  mask: WView | null,
  causal: boolean,
  scale: number,
): Float32Array {
  const [B, Lq, E] = q.shape;
  const Lk = k.shape[1];
  const Ev = v.shape[2];
  const out = pool.f32(B * Lq * Ev);
  if (out.length === 0) return out;
  if (Lk === 0) return out.fill(0);
  const e = scratch.engine;
  e.reset();
  const qs = scratch.stageContig(q);
  const kt = stageTransposed(scratch, k);
  const vs = scratch.stageContig(v);
  const ms = stageMask(scratch, mask);
  const o = scratch.target(out);
  const ldS = Math.ceil(Lk / 4) * 4;
  const pk = Math.ceil(packedBBytes(e.config, E, Lk) / 64) * 64;
  const ws = scratch.workspaces(BQ * ldS * 4 + pk + packedBBytes(e.config, Lk, Ev));
  const f = new Array<number>(18);
  const A = ATTN;
  f[A.Q] = qs;
  f[A.K] = kt;
  f[A.V] = vs;
  f[A.O] = o;
  f[A.mask] = ms.ptr;
  f[A.maskBs] = ms.bs;
  f[A.B] = B;
  f[A.Lq] = Lq;
  f[A.Lk] = Lk;
  f[A.E] = E;
  f[A.Ev] = Ev;
  f[A.causal] = causal ? 1 : 0;
  f[A.scale] = bitsOf(scale);
  f[A.ws] = ws.ws;
  f[A.wsStride] = ws.stride;
  f[A.bq] = BQ;
  f[A.ldS] = ldS;
  f[A.pkBytes] = pk;
  e.run('task_attention', e.desc(f), e.threadsFor(attentionUs(B, Lq, Lk, E, Ev)));
  return scratch.copyOut(o, out);
}

/**
 * Gradients of attention given gy [B, Lq, Ev]: [dq, dk, dv], contiguous f32. Threads take whole
 * batches when they divide evenly (or there are many); otherwise each batch's query blocks are
 * split across threads, each accumulating its own partial dK/dV, summed here. The kernel
 * accumulates dK and dV transposed; they are transposed back here.
 */
export function attentionBackward(
  scratch: Scratch,
  q: WView,
  k: WView,
  v: WView,
  mask: WView | null,
  causal: boolean,
  scale: number,
  gy: WView,
): [Float32Array, Float32Array, Float32Array] {
  const [B, Lq, E] = q.shape;
  const Lk = k.shape[1];
  const Ev = v.shape[2];
  const dq = pool.f32(B * Lq * E);
  const dk = pool.f32(B * Lk * E);
  const dv = pool.f32(B * Lk * Ev);
  if (B * Lq === 0 || Lk === 0) return [dq.fill(0), dk.fill(0), dv.fill(0)];
  const e = scratch.engine;
  // Five GEMMs to the forward's two.
  const T = e.threadsFor(2.5 * attentionUs(B, Lq, Lk, E, Ev));
  e.reset();
  const qs = scratch.stageContig(q);
  const ks = scratch.stageContig(k);
  const kt = stageTransposed(scratch, k);
  const vt = stageTransposed(scratch, v);
  const gs = scratch.stageContig(gy);
  const ms = stageMask(scratch, mask);
  const gq = scratch.target(dq);
  const nqb = Math.ceil(Lq / BQ);
  const byBatch = T === 1 || B % T === 0 || B >= 4 * T || nqb === 1;
  // mode 0: dK/dV themselves; mode 1: one partial per thread.
  const kLen = (byBatch ? B : T) * Lk * E;
  const vLen = (byBatch ? B : T) * Lk * Ev;
  const gk = e.alloc(kLen * 4);
  const gv = e.alloc(vLen * 4);
  const ldS = Math.ceil(Lk / 4) * 4;
  const cfg = e.config;
  const pk = Math.ceil(packedBBytes(cfg, E, Lk) / 64) * 64;
  const pv = Math.ceil(packedBBytes(cfg, Ev, Lk) / 64) * 64;
  const ws = scratch.workspaces(2 * BQ * ldS * 4 + pk + pv + packedBBytes(cfg, Lk, E));
  const f = new Array<number>(25);
  const A = ATTN_BWD;
  f[A.Q] = qs;
  f[A.K] = ks;
  f[A.Kt] = kt;
  f[A.Vt] = vt;
  f[A.dO] = gs;
  f[A.dQ] = gq;
  f[A.dK] = gk;
  f[A.dV] = gv;
  f[A.mask] = ms.ptr;
  f[A.maskBs] = ms.bs;
  f[A.B] = B;
  f[A.Lq] = Lq;
  f[A.Lk] = Lk;
  f[A.E] = E;
  f[A.Ev] = Ev;
  f[A.causal] = causal ? 1 : 0;
  f[A.scale] = bitsOf(scale);
  f[A.ws] = ws.ws;
  f[A.wsStride] = ws.stride;
  f[A.bq] = BQ;
  f[A.ldS] = ldS;
  f[A.pkBytes] = pk;
  f[A.pvBytes] = pv;
  if (byBatch) {
    e.f32.fill(0, gk / 4, gk / 4 + kLen);
    e.f32.fill(0, gv / 4, gv / 4 + vLen);
    f[A.mode] = 0;
    f[A.b0] = 0;
    e.run('task_attention_bwd', e.desc(f), T);
    for (let b = 0; b < B; b++) {
      transposeOut(e.f32, gk / 4 + b * Lk * E, 1, E, Lk, dk, b * Lk * E);
      transposeOut(e.f32, gv / 4 + b * Lk * Ev, 1, Ev, Lk, dv, b * Lk * Ev);
    }
  } else {
    for (let b = 0; b < B; b++) {
      e.f32.fill(0, gk / 4, gk / 4 + kLen);
      e.f32.fill(0, gv / 4, gv / 4 + vLen);
      f[A.mode] = 1;
      f[A.b0] = b;
      e.run('task_attention_bwd', e.desc(f), T);
      transposeOut(e.f32, gk / 4, T, E, Lk, dk, b * Lk * E);
      transposeOut(e.f32, gv / 4, T, Ev, Lk, dv, b * Lk * Ev);
    }
  }
  scratch.copyOut(gq, dq);
  return [dq, dk, dv];
}

/** out[at + j·R + i] = Σ_t src[base + t·R·C + i·C + j]: the sum of `parts` [R, C] matrices, transposed. */
function transposeOut(src: Float32Array, base: number, parts: number, R: number, C: number, out: Float32Array, at: number): void {
  for (let i = 0; i < R; i++)
    for (let j = 0; j < C; j++) {
      let s = 0;
      for (let t = 0, o = base + i * C + j; t < parts; t++, o += R * C) s += src[o];
      out[at + j * R + i] = s;
    }
}
