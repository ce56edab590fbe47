/**
 * groupNorm(+SiLU) and layerNorm backward in SIMD, f32 throughout. Both need, per normalised unit
 * (image × group, or row), the statistics again (one shifted pass, as the forward, unless the
 * layerNorm forward saved them) and the sums
 * Σgx̂ and Σgx̂·x̂ before they can write
 *
 *   dx = rstd · (gx̂ − mean(gx̂) − x̂ · mean(gx̂·x̂)) = (rstd·w)·gz + (x − mean)·k₁ + k₀,
 *
 * with gz = gy (· σ(z)(1 + z(1 − σ(z))) with SiLU) and gx̂ = gz · w; dweight and dbias are Σgz·x̂
 * and Σgz per channel.
 *
 * groupNorm works unit by unit in three passes while the unit is in cache: the statistics; x̂ (and
 * σ(z)), the per-channel sums and gz stored where dx goes; dx. It needs no per-unit sums in the
 * loop: a group's channels each have one weight, so Σgx̂ = Σ_c w_c Σgz and Σgx̂·x̂ = Σ_c w_c Σgz·x̂.
 *
 * layerNorm rows are short (a few KB), so it pipelines rows instead: one loop reads row r + 1 from
 * memory for its statistics and sums, while it writes row r's dx and dweight/dbias from L1. Memory
 * is then busy for the whole kernel rather than in bursts between passes that only compute.
 *
 * dweight/dbias are sums over units that threads share, so each kernel writes partial sums that
 * `task_sum_rows` adds in a fixed order (results do not depend on the thread count): groupNorm one
 * per (image, channel), layerNorm one row of `size` per block of `block` rows.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { LogisticExp } from './logistic.js';
import { branch, claimBlocks, emitStats, hsum, loadFields, madd, pipelineRows, shiftedStats, statsLocals, vecLoop } from './norm.js';
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
 * thread that claims the block); `stats` (a byte address, or 0) each row's mean and 1/std from the
 * forward (`LNORM.stats`, global rows: this chunk's first row is firstBlock · block), which spares
 * the statistics pass; `next` is the claim counter (the host writes 0).
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
  stats: 11,
  next: 12,
} as const;

/** out[i] = Σ_r src[r·len + i] over r < rows, in row order: the host's sum of the kernels' partials. */
export const SUM_ROWS = { src: 0, rows: 1, len: 2, out: 3 } as const;

