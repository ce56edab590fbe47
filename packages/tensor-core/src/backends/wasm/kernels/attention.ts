/**
 * Flash-style attention forward (mask rows of Lk at `mask + b·maskBs·4`, so a mask shared by
 * every batch is staged once): (batch, query block) units split across threads; per unit
 * S = q kᵀ (kᵀ staged once), scale/mask/causal + softmax, then S v. The L×S scores are never
 * materialised.
 */
import { F32, Fn, I32 } from '../emit.js';
import { field, gemmWorkspaceBytes, min } from './module.js';
import type { ModuleBuilder } from './module.js';

export const ATTN = { Q: 0, K: 1, V: 2, O: 3, mask: 4, B: 5, Lq: 6, Lk: 7, E: 8, Ev: 9, causal: 10, scale: 11, ws: 12, wsStride: 13, bq: 14, ldS: 15, maskBs: 16, pkBytes: 17 } as const;

export function emitAttention(mod: ModuleBuilder, gemm: Fn, packBAll: Fn, softmaxRows: Fn): void {
  const c = mod.config;
  // ---- task_attention(desc, t, T): (batch, query block) units split across threads ----
  {
    const f = new Fn('task_attention', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(ATTN)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(ATTN)) f.set(L[key], field(d, i));
    const [u, u0, u1, units, nqb, b, i0, rows, ws, S, t1, t2, maskp, PK, PV, lastB] = Array.from({ length: 16 }, () => f.local(I32));
    const scale = f.local(F32);
    f.get(d).f32load(ATTN.scale * 4).set(scale);
    f.get(L.Lq).get(L.bq).add().i32(1).sub().get(L.bq).divs().set(nqb);
    f.get(L.B).get(nqb).mul().set(units);
    f.get(units).get(t).mul().get(T).divs().set(u0);
    f.get(units).get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.get(L.ws).get(t).get(L.wsStride).mul().add().set(ws);
    f.get(ws).i32(gemmWorkspaceBytes(c)).add().set(S);
    // After the score block: this thread's batch's kᵀ and v packed as GEMM B panels (pkBytes, then v's).
    f.get(S).get(L.bq).get(L.ldS).mul().i32(4).mul().add().set(PK);
    f.get(PK).get(L.pkBytes).add().set(PV);
    f.i32(-1).set(lastB);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      f.get(u).get(nqb).divs().set(b);
      f.get(u).get(nqb).rems().get(L.bq).mul().set(i0);
      min(f, (g) => g.get(L.bq), (g) => g.get(L.Lq).get(i0).sub(), t1, t2).set(rows);
      f.if((g) => g.get(b).get(lastB).ne(), () => {
        f.get(L.K).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add().get(L.Lk).i32(1).get(L.E).get(L.Lk).get(PK).call(mod.index(packBAll));
        f.get(L.V).get(b).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add().get(L.Ev).i32(1).get(L.Lk).get(L.Ev).get(PV).call(mod.index(packBAll));
        f.get(b).set(lastB);
      });
      // S = Q[b, i0:i0+rows] · K[b]ᵀ
      f.get(L.Q).get(b).get(L.Lq).mul().get(i0).add().get(L.E).mul().i32(4).mul().add();
      f.get(L.E).i32(1);
      // K is staged transposed, [B, E, Lk]
      f.get(L.K).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add();
      f.get(L.Lk).i32(1);
      f.get(S).get(L.ldS).get(rows).get(L.Lk).get(L.E).get(ws).i32(0).get(PK).call(mod.index(gemm));
      f.i32(0).set(maskp);
      f.if((g) => g.get(L.mask), () => f.get(L.mask).get(b).get(L.maskBs).mul().get(i0).get(L.Lk).mul().add().i32(4).mul().add().set(maskp));
      f.get(S).get(rows).get(L.Lk).get(L.ldS).get(scale).get(maskp);
      // causal0 = causal ? i0 : -1
      f.get(i0).i32(-1).get(L.causal).select();
      f.call(mod.index(softmaxRows));
      // O[b, i0:] = P · V[b]
      f.get(S).get(L.ldS).i32(1);
      f.get(L.V).get(b).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add();
      f.get(L.Ev).i32(1);
      f.get(L.O).get(b).get(L.Lq).mul().get(i0).add().get(L.Ev).mul().i32(4).mul().add();
      f.get(L.Ev).get(rows).get(L.Ev).get(L.Lk).get(ws).i32(0).get(PV).call(mod.index(gemm));
    });
    mod.add(f);
  }
}
