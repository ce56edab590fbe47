/** Large elementwise ops in SIMD: add/sub/mul/div and the transcendental unary ops. */
import { Fn, I32, V128 } from '../emit.js';
import { emitExp } from './exp.js';
import { field } from './module.js';
import type { ModuleBuilder } from './module.js';

/** Elementwise unary, out ← op(a) (out may be a): op 0 exp, 1 sigmoid, 2 silu, 3 tanh, 4 gelu (erf), 5 gelu (tanh), 6 erf. */
export const UN = { op: 0, a: 1, n: 2, out: 3 } as const;
export const UNARY_CODES = { exp: 0, sigmoid: 1, silu: 2, tanh: 3, gelu: 4, geluTanh: 5, erf: 6 } as const;
/**
 * Elementwise binary, out ← a op b (out may be a): op 0 add, 1 sub, 2 mul, 3 div; mode 0: b same
 * size, 1: b scalar, 2: one b per row of D.
 */
export const BIN = { op: 0, a: 1, b: 2, n: 3, mode: 4, D: 5, out: 6 } as const;

export function emitElementwise(mod: ModuleBuilder): void {
  const c = mod.config;
  // ---- task_binary(desc, t, T): out ← a op b, n % 4 == 0 (and D % 4 == 0 in row mode) ----
  {
    const f = new Fn('task_binary', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(BIN)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(BIN)) f.set(L[key], field(d, i));
    const [i0, i1, o, e, bo, rowEnd, od] = Array.from({ length: 7 }, () => f.local(I32));
    const vb = f.local(V128);
    // o walks a; out's element lies od bytes after a's.
    f.get(L.out).get(L.a).sub().set(od);
    // Split in whole rows (row mode) or 4-element groups.
    const unit = f.local(I32);
    f.if((g) => g.get(L.mode).i32(2).eq(), () => f.get(L.D).set(unit), () => f.i32(4).set(unit));
    f.get(L.n).get(unit).divs().get(t).mul().get(T).divs().get(unit).mul().set(i0);
    f.get(L.n).get(unit).divs().get(t).i32(1).add().mul().get(T).divs().get(unit).mul().set(i1);
    const ops: [number, () => void][] = [
      [0, () => f.vadd()],
      [1, () => f.vsub()],
      [2, () => f.vmul()],
      [3, () => f.vdiv()],
    ];
    for (const [code, emitOp] of ops) {
      f.if((g) => g.get(L.op).i32(code).eq(), () => {
        f.get(L.a).get(i1).i32(4).mul().add().set(e);
        f.if(
          (g) => g.get(L.mode).eqz(),
          () => {
            f.get(L.b).get(L.a).sub().set(bo);
            f.for(o, (g) => g.get(L.a).get(i0).i32(4).mul().add(), (g) => g.get(e), 16, () => {
              f.get(o).get(od).add().get(o).v128load().get(o).get(bo).add().v128load();
              emitOp();
              f.v128store();
            });
          },
          () =>
            f.if(
              (g) => g.get(L.mode).i32(1).eq(),
              () => {
                f.get(L.b).v128splat32().set(vb);
                f.for(o, (g) => g.get(L.a).get(i0).i32(4).mul().add(), (g) => g.get(e), 16, () => {
                  f.get(o).get(od).add().get(o).v128load().get(vb);
                  emitOp();
                  f.v128store();
                });
              },
              () => {
                // row mode: b[row] for each run of D elements
                f.get(L.a).get(i0).i32(4).mul().add().set(o);
                f.get(L.b).get(i0).get(L.D).divs().i32(4).mul().add().set(bo);
                f.block(() => {
                  f.get(o).get(e).ges().brIf(0);
                  f.loop(() => {
                    f.get(bo).v128splat32().set(vb);
                    f.get(o).get(L.D).i32(4).mul().add().set(rowEnd);
                    f.loop(() => {
                      f.get(o).get(od).add().get(o).v128load().get(vb);
                      emitOp();
                      f.v128store();
                      f.get(o).i32(16).add().tee(o).get(rowEnd).lts().brIf(0);
                    });
                    f.get(bo).i32(4).add().set(bo);
                    f.get(o).get(e).lts().brIf(0);
                  });
                });
              },
            ),
        );
      });
    }
    mod.add(f);
  }

  // ---- task_unary(desc, t, T): out ← op(a), transcendental elementwise ops, n % 4 == 0 ----
  {
    const f = new Fn('task_unary', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const [op, a, n, i0, i1, o, e, od] = Array.from({ length: 8 }, () => f.local(I32));
    const [x, y, z, s, w] = Array.from({ length: 5 }, () => f.local(V128));
    const k = (v: number) => (g: Fn) => g.f32(v).vsplat();
    f.set(op, field(d, UN.op)).set(a, field(d, UN.a)).set(n, field(d, UN.n));
    f.e(field(d, UN.out)).get(a).sub().set(od);
    f.get(n).i32(2).shr_s().get(t).mul().get(T).divs().i32(4).mul().set(i0);
    f.get(n).i32(2).shr_s().get(t).i32(1).add().mul().get(T).divs().i32(4).mul().set(i1);
    f.get(a).get(i1).i32(4).mul().add().set(e);
    // 1 / (1 + exp(-v)) for v in local y, result in y (uses z, s).
    const sigmoidOf = () => {
      f.e(k(0)).get(y).vsub().set(z);
      emitExp(f, z, s, c.relaxed);
      f.e(k(1)).e(k(1)).get(z).vadd().vdiv().set(y);
    };
    // tanh(v) = 1 - 2 / (exp(2v) + 1) for v in y, result in y.
    const tanhOf = () => {
      f.get(y).get(y).vadd().set(z);
      emitExp(f, z, s, c.relaxed);
      f.e(k(1)).e(k(2)).get(z).e(k(1)).vadd().vdiv().vsub().set(y);
    };
    // y ← erf(w) for w ≥ 0 (uses z, s).
    const erfAbs = () => {
      f.e(k(1)).e(k(1)).e(k(0.3275911)).get(w).vmul().vadd().vdiv().set(y); // t
      f.e(k(1.061405429)).get(y).vmul().e(k(-1.453152027)).vadd();
      f.get(y).vmul().e(k(1.421413741)).vadd();
      f.get(y).vmul().e(k(-0.284496736)).vadd();
      f.get(y).vmul().e(k(0.254829592)).vadd();
      f.get(y).vmul().set(y); // poly(t)
      f.e(k(0)).get(w).get(w).vmul().vsub().set(z);
      emitExp(f, z, s, c.relaxed);
      f.e(k(1)).get(y).get(z).vmul().vsub().set(y);
    };
    const body: Record<number, () => void> = {
      0: () => {
        f.get(x).set(y);
        emitExp(f, y, s, c.relaxed);
      },
      1: () => {
        f.get(x).set(y);
        sigmoidOf();
      },
      2: () => {
        f.get(x).set(y);
        sigmoidOf();
        f.get(x).get(y).vmul().set(y);
      },
      3: () => {
        f.get(x).set(y);
        tanhOf();
      },
      4: () => {
        // erf(|x|/√2) by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), sign restored, then 0.5 x (1 + erf).
        f.get(x).vabs().e(k(Math.SQRT1_2)).vmul().set(w);
        erfAbs();
        f.get(x).i32(-2147483648).visplat().vand().get(y).vor().set(y); // copysign
        f.e(k(0.5)).get(x).vmul().e(k(1)).get(y).vadd().vmul().set(y);
      },
      6: () => {
        f.get(x).vabs().set(w);
        erfAbs();
        f.get(x).i32(-2147483648).visplat().vand().get(y).vor().set(y);
      },
      5: () => {
        // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
        f.get(x).get(x).vmul().get(x).vmul().e(k(0.044715)).vmul().get(x).vadd().e(k(Math.sqrt(2 / Math.PI))).vmul().set(y);
        tanhOf();
        f.e(k(0.5)).get(x).vmul().e(k(1)).get(y).vadd().vmul().set(y);
      },
    };
    for (const [code, emitBody] of Object.entries(body)) {
      f.if((g) => g.get(op).i32(Number(code)).eq(), () => {
        f.for(o, (g) => g.get(a).get(i0).i32(4).mul().add(), (g) => g.get(e), 16, () => {
          f.get(o).v128load().set(x);
          emitBody();
          f.get(o).get(od).add().get(y).v128store();
        });
      });
    }
    mod.add(f);
  }
}
