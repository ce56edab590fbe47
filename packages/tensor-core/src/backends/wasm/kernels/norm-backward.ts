/**
 * groupNorm(+SiLU) and layerNorm backward in SIMD, f32 throughout, in three passes per normalised
 * unit (image × group, or row) while it is in cache: the statistics again (one shifted pass, as the
 * forward); one pass that recomputes x̂ (and σ(z) for SiLU) and forms
 *
 *   gz = gy (· σ(z)(1 + z(1 − σ(z))) with SiLU),  gx̂ = gz · w,
 *   Σgz·x̂ and Σgz per channel (dweight, dbias),  Σgx̂ and Σgx̂·x̂ per unit,
 *
 * storing gz (groupNorm+SiLU) or gx̂ (layerNorm) where dx goes; and a last pass
 *
 *   dx = rstd · (gx̂ − mean(gx̂) − x̂ · mean(gx̂·x̂)) = (rstd·w)·gz + (x − mean)·k₁ + k₀.
 *
 * groupNorm needs no per-unit sums in the loop: a group's channels each have one weight, so
 * Σgx̂ = Σ_c w_c Σgz and Σgx̂·x̂ = Σ_c w_c Σgz·x̂ come from the per-channel sums.
 *
 * dweight/dbias are sums over units that threads share, so each kernel writes partial sums the
 * host adds in a fixed order (results do not depend on the thread count): groupNorm one per
 * (image, channel), layerNorm one row of `size` per block of `block` rows.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { LogisticExp } from './logistic.js';
import { LN_ROWS, claimBlocks, emitStats, hsum, loadFields, madd, statsLocals, vecLoop } from './norm.js';
import type { ModuleBuilder } from './module.js';

/**
 * x, gy, dx: `units` (image, group) units from global unit `first` (a chunk); dwp, dbp [N, C]
 * partial sums, each (image, channel) written by the unit that owns it (spatial % 4 == 0);
 * `next` is the claim counter (the host writes 0).
 */
export const GNORM_BWD = {
  x: 0,
  gy: 1,
  dx: 2,
  units: 3,
  C: 4,
  spatial: 5,
  groups: 6,
  w: 7,
  b: 8,
  eps: 9,
  silu: 10,
  dwp: 11,
  dbp: 12,
  first: 13,
  next: 14,
} as const;
/**
 * x, gy, dx [rows, size] (size % 4 == 0); dwp, dbp: one partial row of `size` per block of
 * `block` rows, block i of this chunk at row `firstBlock + i` (written, not accumulated, by the
 * thread that claims the block); `next` is the claim counter (the host writes 0); `stats`:
 * LN_ROWS × 4 f32 per thread.
 */
export const LNORM_BWD = {
  x: 0,
  gy: 1,
  dx: 2,
  rows: 3,
  size: 4,
  w: 5,
  eps: 6,
  dwp: 7,
  dbp: 8,
  block: 9,
  firstBlock: 10,
  next: 11,
  stats: 12,
} as const;

