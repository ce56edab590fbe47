/**
 * groupNorm (+SiLU) and layerNorm forward, x → y. groupNorm works unit by unit (image × group):
 * SIMD statistics in one pass, then the fused affine (and SiLU) while the unit is still in cache.
 * layerNorm pipelines rows (`pipelineRows`). Threads claim units
 * (groupNorm) or blocks of rows (layerNorm) from an atomic counter in the descriptor, so a thread
 * that the machine deschedules delays a unit, not half the tensor.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import type { Expr } from '../emit.js';
import { LogisticExp } from './logistic.js';
import { field } from './module.js';
import type { ModuleBuilder } from './module.js';

/**
 * x → y: `units` (image, group) units starting at global unit `first` (the host streams x in chunks
 * of units); `next` is the claim counter (the host writes 0).
 */
export const GNORM = { x: 0, y: 1, units: 2, C: 3, spatial: 4, groups: 5, w: 6, b: 7, eps: 8, silu: 9, first: 10, next: 11 } as const;
/**
 * x → y [rows, size], rows from global row `first` (a chunk); where `stats` (a byte address) is not
 * 0, each row's mean and 1/std go to f32 stats[2·row], stats[2·row + 1] for the backward (as
 * PyTorch's forward saves them); `next` is the claim counter (the host writes 0).
 */
export const LNORM = { x: 0, y: 1, rows: 2, size: 3, w: 4, b: 5, eps: 6, stats: 7, first: 8, next: 9 } as const;

/** Rows a layerNorm thread claims at once and pipelines (`pipelineRows`): only the first is read alone. */
const LN_ROWS = 32;

/** Loads every field of `desc` into a fresh i32 local. */
export function loadFields(f: Fn, d: number, desc: Record<string, number>): Record<string, number> {
  const L: Record<string, number> = {};
  for (const key of Object.keys(desc)) L[key] = f.local(I32);
  for (const [key, i] of Object.entries(desc)) f.set(L[key], field(d, i));
  return L;
}

/**
 * Runs `body` for each block [lo, hi) of `count` items this thread claims, `step` at a time, from
 * the i32 counter at descriptor field `next` (zeroed by the host before the dispatch).
 */
export function claimBlocks(f: Fn, d: number, next: number, count: number, step: Expr, lo: number, hi: number, body: () => void): void {
  f.block(() => {
    f.loop(() => {
      f.get(d).e(step).atomicAdd(next * 4).tee(lo).get(count).ges().brIf(1);
      f.get(lo).e(step).add().set(hi);
      f.if(
        (g) => g.get(hi).get(count).gts(),
        () => f.get(count).set(hi),
      );
      body();
      f.br(0);
    });
  });
}

/** `emit(true)` where i32 local `flag` is not 0, else `emit(false)`: one kernel variant per flag. */
export const branch = (f: Fn, flag: number, emit: (on: boolean) => void): void => {
  f.if(
    (g) => g.get(flag),
    () => emit(true),
    () => emit(false),
  );
};

/** a·b + c of three v128 locals, left on the stack (relaxed FMA, or mul + add). */
export const madd = (f: Fn, relaxed: boolean, a: number, b: number, c: number): Fn =>
  relaxed ? f.get(a).get(b).get(c).simd(0x105) : f.get(a).get(b).vmul().get(c).vadd();

/**
 * `for (j = 0; j < bytes; j += 16) …` over vectors, `U` per iteration: `prelude()` sets the
 * iteration's pointers from byte offset `j` once, then `body(off)` handles the vector `off` bytes
 * past them (a constant memarg offset, so the U vectors share one address computation and one
 * loop test), and `end()` closes the iteration; the last (bytes / 16) % U vectors run one per
 * iteration. `lim` is a scratch i32.
 */
export function vecLoop(
  f: Fn,
  j: number,
  bytes: Expr,
  lim: number,
  U: number,
  prelude: () => void,
  body: (off: number) => void,
  end?: () => void,
): void {
  f.e(bytes).i32(-16 * U).and().set(lim);
  f.for(j, 0, (g) => g.get(lim), 16 * U, () => {
    prelude();
    for (let k = 0; k < U; k++) body(16 * k);
    end?.();
  });
  if (U > 1)
    f.for(j, (g) => g.get(lim), bytes, 16, () => {
      prelude();
      body(0);
      end?.();
    });
}

