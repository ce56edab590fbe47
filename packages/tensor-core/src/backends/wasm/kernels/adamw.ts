/** The fused AdamW update: one SIMD pass over p, g, m, v. */
import { Fn, I32, V128 } from '../emit.js';
import { field } from './module.js';
import { claimBlocks } from './norm.js';
import type { ModuleBuilder } from './module.js';

/** p, g, m, v: `n` f32s each (n % 4 == 0); `next` is the claim counter (the host writes 0). */
export const ADAMW = { p: 0, g: 1, m: 2, v: 3, n: 4, decay: 5, b1: 6, c1: 7, b2: 8, c2: 9, stepSize: 10, invBc2: 11, eps: 12, next: 13 } as const;

/** Elements a thread claims at a time (16 KiB of each array). */
const CLAIM = 4096;

export function emitAdamw(mod: ModuleBuilder): void {
  // ---- task_adamw(desc, t, T): in place on p, m, v; threads claim blocks of CLAIM elements ----
  {
    const f = new Fn('task_adamw', [I32, I32, I32]);
    const d = 0;
    const [n, i0, i1, o, e] = Array.from({ length: 5 }, () => f.local(I32));
    const P = Array.from({ length: 4 }, () => f.local(I32));
    const H: Record<string, number> = {};
    for (const key of ['decay', 'b1', 'c1', 'b2', 'c2', 'stepSize', 'invBc2', 'eps'] as const) {
      H[key] = f.local(V128);
      f.get(d).f32load(ADAMW[key] * 4).vsplat().set(H[key]);
    }
    const [g, m, v] = Array.from({ length: 3 }, () => f.local(V128));
    ['p', 'g', 'm', 'v'].forEach((key, j) => f.set(P[j], field(d, ADAMW[key as 'p'])));
    f.set(n, field(d, ADAMW.n));
    claimBlocks(f, d, ADAMW.next, n, CLAIM, i0, i1, () => {
      f.get(i1).i32(4).mul().set(e);
      f.for(o, (q) => q.get(i0).i32(4).mul(), (q) => q.get(e), 16, () => {
        f.get(P[1]).get(o).add().v128load().set(g);
        f.get(H.b1).get(P[2]).get(o).add().v128load().vmul().get(H.c1).get(g).vmul().vadd().set(m);
        f.get(H.b2).get(P[3]).get(o).add().v128load().vmul().get(H.c2).get(g).vmul().get(g).vmul().vadd().set(v);
        f.get(P[2]).get(o).add().get(m).v128store();
        f.get(P[3]).get(o).add().get(v).v128store();
        // p = p*decay - stepSize*m / (sqrt(v*invBc2) + eps)
        f.get(P[0]).get(o).add();
        f.get(P[0]).get(o).add().v128load().get(H.decay).vmul();
        f.get(H.stepSize).get(m).vmul().get(v).get(H.invBc2).vmul().vsqrt().get(H.eps).vadd().vdiv();
        f.vsub().v128store();
      });
    });
    mod.add(f);
  }
}
