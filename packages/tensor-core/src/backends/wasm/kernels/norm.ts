/**
 * groupNorm (+SiLU) and layerNorm forward, in place in scratch: SIMD statistics per unit (image ×
 * group, or row), then the fused affine (and SiLU).
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { emitExp } from './exp.js';
import { field } from './module.js';
import type { ModuleBuilder } from './module.js';

/** x holds `units` (image, group) units starting at global unit `first` (the host streams x in chunks of units). */
export const GNORM = { x: 0, units: 1, C: 2, spatial: 3, groups: 4, w: 5, b: 6, eps: 7, silu: 8, first: 9 } as const;
export const LNORM = { x: 0, rows: 1, size: 2, w: 3, b: 4, eps: 5 } as const;

/**
 * mean and rstd of the f32s in [base, end) (`n` of them) in one pass over x − x₀ (x₀ the first
 * element, a shift that keeps the variance well conditioned). Clobbers the v128 locals in `v`
 * and the f32 local `tmp`; `p` is the loop pointer.
 */
export function emitStats(f: Fn, base: number, end: number, n: number, eps: number, mean: number, rstd: number, tmp: number, v: number[], p: number): void {
  const [s1, s2, x0, xv] = v;
  f.get(base).v128splat32().set(x0);
  f.f32(0).vsplat().set(s1);
  f.f32(0).vsplat().set(s2);
  f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
    f.get(p).v128load().get(x0).vsub().set(xv);
    f.get(s1).get(xv).vadd().set(s1);
    f.get(s2).get(xv).get(xv).vmul().vadd().set(s2);
  });
  hsum(f, s1).get(n).fconvi().fdiv().set(tmp);
  f.get(x0).vextract(0).get(tmp).fadd().set(mean);
  f.f32(1);
  hsum(f, s2).get(n).fconvi().fdiv().get(tmp).get(tmp).fmul().fsub().f32(0).fmax().get(eps).fadd().fsqrt();
  f.fdiv().set(rstd);
}

/** The sum of the four lanes of v128 local `v`, left on the stack. */
export const hsum = (f: Fn, v: number): Fn => f.get(v).vextract(0).get(v).vextract(1).fadd().get(v).vextract(2).fadd().get(v).vextract(3).fadd();

export function emitNorm(mod: ModuleBuilder): void {
  const c = mod.config;
  // ---- task_groupnorm(desc, t, T): in place, (n, group) units split across threads; spatial % 4 == 0 ----
  {
    const f = new Fn('task_groupnorm', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(GNORM)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(GNORM)) f.set(L[key], field(d, i));
    const [u, u0, u1, units, cg, base, size, p, end, cc, ch] = Array.from({ length: 11 }, () => f.local(I32));
    const [acc, x, e, vsc, vsh] = Array.from({ length: 5 }, () => f.local(V128));
    const [mean, rstd, sc, sh, eps] = Array.from({ length: 5 }, () => f.local(F32));
    f.get(d).f32load(GNORM.eps * 4).set(eps);
    f.get(L.C).get(L.groups).divs().set(cg);
    f.get(L.units).set(units);
    f.get(units).get(t).mul().get(T).divs().set(u0);
    f.get(units).get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.get(cg).get(L.spatial).mul().set(size);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      // unit u = n * groups + g  ->  its elements start at u * size
      f.get(L.x).get(u).get(size).mul().i32(4).mul().add().set(base);
      f.get(base).get(size).i32(4).mul().add().set(end);
      emitStats(f, base, end, size, eps, mean, rstd, sc, [acc, vsh, e, x], p);
      f.get(base).set(p);
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        f.get(u).get(L.first).add().get(L.groups).rems().get(cg).mul().get(cc).add().set(ch);
        f.get(rstd).set(sc);
        f.if((g) => g.get(L.w), () => f.get(L.w).get(ch).i32(4).mul().add().f32load().get(sc).fmul().set(sc));
        f.f32(0).get(mean).get(sc).fmul().fsub().set(sh);
        f.if((g) => g.get(L.b), () => f.get(L.b).get(ch).i32(4).mul().add().f32load().get(sh).fadd().set(sh));
        f.get(sc).vsplat().set(vsc);
        f.get(sh).vsplat().set(vsh);
        f.get(p).get(L.spatial).i32(4).mul().add().set(end);
        f.if(
          (g) => g.get(L.silu),
          () => {
            f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
              f.get(p).v128load().get(vsc).vmul().get(vsh).vadd().set(x);
              f.f32(0).vsplat().get(x).vsub().set(e);
              emitExp(f, e, acc, c.relaxed);
              f.get(p).get(x).f32(1).vsplat().get(e).vadd().vdiv().v128store();
            });
          },
          () => {
            f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
              f.get(p).get(p).v128load().get(vsc).vmul().get(vsh).vadd().v128store();
            });
          },
        );
        f.get(end).set(p);
      });
    });
    mod.add(f);
  }

  // ---- task_layernorm(desc, t, T): in place over rows of `size` (size % 4 == 0), rows split across threads ----
  {
    const f = new Fn('task_layernorm', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(LNORM)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(LNORM)) f.set(L[key], field(d, i));
    const [r, r0, r1, base, end, p, o] = Array.from({ length: 7 }, () => f.local(I32));
    const [acc, x, vm, vr] = Array.from({ length: 4 }, () => f.local(V128));
    const [mean, rstd, eps] = Array.from({ length: 3 }, () => f.local(F32));
    f.get(d).f32load(LNORM.eps * 4).set(eps);
    f.get(L.rows).get(t).mul().get(T).divs().set(r0);
    f.get(L.rows).get(t).i32(1).add().mul().get(T).divs().set(r1);
    f.for(r, (g) => g.get(r0), (g) => g.get(r1), 1, () => {
      f.get(L.x).get(r).get(L.size).mul().i32(4).mul().add().set(base);
      f.get(base).get(L.size).i32(4).mul().add().set(end);
      f.f32(0).vsplat().set(acc);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => f.get(acc).get(p).v128load().vadd().set(acc));
      hsum(f, acc).get(L.size).fconvi().fdiv().set(mean);
      f.get(mean).vsplat().set(vm);
      f.f32(0).vsplat().set(acc);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
        f.get(p).v128load().get(vm).vsub().set(x);
        f.get(acc).get(x).get(x).vmul().vadd().set(acc);
      });
      f.f32(1);
      hsum(f, acc).get(L.size).fconvi().fdiv().get(eps).fadd().fsqrt();
      f.fdiv().set(rstd);
      f.get(rstd).vsplat().set(vr);
      f.i32(0).set(o);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
        f.get(p).v128load().get(vm).vsub().get(vr).vmul().set(x);
        f.if((g) => g.get(L.w), () => f.get(x).get(L.w).get(o).add().v128load().vmul().set(x));
        f.if((g) => g.get(L.b), () => f.get(x).get(L.b).get(o).add().v128load().vadd().set(x));
        f.get(p).get(x).v128store();
        f.get(o).i32(16).add().set(o);
      });
    });
    mod.add(f);
  }
}