/** The sum of the four lanes of v128 local `v`, left on the stack. */
export const hsum = (f: Fn, v: number): Fn => f.get(v).vextract(0).get(v).vextract(1).fadd().get(v).vextract(2).fadd().get(v).vextract(3).fadd();

/** Independent (Σd, Σd²) accumulator pairs of `emitStats`: an FMA's latency (4 cycles) hides behind 4 vectors. */
const STATS_PAIRS = 4;

/** Locals `emitStats` works in. */
export interface StatsLocals {
  /** i32: loop offset, pointer and bound. */
  j: number;
  p: number;
  lim: number;
  /** v128: the accumulator pairs, the shift and a loaded vector. */
  acc: [number, number][];
  x0: number;
  xv: number;
  /** f32 scratch. */
  tmp: number;
}

/** The locals `emitStats` needs, fresh in `f`. */
export function statsLocals(f: Fn): StatsLocals {
  const [j, p, lim] = [f.local(I32), f.local(I32), f.local(I32)];
  const acc = Array.from({ length: STATS_PAIRS }, () => [f.local(V128), f.local(V128)] as [number, number]);
  return { j, p, lim, acc, x0: f.local(V128), xv: f.local(V128), tmp: f.local(F32) };
}

/**
 * mean and rstd = 1/√(var + eps) of the `n` f32s from byte address `base` (n % 4 == 0), in one
 * pass over d = x − x₀ (x₀ the first element: a shift that keeps Σd² − (Σd)²/n well conditioned)
 * with independent accumulator pairs, so the adds do not wait on each other.
 */
export function emitStats(f: Fn, relaxed: boolean, base: number, n: number, eps: number, mean: number, rstd: number, s: StatsLocals): void {
  const { j, p, lim, acc, x0, xv, tmp } = s;
  f.get(base).v128splat32().set(x0);
  for (const [s1, s2] of acc) {
    f.f32(0).vsplat().set(s1);
    f.f32(0).vsplat().set(s2);
  }
  vecLoop(
    f,
    j,
    (g) => g.get(n).i32(4).mul(),
    lim,
    STATS_PAIRS,
    () => f.get(base).get(j).add().set(p),
    (off) => {
      const [s1, s2] = acc[off / 16];
      f.get(p).v128load(off).get(x0).vsub().set(xv);
      f.get(s1).get(xv).vadd().set(s1);
      madd(f, relaxed, xv, xv, s2).set(s2);
    },
  );
  const [s1, s2] = acc[0];
  for (const [a1, a2] of acc.slice(1)) {
    f.get(s1).get(a1).vadd().set(s1);
    f.get(s2).get(a2).vadd().set(s2);
  }
  shiftedStats(f, s1, s2, x0, (g) => g.get(n).fconvi(), eps, tmp, mean, rstd);
}

/**
 * From v128 sums Σd and Σd² of n values d = x − x₀ (x₀ in lane 0 of `x0`): mo = mean − x₀, the
 * mean, and rstd = 1/√(max(Σd²/n − mo², 0) + eps). `n` pushes an f32; the rest are locals.
 */
export function shiftedStats(f: Fn, s1: number, s2: number, x0: number, n: Expr, eps: number, mo: number, mean: number, rstd: number): void {
  hsum(f, s1).e(n).fdiv().set(mo);
  f.get(x0).vextract(0).get(mo).fadd().set(mean);
  f.f32(1);
  hsum(f, s2).e(n).fdiv().get(mo).get(mo).fmul().fsub().f32(0).fmax().get(eps).fadd().fsqrt();
  f.fdiv().set(rstd);
}

/** The steps of `pipelineRows`, emitted by the kernel that pipelines. */
export interface RowPipeline {
  /** Starts the sums of row `row`. */
  start(row: Expr): void;
  /** One loop: sums the started row (`next`) and/or writes the current one (`cur`). */
  pass(next: boolean, cur: boolean): void;
  /** Turns the started row's sums into its constants. */
  finish(): void;
  /** Makes the last finished row, local `r`, current: its constants into vectors, its pointers. */
  current(): void;
}