export function emitNormBackward(mod: ModuleBuilder): void {
  const relaxed = mod.config.relaxed;
  // ---- task_sum_rows(desc, t, T): on one thread ----
  {
    const f = new Fn('task_sum_rows', [I32, I32, I32]);
    const L = loadFields(f, 0, SUM_ROWS);
    const [j, r, p, stride, vend] = Array.from({ length: 5 }, () => f.local(I32));
    const acc = f.local(V128);
    const s = f.local(F32);
    f.get(L.len).i32(4).mul().set(stride);
    f.get(stride).i32(-16).and().set(vend);
    f.for(j, 0, (h) => h.get(vend), 16, () => {
      f.f32(0).vsplat().set(acc);
      f.get(L.src).get(j).add().set(p);
      f.for(r, 0, (h) => h.get(L.rows), 1, () => {
        f.get(acc).get(p).v128load().vadd().set(acc);
        f.get(p).get(stride).add().set(p);
      });
      f.get(L.out).get(j).add().get(acc).v128store();
    });
    f.for(j, (h) => h.get(vend), (h) => h.get(stride), 4, () => {
      f.f32(0).set(s);
      f.get(L.src).get(j).add().set(p);
      f.for(r, 0, (h) => h.get(L.rows), 1, () => {
        f.get(s).get(p).f32load().fadd().set(s);
        f.get(p).get(stride).add().set(p);
      });
      f.get(L.out).get(j).add().get(s).f32store();
    });
    mod.add(f);
  }

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
    const [r, r0, r1, j, lim, dw, dbias, rowBytes, xn, gn, xc, gc, dc, rn, sp] = Array.from({ length: 15 }, () => f.local(I32));
    const [pxn, pgn, pw, px, pg, pd, pdw, pdb] = Array.from({ length: 8 }, () => f.local(I32));
    const [dv, gxn, W, t, xh, g, shift, vm, vr, k1, k0] = Array.from({ length: 11 }, () => f.local(V128));
    const [s1, s2, sa, sc, t1, t2, ta, tc] = Array.from({ length: 8 }, () => f.local(V128));
    const [n, mo, eps, A, B, cm, cr, ck1, ck0] = Array.from({ length: 9 }, () => f.local(F32));
    f.get(d).f32load(LNORM_BWD.eps * 4).set(eps);
    f.get(L.size).i32(4).mul().set(rowBytes);
    f.get(L.size).fconvi().set(n);
    // With the forward's statistics: row r's mean and 1/std are at sp + 8r.
    f.get(L.stats).get(L.firstBlock).get(L.block).mul().i32(8).mul().add().set(sp);
    /**
     * One loop: `next` sums the next row (from memory) for its statistics (unless `saved`) and gradient means, `cur`
     * writes the current row's dx and adds to the dweight/dbias partials (its x and gy are in L1
     * from the previous loop).
     */
    const pass = (next: boolean, cur: boolean, w: boolean, saved: boolean) =>
      vecLoop(
        f,
        j,
        (h) => h.get(rowBytes),
        lim,
        8,
        () => {
          if (next) {
            f.get(xn).get(j).add().set(pxn);
            f.get(gn).get(j).add().set(pgn);
          }
          if (w) f.get(L.w).get(j).add().set(pw);
          if (cur) {
            f.get(xc).get(j).add().set(px);
            f.get(gc).get(j).add().set(pg);
            f.get(dc).get(j).add().set(pd);
            f.get(dw).get(j).add().set(pdw);
            f.get(dbias).get(j).add().set(pdb);
          }
        },
        (off) => {
          if (w) f.get(pw).v128load(off).set(W);
          if (next) {
            f.get(pxn).v128load(off).get(shift).vsub().set(dv);
            f.get(pgn).v128load(off);
            if (w) f.get(W).vmul();
            f.set(gxn);
            if (off === 0) {
              if (!saved) {
                f.get(dv).set(t1);
                f.get(dv).get(dv).vmul().set(t2);
              }
              f.get(gxn).set(ta);
              f.get(gxn).get(dv).vmul().set(tc);
            } else {
              if (!saved) {
                f.get(t1).get(dv).vadd().set(t1);
                madd(f, relaxed, dv, dv, t2).set(t2);
              }
              f.get(ta).get(gxn).vadd().set(ta);
              madd(f, relaxed, gxn, dv, tc).set(tc);
            }
          }
          if (cur) {
            f.get(px).v128load(off).get(vm).vsub().set(t);
            f.get(t).get(vr).vmul().set(xh);
            f.get(pg).v128load(off).set(g);
            f.get(pdw).v128load(off).set(dv);
            f.get(pdw);
            madd(f, relaxed, g, xh, dv).v128store(off);
            f.get(pdb).get(pdb).v128load(off).get(g).vadd().v128store(off);
            if (w) f.get(g).get(W).vmul().set(g);
            madd(f, relaxed, t, k1, k0).set(xh);
            f.get(pd);
            madd(f, relaxed, g, vr, xh).v128store(off);
          }
        },
        () => {
          // The iteration's sums join the row's once: the chain carried from one iteration to
          // the next is one add, not U (an FMA's latency each).
          if (!next) return;
          for (const [acc, part] of saved ? [[sa, ta], [sc, tc]] : [[s1, t1], [s2, t2], [sa, ta], [sc, tc]]) f.get(acc).get(part).vadd().set(acc);
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
      pipelineRows(f, r, r0, r1, {
        // Row `row`'s pointers into x and gy, and its shift x₀: its mean where the forward saved it, else its first element.
        start: (row) => {
          f.e(row).set(rn);
          f.get(rn).get(rowBytes).mul().set(j);
          f.get(L.x).get(j).add().set(xn);
          f.get(L.gy).get(j).add().set(gn);
          f.if(
            (h) => h.get(L.stats),
            () => f.get(sp).get(rn).i32(8).mul().add().f32load().vsplat().set(shift),
            () => f.get(xn).v128splat32().set(shift),
          );
          for (const v of [s1, s2, sa, sc]) f.f32(0).vsplat().set(v);
        },
        pass: (next, cur) => branch(f, L.w, (w) => branch(f, L.stats, (saved) => pass(next, cur, w, saved))),
        /**
         * The summed row's constants: with d = x − x₀ and mo = mean − x₀, A = mean(gx̂),
         * B = mean(gx̂·x̂) = rstd·(mean(gx̂·d) − mo·A), and dx = rstd·(gx̂ − A − x̂·B) =
         * rstd·gx̂ + (x − mean)·k₁ + k₀ with k₁ = −rstd²·B, k₀ = −rstd·A.
         */
        finish: () => {
          f.if(
            (h) => h.get(L.stats),
            () => {
              f.get(sp).get(rn).i32(8).mul().add().set(j);
              f.get(j).f32load(0).set(cm);
              f.get(j).f32load(4).set(cr);
              f.f32(0).set(mo);
            },
            () => shiftedStats(f, s1, s2, shift, (h) => h.get(n), eps, mo, cm, cr),
          );
          hsum(f, sa).get(n).fdiv().set(A);
          hsum(f, sc).get(n).fdiv().get(mo).get(A).fmul().fsub().get(cr).fmul().set(B);
          f.f32(0).get(cr).get(cr).fmul().get(B).fmul().fsub().set(ck1);
          f.f32(0).get(cr).get(A).fmul().fsub().set(ck0);
        },
        current: () => {
          f.get(cm).vsplat().set(vm);
          f.get(cr).vsplat().set(vr);
          f.get(ck1).vsplat().set(k1);
          f.get(ck0).vsplat().set(k0);
          f.get(r).get(rowBytes).mul().set(j);
          f.get(L.x).get(j).add().set(xc);
          f.get(L.gy).get(j).add().set(gc);
          f.get(L.dx).get(j).add().set(dc);
        },
      });
    });
    mod.add(f);
  }
}
