/**
 * groupNorm(+SiLU) and layerNorm backward in SIMD, f32 throughout. Per normalised unit (image ×
 * group, or row): the statistics again (one shifted pass, as the forward), then one pass that
 * recomputes x̂ (and the SiLU from the affine output) and forms
 *
 *   gz = gy (· σ(z)(1 + z(1 − σ(z))) with SiLU),  gx̂ = gz · w,
 *   Σgx̂, Σgx̂·x̂ (per unit),  Σgz·x̂, Σgz (per channel: dweight, dbias),
 *
 * storing gx̂ where dx goes, and a last pass dx = rstd · (gx̂ − mean(gx̂) − x̂ · mean(gx̂·x̂)).
 * dweight/dbias are sums over units that threads share, so each kernel writes partial sums the
 * host adds: groupNorm one per (image, channel), layerNorm one row of `size` per thread.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { emitExp } from './exp.js';
import { field } from './module.js';
import { emitStats, hsum } from './norm.js';
import type { ModuleBuilder } from './module.js';

/**
 * x, gy, dx: `units` (image, group) units from global unit `first` (a chunk); dwp, dbp [N, C]
 * partial sums, each (image, channel) written by the unit that owns it (spatial % 4 == 0).
 */
export const GNORM_BWD = { x: 0, gy: 1, dx: 2, units: 3, C: 4, spatial: 5, groups: 6, w: 7, b: 8, eps: 9, silu: 10, dwp: 11, dbp: 12, first: 13 } as const;
/** x, gy, dx [rows, size]; dwp, dbp [T, size] partial sums, one row per thread, zeroed by the host and accumulated over chunks (size % 4 == 0). */
export const LNORM_BWD = { x: 0, gy: 1, dx: 2, rows: 3, size: 4, w: 5, eps: 6, dwp: 7, dbp: 8 } as const;

type Locals = Record<string, number>;

function loadFields(f: Fn, d: number, desc: Record<string, number>): Locals {
  const L: Locals = {};
  for (const key of Object.keys(desc)) L[key] = f.local(I32);
  for (const [key, i] of Object.entries(desc)) f.set(L[key], field(d, i));
  return L;
}