export function emitNormBackward(mod: ModuleBuilder): void {
  const relaxed = mod.config.relaxed;
  // ---- task_groupnorm_bwd(desc, t, T): threads claim (image, group) units ----
  {
    const f = new Fn('task_groupnorm_bwd', [I32, I32, I32]);
    const d = 0;
    const L = loadFields(f, d, GNORM_BWD);
    const [u, u1, cg, size, off, xb, gb, db, o, end, cc, ch, q] = Array.from({ length: 13 }, () => f.local(I32));
    const [xh, a, e, t, r, s, gz, vm, vr, nw, nb, cw, cb, k1, k0] = Array.from({ length: 15 }, () => f.local(V128));
    const [mean, rstd, eps, wc, bc, sumB, sumW, rw] = Array.from({ length: 8 }, () => f.local(F32));
    const st = statsLocals(f);
    const ex = new LogisticExp(f, relaxed);
    f.get(d).f32load(GNORM_BWD.eps * 4).set(eps);
    f.get(L.C).get(L.groups).divs().set(cg);
    f.get(cg).get(L.spatial).mul().set(size);
    /** Channel `cc` of unit `u`: its index in C, its weight and bias (1 and 0 when absent). */
    const channel = () => {
      f.get(u).get(L.first).add().get(L.groups).rems().get(cg).mul().get(cc).add().set(ch);
      f.f32(1).set(wc);
      f.if(
        (g) => g.get(L.w),
        () => f.get(L.w).get(ch).i32(4).mul().add().f32load().set(wc),
      );
      f.f32(0).set(bc);
      f.if(
        (g) => g.get(L.b),
        () => f.get(L.b).get(ch).i32(4).mul().add().f32load().set(bc),
      );
    };
    /** xh ← (x − mean)·rstd at byte offset o of the unit. */
    const xhat = () => f.get(xb).get(o).add().v128load().get(vm).vsub().get(vr).vmul().set(xh);
    claimBlocks(f, d, GNORM_BWD.next, L.units, 1, u, u1, () => {
      // unit u = n·groups + g: its elements start at u·size in x, gy and dx alike.
      f.get(u).get(size).mul().i32(4).mul().set(off);
      f.get(L.x).get(off).add().set(xb);
      f.get(L.gy).get(off).add().set(gb);
      f.get(L.dx).get(off).add().set(db);
      emitStats(f, relaxed, xb, size, eps, mean, rstd, st);
      f.get(mean).vsplat().set(vm);
      f.get(rstd).vsplat().set(vr);
      f.f32(0).set(sumB);
      f.f32(0).set(sumW);
      f.i32(0).set(o);
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        channel();
        f.f32(0).vsplat().set(cw);
        f.f32(0).vsplat().set(cb);
        f.get(o).get(L.spatial).i32(4).mul().add().set(end);
        f.if(
          (g) => g.get(L.silu),
          () => {
            // a = −z = x̂·(−w) − b; s = σ(z) = 1 / (1 + e^a); gz = gy·s·(1 + z(1 − s)) = gy·s·(1 + a(s − 1))
            f.f32(0).get(wc).fsub().vsplat().set(nw);
            f.f32(0).get(bc).fsub().vsplat().set(nb);
            f.for(o, (g) => g.get(o), (g) => g.get(end), 16, () => {
              xhat();
              madd(f, relaxed, xh, nw, nb).set(a);
              ex.emit(a, e, t, r);
              f.get(ex.one).get(ex.one).get(e).vadd().vdiv().set(s);
              f.get(s).get(ex.one).vsub().set(t);
              madd(f, relaxed, a, t, ex.one).set(t);
              f.get(gb).get(o).add().v128load().get(s).vmul().get(t).vmul().set(gz);
              madd(f, relaxed, gz, xh, cw).set(cw);
              f.get(cb).get(gz).vadd().set(cb);
              f.get(db).get(o).add().get(gz).v128store();
            });
          },
          () => {
            f.for(o, (g) => g.get(o), (g) => g.get(end), 16, () => {
              xhat();
              f.get(gb).get(o).add().v128load().set(gz);
              madd(f, relaxed, gz, xh, cw).set(cw);
              f.get(cb).get(gz).vadd().set(cb);
            });
          },
        );
        // partials at [n, ch]: n·C + ch = ((first + u) / groups)·C + ch
        f.get(u).get(L.first).add().get(L.groups).divs().get(L.C).mul().get(ch).add().i32(4).mul().set(q);
        f.get(L.dwp).get(q).add();
        hsum(f, cw).f32store();
        f.get(L.dbp).get(q).add();
        hsum(f, cb).f32store();
        f.get(L.dwp).get(q).add().f32load().get(wc).fmul().get(sumW).fadd().set(sumW);
        f.get(L.dbp).get(q).add().f32load().get(wc).fmul().get(sumB).fadd().set(sumB);
      });
      // k₁ = −rstd²·mean(gx̂·x̂), k₀ = −rstd·mean(gx̂)
      f.f32(0).get(rstd).get(rstd).fmul().get(sumW).fmul().get(size).fconvi().fdiv().fsub().vsplat().set(k1);
      f.f32(0).get(rstd).get(sumB).fmul().get(size).fconvi().fdiv().fsub().vsplat().set(k0);
      // dx = (rstd·w_c)·gz + (x − mean)·k₁ + k₀, gz from dx (SiLU) or gy.
      f.i32(0).set(o);
      f.if(
        (g) => g.get(L.silu).eqz(),
        () => f.get(gb).set(q),
        () => f.get(db).set(q),
      );
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        channel();
        f.get(rstd).get(wc).fmul().set(rw);
        f.get(rw).vsplat().set(nw);
        f.get(o).get(L.spatial).i32(4).mul().add().set(end);
        f.for(o, (g) => g.get(o), (g) => g.get(end), 16, () => {
          f.get(xb).get(o).add().v128load().get(vm).vsub().set(xh);
          madd(f, relaxed, xh, k1, k0).set(a);
          f.get(q).get(o).add().v128load().set(gz);
          f.get(db).get(o).add();
          madd(f, relaxed, gz, nw, a).v128store();
        });
      });
    });
    mod.add(f);
  }

  // ---- task_layernorm_bwd(desc, t, T): threads claim blocks of `block` rows ----
  {
    const f = new Fn('task_layernorm_bwd', [I32, I32, I32]);
    const d = 0;
    const L = loadFields(f, d, LNORM_BWD);
    const [r, r0, r1, q0, q1, xb, gb, db, j, lim, dw, dbias, rowBytes, sp0, sp] = Array.from({ length: 15 }, () => f.local(I32));
    const [px, pg, pw, pdw, pdb, pd] = Array.from({ length: 6 }, () => f.local(I32));
    const [xh, g, gx, vm, vr, k1, k0, tv] = Array.from({ length: 8 }, () => f.local(V128));
    // Two (Σgx̂, Σgx̂·x̂) pairs, alternating between vectors, so the adds do not wait on each other.
    const sums = [0, 1].map(() => [f.local(V128), f.local(V128)]);
    const [[sa, sb], [sa2, sb2]] = sums;
    const [mean, rstd, eps] = Array.from({ length: 3 }, () => f.local(F32));
    const st = statsLocals(f);
    f.get(d).f32load(LNORM_BWD.eps * 4).set(eps);
    f.get(L.size).i32(4).mul().set(rowBytes);
    f.get(L.stats).get(1).i32(LN_ROWS * 16).mul().add().set(sp0);
    const U = 4;
    /** Pass 2 over one row: dweight/dbias partials, Σgx̂, Σgx̂·x̂, and gx̂ stored in dx. */
    const gradPass = (w: boolean) =>
      vecLoop(
        f,
        j,
        (h) => h.get(rowBytes),
        lim,
        U,
        () => {
          f.get(xb).get(j).add().set(px);
          f.get(gb).get(j).add().set(pg);
          if (w) f.get(L.w).get(j).add().set(pw);
          f.get(dw).get(j).add().set(pdw);
          f.get(dbias).get(j).add().set(pdb);
          f.get(db).get(j).add().set(pd);
        },
        (off) => {
          f.get(px).v128load(off).get(vm).vsub().get(vr).vmul().set(xh);
          f.get(pg).v128load(off).set(g);
          if (w) f.get(g).get(pw).v128load(off).vmul().set(gx);
          else f.get(g).set(gx);
          f.get(pdw).v128load(off).set(tv);
          f.get(pdw);
          madd(f, relaxed, g, xh, tv).v128store(off);
          f.get(pdb);
          f.get(pdb).v128load(off).get(g).vadd().v128store(off);
          const [a, b] = sums[(off / 16) % 2];
          f.get(a).get(gx).vadd().set(a);
          madd(f, relaxed, gx, xh, b).set(b);
          f.get(pd).get(gx).v128store(off);
        },
      );
    claimBlocks(f, d, LNORM_BWD.next, L.rows, (h) => h.get(L.block), r0, r1, () => {
      // This block's partial rows: block (firstBlock + r0 / block), zeroed here, summed over its rows.
      f.get(L.firstBlock).get(r0).get(L.block).divs().add().get(rowBytes).mul().set(j);
      f.get(L.dwp).get(j).add().set(dw);
      f.get(L.dbp).get(j).add().set(dbias);
      f.for(j, 0, (h) => h.get(rowBytes), 16, () => {
        f.get(dw).get(j).add().f32(0).vsplat().v128store();
        f.get(dbias).get(j).add().f32(0).vsplat().v128store();
      });
      // Sub-blocks of LN_ROWS rows [q0, q1): statistics of all, then pass 2 of all, then dx.
      f.for(q0, (h) => h.get(r0), (h) => h.get(r1), LN_ROWS, () => {
        f.get(q0).i32(LN_ROWS).add().set(q1);
        f.if(
          (h) => h.get(q1).get(r1).gts(),
          () => f.get(r1).set(q1),
        );
        /** Row r's pointers in x, gy, dx; its (mean, rstd, k₁, k₀) slot `sp`. */
        const rows = (body: () => void) => {
          f.get(sp0).set(sp);
          f.for(r, (h) => h.get(q0), (h) => h.get(q1), 1, () => {
            f.get(r).get(rowBytes).mul().set(j);
            f.get(L.x).get(j).add().set(xb);
            f.get(L.gy).get(j).add().set(gb);
            f.get(L.dx).get(j).add().set(db);
            body();
            f.get(sp).i32(16).add().set(sp);
          });
        };
        rows(() => {
          emitStats(f, relaxed, xb, L.size, eps, mean, rstd, st);
          f.get(sp).get(mean).f32store(0);
          f.get(sp).get(rstd).f32store(4);
        });
        rows(() => {
          f.get(sp).v128splat32(0).set(vm);
          f.get(sp).v128splat32(4).set(vr);
          for (const v of [sa, sb, sa2, sb2]) f.f32(0).vsplat().set(v);
          f.if(
            (h) => h.get(L.w),
            () => gradPass(true),
            () => gradPass(false),
          );
          f.get(sa).get(sa2).vadd().set(sa);
          f.get(sb).get(sb2).vadd().set(sb);
          // k₁ = −rstd²·mean(gx̂·x̂), k₀ = −rstd·mean(gx̂); dx = rstd·gx̂ + (x − mean)·k₁ + k₀
          f.get(sp).f32load(4).set(rstd);
          f.get(sp).f32(0).get(rstd).get(rstd).fmul();
          hsum(f, sb).fmul().get(L.size).fconvi().fdiv().fsub().f32store(8);
          f.get(sp).f32(0).get(rstd);
          hsum(f, sa).fmul().get(L.size).fconvi().fdiv().fsub().f32store(12);
        });
        rows(() => {
          f.get(sp).v128splat32(0).set(vm);
          f.get(sp).v128splat32(4).set(vr);
          f.get(sp).v128splat32(8).set(k1);
          f.get(sp).v128splat32(12).set(k0);
          vecLoop(
            f,
            j,
            (h) => h.get(rowBytes),
            lim,
            U,
            () => {
              f.get(xb).get(j).add().set(px);
              f.get(db).get(j).add().set(pd);
            },
            (off) => {
              f.get(px).v128load(off).get(vm).vsub().set(xh);
              madd(f, relaxed, xh, k1, k0).set(tv);
              f.get(pd).v128load(off).set(gx);
              f.get(pd);
              madd(f, relaxed, gx, vr, tv).v128store(off);
            },
          );
        });
      });
    });
    mod.add(f);
  }
}
