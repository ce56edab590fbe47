/**
 * Flash-style attention backward. Per (batch, query block of `bq` rows) unit it recomputes the
 * probabilities P = softmax(q kᵀ · scale + mask) for that block only (bq × Lk, in the thread's
 * workspace), then
 *
 *   dP = dO vᵀ,  D = rowsum(P ⊙ dP),  dS = P ⊙ (dP − D) · scale,
 *   dQ[block] = dS k,  dKᵀ += q[block]ᵀ dS,  dVᵀ += dO[block]ᵀ P,
 *
 * all in f32. The Lq×Lk matrices are never held. dK and dV accumulate over query blocks, so a
 * thread owns what it accumulates into: mode 0 gives each thread whole batches; mode 1 (fewer
 * batches than threads) splits the query blocks of one batch `b0` and each thread accumulates into
 * its own partial dKᵀ/dVᵀ (at `dK + t·Lk·E`, `dV + t·Lk·Ev`), which the host sums. dK and dV are
 * accumulated transposed, [E, Lk] and [Ev, Lk] per batch; the host zeroes them first.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { field, gemmWorkspaceBytes, min } from './module.js';
import type { ModuleBuilder } from './module.js';

/**
 * Descriptor of `task_attention_bwd`. Q [B, Lq, E], K [B, Lk, E], Kt [B, E, Lk], Vt [B, Ev, Lk],
 * dO [B, Lq, Ev]; mask (0: none) rows of Lk at `mask + b·maskBs·4`.
 */
export const ATTN_BWD = {
  Q: 0, K: 1, Kt: 2, Vt: 3, dO: 4, dQ: 5, dK: 6, dV: 7, mask: 8, maskBs: 9,
  B: 10, Lq: 11, Lk: 12, E: 13, Ev: 14, causal: 15, scale: 16, ws: 17, wsStride: 18, bq: 19, ldS: 20, mode: 21, b0: 22,
  /** Bytes of the thread's packed kᵀ and vᵀ panels (after its two score blocks; packed k follows). */
  pkBytes: 23, pvBytes: 24,
} as const;