export function emitNormBackward(mod: ModuleBuilder): void {
  const c = mod.config;
  // ---- task_groupnorm_bwd(desc, t, T): (image, group) units split across threads ----
  {
    const f = new Fn('task_groupnorm_bwd', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L = loadFields(f, d, GNORM_BWD);
    const [u, u0, u1, cg, size, base, end, p, q, o, cc, ch, off] = Array.from({ length: 13 }, () => f.local(I32));
    const [xh, gz, z, s, e, vm, vr, vw, vb, sa, sb, cw, cb] = Array.from({ length: 13 }, () => f.local(V128));
    const [mean, rstd, tmp, eps, wc, bc, a, cf] = Array.from({ length: 8 }, () => f.local(F32));
    f.get(d).f32load(GNORM_BWD.eps * 4).set(eps);
    f.get(L.C).get(L.groups).divs().set(cg);
    f.get(L.units).get(t).mul().get(T).divs().set(u0);
    f.get(L.units).get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.get(cg).get(L.spatial).mul().set(size);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      // unit u = n·groups + g: its elements start at u·size in x, gy and dx alike.
      f.get(u).get(size).mul().i32(4).mul().set(off);
      f.get(L.x).get(off).add().set(base);
      f.get(base).get(size).i32(4).mul().add().set(end);
      emitStats(f, base, end, size, eps, mean, rstd, tmp, [xh, gz, z, s], p);
      f.get(mean).vsplat().set(vm);
      f.get(rstd).vsplat().set(vr);
      f.f32(0).vsplat().set(sa);
      f.f32(0).vsplat().set(sb);
      f.get(base).set(p);
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        f.get(u).get(L.first).add().get(L.groups).rems().get(cg).mul().get(cc).add().set(ch);
        f.f32(1).set(wc);
        f.if((g) => g.get(L.w), () => f.get(L.w).get(ch).i32(4).mul().add().f32load().set(wc));
        f.f32(0).set(bc);
        f.if((g) => g.get(L.b), () => f.get(L.b).get(ch).i32(4).mul().add().f32load().set(bc));
        f.get(wc).vsplat().set(vw);
        f.get(bc).vsplat().set(vb);
        f.f32(0).vsplat().set(cw);
        f.f32(0).vsplat().set(cb);
        f.get(p).get(L.spatial).i32(4).mul().add().set(end);
        // q: the same element in gy; o: in dx.
        const body = (silu: boolean) =>
          f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
            f.get(p).get(L.x).sub().set(o);
            f.get(L.gy).get(o).add().set(q);
            f.get(L.dx).get(o).add().set(o);
            f.get(p).v128load().get(vm).vsub().get(vr).vmul().set(xh);
            f.get(q).v128load().set(gz);
            if (silu) {
              // z = x̂ w + b; s = σ(z); gz = gy · s · (1 + z (1 − s))
              f.get(xh).get(vw).vmul().get(vb).vadd().set(z);
              f.f32(0).vsplat().get(z).vsub().set(s);
              emitExp(f, s, e, c.relaxed);
              f.f32(1).vsplat().f32(1).vsplat().get(s).vadd().vdiv().set(s);
              f.get(gz).get(s).vmul();
              f.f32(1).vsplat().get(z).f32(1).vsplat().get(s).vsub().vmul().vadd();
              f.vmul().set(gz);
            }
            f.get(cw).get(gz).get(xh).vmul().vadd().set(cw);
            f.get(cb).get(gz).vadd().set(cb);
            f.get(gz).get(vw).vmul().set(gz); // gx̂
            f.get(sa).get(gz).vadd().set(sa);
            f.get(sb).get(gz).get(xh).vmul().vadd().set(sb);
            f.get(o).get(gz).v128store();
          });
        f.if((g) => g.get(L.silu), () => body(true), () => body(false));
        // partials at [n, ch]: n·C + ch = ((first + u) / groups)·C + ch
        f.get(u).get(L.first).add().get(L.groups).divs().get(L.C).mul().get(ch).add().i32(4).mul().set(q);
        f.get(L.dwp).get(q).add();
        hsum(f, cw).f32store();
        f.get(L.dbp).get(q).add();
        hsum(f, cb).f32store();
        f.get(end).set(p);
      });
      hsum(f, sa).get(size).fconvi().fdiv().set(a);
      hsum(f, sb).get(size).fconvi().fdiv().set(cf);
      f.get(a).vsplat().set(sa);
      f.get(cf).vsplat().set(sb);
      // dx = rstd (gx̂ − a − x̂ cf)
      f.get(L.x).get(off).add().set(base);
      f.get(base).get(size).i32(4).mul().add().set(end);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
        f.get(p).get(L.x).sub().get(L.dx).add().set(o);
        f.get(p).v128load().get(vm).vsub().get(vr).vmul().set(xh);
        f.get(o).get(o).v128load().get(sa).vsub().get(xh).get(sb).vmul().vsub().get(vr).vmul().v128store();
      });
    });
    mod.add(f);
  }

  // ---- task_layernorm_bwd(desc, t, T): rows split across threads ----
  {
    const f = new Fn('task_layernorm_bwd', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L = loadFields(f, d, LNORM_BWD);
    const [r, r0, r1, base, end, p, q, o, j, dw, db, rowBytes] = Array.from({ length: 12 }, () => f.local(I32));
    const [xh, g, gx, vm, vr, sa, sb, t0, t1] = Array.from({ length: 9 }, () => f.local(V128));
    const [mean, rstd, tmp, eps, a, cf] = Array.from({ length: 6 }, () => f.local(F32));
    f.get(d).f32load(LNORM_BWD.eps * 4).set(eps);
    f.get(L.rows).get(t).mul().get(T).divs().set(r0);
    f.get(L.rows).get(t).i32(1).add().mul().get(T).divs().set(r1);
    f.get(L.size).i32(4).mul().set(rowBytes);
    // This thread's partial dweight/dbias rows (zeroed by the host; accumulated over chunks).
    f.get(L.dwp).get(t).get(rowBytes).mul().add().set(dw);
    f.get(L.dbp).get(t).get(rowBytes).mul().add().set(db);
    // gx̂ = gy · w (w = 1 without weight), in local gx; j: byte offset within the row.
    const gxhat = () => {
      f.get(q).v128load().set(g);
      f.get(g).set(gx);
      f.if((h) => h.get(L.w), () => f.get(g).get(L.w).get(j).add().v128load().vmul().set(gx));
    };
    f.for(r, (h) => h.get(r0), (h) => h.get(r1), 1, () => {
      f.get(L.x).get(r).get(rowBytes).mul().add().set(base);
      f.get(base).get(rowBytes).add().set(end);
      emitStats(f, base, end, L.size, eps, mean, rstd, tmp, [xh, g, gx, t0], p);
      f.get(mean).vsplat().set(vm);
      f.get(rstd).vsplat().set(vr);
      f.f32(0).vsplat().set(sa);
      f.f32(0).vsplat().set(sb);
      f.i32(0).set(j);
      f.for(p, (h) => h.get(base), (h) => h.get(end), 16, () => {
        f.get(L.gy).get(p).get(L.x).sub().add().set(q);
        f.get(p).v128load().get(vm).vsub().get(vr).vmul().set(xh);
        gxhat();
        f.get(dw).get(j).add().set(o);
        f.get(o).get(o).v128load().get(g).get(xh).vmul().vadd().v128store();
        f.get(db).get(j).add().set(o);
        f.get(o).get(o).v128load().get(g).vadd().v128store();
        f.get(sa).get(gx).vadd().set(sa);
        f.get(sb).get(gx).get(xh).vmul().vadd().set(sb);
        f.get(j).i32(16).add().set(j);
      });
      hsum(f, sa).get(L.size).fconvi().fdiv().set(a);
      hsum(f, sb).get(L.size).fconvi().fdiv().set(cf);
      f.get(a).vsplat().set(t0);
      f.get(cf).vsplat().set(t1);
      f.i32(0).set(j);
      f.for(p, (h) => h.get(base), (h) => h.get(end), 16, () => {
        f.get(L.gy).get(p).get(L.x).sub().add().set(q);
        f.get(L.dx).get(p).get(L.x).sub().add().set(o);
        f.get(p).v128load().get(vm).vsub().get(vr).vmul().set(xh);
        gxhat();
        f.get(o).get(gx).get(t0).vsub().get(xh).get(t1).vmul().vsub().get(vr).vmul().v128store();
        f.get(j).i32(16).add().set(j);
      });
    });
    mod.add(f);
  }
}
