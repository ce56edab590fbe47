/**
 * Row softmax in SIMD (max, polynomial exp, normalise), with optional scale, additive mask and
 * causal cut-off so attention can call it on a block of scores.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import { emitExp } from './exp.js';
import { field } from './module.js';
import type { ModuleBuilder } from './module.js';

export const SOFTMAX = { S: 0, rows: 1, n: 2, ld: 3 } as const;

/** Emits the softmax family; returns `softmaxRows(S, rows, n, ld, scale, mask, causalRow0)`. */
export function emitSoftmax(mod: ModuleBuilder): Fn {
  const c = mod.config;
  // ---- softmaxRows(S, rows, n, ld, scale, mask, causalRow0): in place, ld % 4 == 0 ----
  const softmaxRows = new Fn('softmaxRows', [I32, I32, I32, I32, F32, I32, I32]);
  {
    const f = softmaxRows;
    const [S, rows, n, ld, scale, mask, causal0] = [0, 1, 2, 3, 4, 5, 6];
    const [r, jj, row, mrow, lim] = Array.from({ length: 5 }, () => f.local(I32));
    const vs = f.local(V128);
    const vm = f.local(V128);
    const vsum = f.local(V128);
    const x = f.local(V128);
    const nf = f.local(V128);
    const mx = f.local(F32);
    const inv = f.local(F32);
    f.get(scale).vsplat().set(vs);
    f.for(r, 0, (g) => g.get(rows), 1, () => {
      f.get(S).get(r).get(ld).mul().i32(4).mul().add().set(row);
      f.get(mask).get(r).get(n).mul().i32(4).mul().add().set(mrow);
      f.if((g) => g.get(mask).i32(0).ne().get(scale).f32(1).op(0x5c).op(0x72), () => {
      // scale (+ mask) over the n real columns: 4 at a time, then the rest (skipped for scale 1, no mask).
      f.get(n).i32(-4).and().set(lim);
      f.if(
        (g) => g.get(mask),
        () =>
          f.for(jj, 0, (g) => g.get(lim), 4, () => {
            f.get(row).get(jj).i32(4).mul().add();
            f.get(row).get(jj).i32(4).mul().add().v128load().get(vs).vmul();
            f.get(mrow).get(jj).i32(4).mul().add().v128load().vadd().v128store();
          }),
        () =>
          f.for(jj, 0, (g) => g.get(lim), 4, () => {
            f.get(row).get(jj).i32(4).mul().add();
            f.get(row).get(jj).i32(4).mul().add().v128load().get(vs).vmul().v128store();
          }),
      );
      f.for(jj, (g) => g.get(lim), (g) => g.get(n), 1, () => {
        f.get(row).get(jj).i32(4).mul().add().f32load().get(scale).fmul().set(mx);
        f.if((g) => g.get(mask), () => f.get(mrow).get(jj).i32(4).mul().add().f32load().get(mx).fadd().set(mx));
        f.get(row).get(jj).i32(4).mul().add().get(mx).f32store();
      });
      });
      // causal: columns j > causal0 + r are -inf; padding columns [n, ld) too.
      f.get(n).set(lim);
      f.if((g) => g.get(causal0).i32(0).ges(), () => {
        f.get(causal0).get(r).add().i32(1).add().set(lim);
        f.if((g) => g.get(lim).get(n).gts(), () => f.get(n).set(lim));
      });
      f.for(jj, (g) => g.get(lim), (g) => g.get(ld), 1, () => f.get(row).get(jj).i32(4).mul().add().f32(-Infinity).f32store());
      // max
      f.f32(-Infinity).vsplat().set(vm);
      f.for(jj, 0, (g) => g.get(ld), 4, () => f.get(vm).get(row).get(jj).i32(4).mul().add().v128load().vmax().set(vm));
      f.get(vm).vextract(0).get(vm).vextract(1).fmax().get(vm).vextract(2).fmax().get(vm).vextract(3).fmax().set(mx);
      f.get(mx).vsplat().set(vm);
      f.f32(0).vsplat().set(vsum);
      f.for(jj, 0, (g) => g.get(ld), 4, () => {
        f.get(row).get(jj).i32(4).mul().add().v128load().get(vm).vsub().set(x);
        emitExp(f, x, nf, c.relaxed);
        f.get(row).get(jj).i32(4).mul().add().get(x).v128store();
        f.get(vsum).get(x).vadd().set(vsum);
      });
      f.f32(1).get(vsum).vextract(0).get(vsum).vextract(1).fadd().get(vsum).vextract(2).fadd().get(vsum).vextract(3).fadd().fdiv().set(inv);
      f.get(inv).vsplat().set(vm);
      f.for(jj, 0, (g) => g.get(ld), 4, () => {
        f.get(row).get(jj).i32(4).mul().add().get(row).get(jj).i32(4).mul().add().v128load().get(vm).vmul().v128store();
      });
    });
    mod.add(f);
  }

  // ---- task_softmax(desc, t, T): rows split across threads ----
  {
    const f = new Fn('task_softmax', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const [S, rows, n, ld, r0, r1] = Array.from({ length: 6 }, () => f.local(I32));
    f.set(S, field(d, SOFTMAX.S)).set(rows, field(d, SOFTMAX.rows)).set(n, field(d, SOFTMAX.n)).set(ld, field(d, SOFTMAX.ld));
    f.get(rows).get(t).mul().get(T).divs().set(r0);
    f.get(rows).get(t).i32(1).add().mul().get(T).divs().set(r1);
    f.get(S).get(r0).get(ld).mul().i32(4).mul().add();
    f.get(r1).get(r0).sub().get(n).get(ld).f32(1).i32(0).i32(-1).call(mod.index(softmaxRows));
    mod.add(f);
  }
  return softmaxRows;
}