export function emitAttentionBackward(mod: ModuleBuilder, gemm: Fn, packBAll: Fn, softmaxRows: Fn): void {
  const c = mod.config;
  // ---- dsRows(S, P2, rows, ld, scale): P2 ← S ⊙ (P2 − rowsum(S ⊙ P2)) · scale, ld % 4 == 0 ----
  const dsRows = new Fn('dsRows', [I32, I32, I32, I32, F32]);
  {
    const f = dsRows;
    const [S, P2, rows, ld, scale] = [0, 1, 2, 3, 4];
    const [r, p, q, end] = Array.from({ length: 4 }, () => f.local(I32));
    const [acc, vd, vs] = Array.from({ length: 3 }, () => f.local(V128));
    f.get(scale).vsplat().set(vs);
    f.for(r, 0, (g) => g.get(rows), 1, () => {
      f.get(S).get(r).get(ld).mul().i32(4).mul().add().set(p);
      f.get(p).get(ld).i32(4).mul().add().set(end);
      f.get(P2).get(p).get(S).sub().add().set(q);
      f.f32(0).vsplat().set(acc);
      f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
        f.vmadd(c.relaxed, () => f.get(p).v128load(), () => f.get(q).v128load(), () => f.get(acc)).set(acc);
        f.get(q).i32(16).add().set(q);
      });
      f.get(acc).vextract(0).get(acc).vextract(1).fadd().get(acc).vextract(2).fadd().get(acc).vextract(3).fadd().vsplat().set(vd);
      f.get(end).get(ld).i32(4).mul().sub().set(p);
      f.get(P2).get(p).get(S).sub().add().set(q);
      f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
        f.get(q).get(p).v128load().get(q).v128load().get(vd).vsub().vmul().get(vs).vmul().v128store();
        f.get(q).i32(16).add().set(q);
      });
    });
    mod.add(f);
  }

  // ---- task_attention_bwd(desc, t, T) ----
  {
    const f = new Fn('task_attention_bwd', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(ATTN_BWD)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(ATTN_BWD)) f.set(L[key], field(d, i));
    const [b, bLo, bHi, qb, qLo, qHi, nqb, i0, rows, ws, S, P2, t1, t2, maskp, Qb, dOb, dKb, dVb, PK, PV, PKN] = Array.from({ length: 22 }, () => f.local(I32));
    const scale = f.local(F32);
    const g = mod.index(gemm);
    f.get(d).f32load(ATTN_BWD.scale * 4).set(scale);
    f.get(L.Lq).get(L.bq).add().i32(1).sub().get(L.bq).divs().set(nqb);
    f.get(L.ws).get(t).get(L.wsStride).mul().add().set(ws);
    f.get(ws).i32(gemmWorkspaceBytes(c)).add().set(S);
    f.get(S).get(L.bq).get(L.ldS).mul().i32(4).mul().add().set(P2);
    f.get(P2).get(L.bq).get(L.ldS).mul().i32(4).mul().add().set(PK);
    f.get(PK).get(L.pkBytes).add().set(PV);
    f.get(PV).get(L.pvBytes).add().set(PKN);
    // dP's padding columns [Lk, ldS) are never written by the GEMM: zero them once (P is 0 there).
    f.get(P2).i32(0).get(L.bq).get(L.ldS).mul().i32(4).mul().memfill();
    f.if(
      (h) => h.get(L.mode),
      () => {
        f.get(L.b0).set(bLo);
        f.get(L.b0).i32(1).add().set(bHi);
        f.get(nqb).get(t).mul().get(T).divs().set(qLo);
        f.get(nqb).get(t).i32(1).add().mul().get(T).divs().set(qHi);
      },
      () => {
        f.get(L.B).get(t).mul().get(T).divs().set(bLo);
        f.get(L.B).get(t).i32(1).add().mul().get(T).divs().set(bHi);
        f.i32(0).set(qLo);
        f.get(nqb).set(qHi);
      },
    );
    f.for(b, (h) => h.get(bLo), (h) => h.get(bHi), 1, () => {
      // This thread's dK/dV accumulators: the batch's own (mode 0) or its partial (mode 1).
      f.get(t).get(b).get(L.mode).select().set(t1);
      f.get(L.dK).get(t1).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().set(dKb);
      f.get(L.dV).get(t1).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add().set(dVb);
      // The batch's kᵀ, vᵀ and k, packed once as GEMM B panels and reused by every query block.
      f.get(L.Kt).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().get(L.Lk).i32(1).get(L.E).get(L.Lk).get(PK).call(mod.index(packBAll));
      f.get(L.Vt).get(b).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add().get(L.Lk).i32(1).get(L.Ev).get(L.Lk).get(PV).call(mod.index(packBAll));
      f.get(L.K).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().get(L.E).i32(1).get(L.Lk).get(L.E).get(PKN).call(mod.index(packBAll));
      f.for(qb, (h) => h.get(qLo), (h) => h.get(qHi), 1, () => {
        f.get(qb).get(L.bq).mul().set(i0);
        min(f, (h) => h.get(L.bq), (h) => h.get(L.Lq).get(i0).sub(), t1, t2).set(rows);
        f.get(L.Q).get(b).get(L.Lq).mul().get(i0).add().get(L.E).mul().i32(4).mul().add().set(Qb);
        f.get(L.dO).get(b).get(L.Lq).mul().get(i0).add().get(L.Ev).mul().i32(4).mul().add().set(dOb);
        // S = Q[b, block] · K[b]ᵀ, then P = softmax(S · scale + mask) in place.
        f.get(Qb).get(L.E).i32(1);
        f.get(L.Kt).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().get(L.Lk).i32(1);
        f.get(S).get(L.ldS).get(rows).get(L.Lk).get(L.E).get(ws).i32(0).get(PK).call(g);
        f.i32(0).set(maskp);
        f.if((h) => h.get(L.mask), () => f.get(L.mask).get(b).get(L.maskBs).mul().get(i0).get(L.Lk).mul().add().i32(4).mul().add().set(maskp));
        f.get(S).get(rows).get(L.Lk).get(L.ldS).get(scale).get(maskp);
        f.get(i0).i32(-1).get(L.causal).select();
        f.call(mod.index(softmaxRows));
        // dP = dO[b, block] · V[b]ᵀ (V staged transposed), then dS in place of dP.
        f.get(dOb).get(L.Ev).i32(1);
        f.get(L.Vt).get(b).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add().get(L.Lk).i32(1);
        f.get(P2).get(L.ldS).get(rows).get(L.Lk).get(L.Ev).get(ws).i32(0).get(PV).call(g);
        f.get(S).get(P2).get(rows).get(L.ldS).get(scale).call(mod.index(dsRows));
        // dQ[b, block] = dS · K[b]
        f.get(P2).get(L.ldS).i32(1);
        f.get(L.K).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().get(L.E).i32(1);
        f.get(L.dQ).get(b).get(L.Lq).mul().get(i0).add().get(L.E).mul().i32(4).mul().add().get(L.E);
        f.get(rows).get(L.E).get(L.Lk).get(ws).i32(0).get(PKN).call(g);
        // dKᵀ[b] += Q[b, block]ᵀ · dS;  dVᵀ[b] += dO[b, block]ᵀ · P. Accumulating the transposes
        // packs the large operand (dS, P: rows × Lk) as contiguous rows; the host transposes once.
        f.get(Qb).i32(1).get(L.E).get(P2).get(L.ldS).i32(1).get(dKb).get(L.Lk);
        f.get(L.E).get(L.Lk).get(rows).get(ws).i32(1).i32(0).call(g);
        f.get(dOb).i32(1).get(L.Ev).get(S).get(L.ldS).i32(1).get(dVb).get(L.Lk);
        f.get(L.Ev).get(L.Lk).get(rows).get(ws).i32(1).i32(0).call(g);
      });
    });
    mod.add(f);
  }
}