/**
 * The layerNorm kernels' row pipeline over rows [r0, r1) (loop variable `r`): one loop sums row
 * r + 1 from memory while it writes row r from L1, so memory is busy for the whole kernel rather
 * than in bursts between passes that only compute; only the first row is summed alone.
 */
export function pipelineRows(f: Fn, r: number, r0: number, r1: number, p: RowPipeline): void {
  p.start((g) => g.get(r0));
  p.pass(true, false);
  p.finish();
  f.for(r, (g) => g.get(r0), (g) => g.get(r1), 1, () => {
    p.current();
    f.if(
      (g) => g.get(r).i32(1).add().get(r1).lts(),
      () => {
        p.start((g) => g.get(r).i32(1).add());
        p.pass(true, true);
        p.finish();
      },
      () => p.pass(false, true),
    );
  });
}

export function emitNorm(mod: ModuleBuilder): void {
  const relaxed = mod.config.relaxed;
  // ---- task_groupnorm(desc, t, T): x → y; threads claim (image, group) units; spatial % 4 == 0 ----
  {
    const f = new Fn('task_groupnorm', [I32, I32, I32]);
    const d = 0;
    const L = loadFields(f, d, GNORM);
    const [u, u1, cg, size, base, p, end, cc, ch, dy] = Array.from({ length: 10 }, () => f.local(I32));
    const [a, e, t, r, vsc, vsh] = Array.from({ length: 6 }, () => f.local(V128));
    const [mean, rstd, sc, sh, eps] = Array.from({ length: 5 }, () => f.local(F32));
    const st = statsLocals(f);
    const ex = new LogisticExp(f, relaxed);
    f.get(d).f32load(GNORM.eps * 4).set(eps);
    f.get(L.C).get(L.groups).divs().set(cg);
    f.get(cg).get(L.spatial).mul().set(size);
    // y's element i lies dy bytes after x's.
    f.get(L.y).get(L.x).sub().set(dy);
    claimBlocks(f, d, GNORM.next, L.units, 1, u, u1, () => {
      // unit u = n·groups + g: its elements start at u·size
      f.get(L.x).get(u).get(size).mul().i32(4).mul().add().set(base);
      emitStats(f, relaxed, base, size, eps, mean, rstd, st);
      f.get(base).set(p);
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        f.get(u).get(L.first).add().get(L.groups).rems().get(cg).mul().get(cc).add().set(ch);
        f.get(rstd).set(sc);
        f.if(
          (g) => g.get(L.w),
          () => f.get(L.w).get(ch).i32(4).mul().add().f32load().get(sc).fmul().set(sc),
        );
        f.f32(0).get(mean).get(sc).fmul().fsub().set(sh);
        f.if(
          (g) => g.get(L.b),
          () => f.get(L.b).get(ch).i32(4).mul().add().f32load().get(sh).fadd().set(sh),
        );
        f.get(p).get(L.spatial).i32(4).mul().add().set(end);
        f.if(
          (g) => g.get(L.silu),
          () => {
            // a = −z = x·(−sc) − sh;  silu(z) = z / (1 + e^−z) = a / (−1 − e^a)
            f.f32(0).get(sc).fsub().vsplat().set(vsc);
            f.f32(0).get(sh).fsub().vsplat().set(vsh);
            f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
              f.get(p).v128load().set(t);
              madd(f, relaxed, t, vsc, vsh).set(a);
              ex.emit(a, e, t, r);
              f.get(p).get(dy).add().get(a).get(ex.negOne).get(e).vsub().vdiv().v128store();
            });
          },
          () => {
            f.get(sc).vsplat().set(vsc);
            f.get(sh).vsplat().set(vsh);
            f.for(p, (g) => g.get(p), (g) => g.get(end), 16, () => {
              f.get(p).v128load().set(t);
              f.get(p).get(dy).add();
              madd(f, relaxed, t, vsc, vsh).v128store();
            });
          },
        );
        f.get(end).set(p);
      });
    });
    mod.add(f);
  }

  // ---- task_layernorm(desc, t, T): x → y over rows of `size` (size % 4 == 0); threads claim blocks of rows ----
  {
    const f = new Fn('task_layernorm', [I32, I32, I32]);
    const d = 0;
    const L = loadFields(f, d, LNORM);
    const [r, r0, r1, j, lim, rowBytes, xn, xc, yc, pxn, px, py, pw, pb, rn, sp] = Array.from({ length: 16 }, () => f.local(I32));
    const [dv, y, shift, vm, vr] = Array.from({ length: 5 }, () => f.local(V128));
    // Two (Σd, Σd²) pairs, alternating between vectors, so the adds do not wait on each other.
    const sums = [0, 1].map(() => [f.local(V128), f.local(V128)]);
    const [n, mo, eps, cm, cr] = Array.from({ length: 5 }, () => f.local(F32));
    f.get(d).f32load(LNORM.eps * 4).set(eps);
    f.get(L.size).i32(4).mul().set(rowBytes);
    f.get(L.size).fconvi().set(n);
    // Row r's statistics go to sp + 8r.
    f.get(L.stats).get(L.first).i32(8).mul().add().set(sp);
    /** One loop: `next` sums the next row, `cur` writes y = (x − mean)·rstd (· w) (+ b) of the current one. */
    const pass = (next: boolean, cur: boolean, w: boolean, b: boolean) =>
      vecLoop(
        f,
        j,
        (g) => g.get(rowBytes),
        lim,
        4,
        () => {
          if (next) f.get(xn).get(j).add().set(pxn);
          if (cur) {
            f.get(xc).get(j).add().set(px);
            f.get(yc).get(j).add().set(py);
            if (w) f.get(L.w).get(j).add().set(pw);
            if (b) f.get(L.b).get(j).add().set(pb);
          }
        },
        (off) => {
          if (next) {
            const [s1, s2] = sums[(off / 16) % 2];
            f.get(pxn).v128load(off).get(shift).vsub().set(dv);
            f.get(s1).get(dv).vadd().set(s1);
            madd(f, relaxed, dv, dv, s2).set(s2);
          }
          if (cur) {
            f.get(py);
            f.get(px).v128load(off).get(vm).vsub().get(vr).vmul().set(y);
            if (w && b) {
              if (relaxed) f.get(y).get(pw).v128load(off).get(pb).v128load(off).simd(0x105);
              else f.get(y).get(pw).v128load(off).vmul().get(pb).v128load(off).vadd();
            } else if (w) f.get(y).get(pw).v128load(off).vmul();
            else if (b) f.get(y).get(pb).v128load(off).vadd();
            else f.get(y);
            f.v128store(off);
          }
        },
      );
    /** The current-row loop for the op's affine variant (the next row's sums need none). */
    const variants = (next: boolean, cur: boolean) => {
      if (!cur) {
        pass(next, false, false, false);
        return;
      }
      branch(f, L.w, (w) => branch(f, L.b, (b) => pass(next, true, w, b)));
    };
    claimBlocks(f, d, LNORM.next, L.rows, LN_ROWS, r0, r1, () =>
      pipelineRows(f, r, r0, r1, {
        // Sums over d = x − x₀, x₀ the row's first element: a shift that keeps Σd² − (Σd)²/n well conditioned.
        start: (row) => {
          f.e(row).set(rn);
          f.get(L.x).get(rn).get(rowBytes).mul().add().set(xn);
          f.get(xn).v128splat32().set(shift);
          for (const v of sums.flat()) f.f32(0).vsplat().set(v);
        },
        pass: variants,
        finish: () => {
          const [[s1, s2], [t1, t2]] = sums;
          f.get(s1).get(t1).vadd().set(s1);
          f.get(s2).get(t2).vadd().set(s2);
          shiftedStats(f, s1, s2, shift, (g) => g.get(n), eps, mo, cm, cr);
          f.if(
            (g) => g.get(L.stats),
            () => {
              f.get(sp).get(rn).i32(8).mul().add().set(j);
              f.get(j).get(cm).f32store(0);
              f.get(j).get(cr).f32store(4);
            },
          );
        },
        current: () => {
          f.get(cm).vsplat().set(vm);
          f.get(cr).vsplat().set(vr);
          f.get(r).get(rowBytes).mul().set(j);
          f.get(L.x).get(j).add().set(xc);
          f.get(L.y).get(j).add().set(yc);
        },
      }),
    );
    mod.add(f);
  }
}
