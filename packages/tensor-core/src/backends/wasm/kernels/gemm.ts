/**
 * GEMM, BLIS-style: B packed into kc×nc panels of nr-wide strips, A into mc×kc blocks of mr-high
 * strips, an mr×nr f32x4 register tile; edge tiles go through a scratch tile. `gemm` is one
 * thread's whole problem (also called by other kernels); `task_gemm` splits a batched GEMM across
 * threads.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import type { Expr } from '../emit.js';
import { field, min } from './module.js';
import type { KernelConfig, ModuleBuilder } from './module.js';

/** Rows or columns a GEMM slab keeps at least when the work is cut into more parts than threads. */
const SLAB_MIN = 256;

/** `task_gemm` descriptor field indices (i32 slots). */
/**
 * `task_gemm` descriptor field indices (i32 slots). `pb`: 0, or B already packed there for all
 * threads by `task_gemm_packb` (one batch matrix); the threads then split the rows of A and C.
 */
export const GEMM = { A: 0, rsA: 1, csA: 2, bsA: 3, B: 4, rsB: 5, csB: 6, bsB: 7, C: 8, ldc: 9, bsC: 10, M: 11, N: 12, K: 13, batch: 14, acc: 15, ws: 16, wsStride: 17, next: 18, pb: 19 } as const;

/**
 * Emits the GEMM family; returns `gemm(A, rsA, csA, B, rsB, csB, C, ldc, M, N, K, ws, acc, packed)`
 * and `packBAll(B, rsB, csB, K, N, dst)` for kernels that call them (attention packs an operand it
 * reuses across query blocks once, and passes it as `packed`).
 */
export function emitGemm(mod: ModuleBuilder): { gemm: Fn; packBAll: Fn } {
  const c = mod.config;
  const { mr: MR, nr: NR } = c;
  const NV = NR / 4;

  // ---- microkernel: C[MR×NR] (+)= Apanel[kc×MR]ᵀ · Bpanel[kc×NR] ----
  const micro = new Fn('micro', [I32, I32, I32, I32, I32, I32]);
  {
    const f = micro;
    const [a, b, cp, ldc, kc, ow] = [0, 1, 2, 3, 4, 5];
    const acc: number[][] = [];
    for (let i = 0; i < MR; i++) acc.push(Array.from({ length: NV }, () => f.local(V128)));
    const bv = Array.from({ length: NV }, () => f.local(V128));
    const av = f.local(V128);
    const aq = f.local(V128);
    const n = f.local(I32);
    for (let i = 0; i < MR; i++) for (let j = 0; j < NV; j++) f.f32(0).vsplat().set(acc[i][j]);
    const step = (u: number) => {
      for (let j = 0; j < NV; j++) f.get(b).v128load((u * NR + 4 * j) * 4).set(bv[j]);
      for (let i = 0; i < MR; i++) {
        if (c.splat === 'shuffle' && MR % 4 === 0) {
          if (i % 4 === 0) f.get(a).v128load((u * MR + i) * 4).set(aq);
          f.get(aq).get(aq).vbroadcastLane(i % 4).set(av);
        } else f.get(a).v128splat32((u * MR + i) * 4).set(av);
        for (let j = 0; j < NV; j++) {
          f.vmadd(c.relaxed, () => f.get(av), () => f.get(bv[j]), () => f.get(acc[i][j])).set(acc[i][j]);
        }
      }
    };
    const U = c.unroll;
    // Unrolled main loop.
    f.set(n, (g) => g.get(kc).i32(U).divs());
    f.block(() => {
      f.get(n).eqz().brIf(0);
      f.loop(() => {
        for (let u = 0; u < U; u++) step(u);
        f.get(a).i32(MR * 4 * U).add().set(a);
        f.get(b).i32(NR * 4 * U).add().set(b);
        f.get(n).i32(1).sub().tee(n).brIf(0);
      });
    });
    // Remainder.
    f.set(n, (g) => g.get(kc).i32(U).rems());
    f.block(() => {
      f.get(n).eqz().brIf(0);
      f.loop(() => {
        step(0);
        f.get(a).i32(MR * 4).add().set(a);
        f.get(b).i32(NR * 4).add().set(b);
        f.get(n).i32(1).sub().tee(n).brIf(0);
      });
    });
    f.get(ldc).i32(4).mul().set(ldc);
    f.if(
      (g) => g.get(ow),
      () => {
        for (let i = 0; i < MR; i++) {
          for (let j = 0; j < NV; j++) f.get(cp).get(acc[i][j]).v128store(16 * j);
          f.get(cp).get(ldc).add().set(cp);
        }
      },
      () => {
        for (let i = 0; i < MR; i++) {
          for (let j = 0; j < NV; j++) f.get(cp).get(cp).v128load(16 * j).get(acc[i][j]).vadd().v128store(16 * j);
          f.get(cp).get(ldc).add().set(cp);
        }
      },
    );
    mod.add(f);
  }

  // ---- packA(src, rs, cs, m, k, dst): MR-row panels, k-major, zero padded ----
  const packA2 = new Fn('packA', [I32, I32, I32, I32, I32, I32]);
  {
    const f = packA2;
    const [src, rs, cs, m, k, dst] = [0, 1, 2, 3, 4, 5];
    const ir = f.local(I32);
    const rows = f.local(I32);
    const p = f.local(I32);
    const kk = f.local(I32);
    const t1 = f.local(I32);
    const t2 = f.local(I32);
    const offs = Array.from({ length: MR }, () => f.local(I32));
    f.get(rs).i32(4).mul().set(rs);
    f.get(cs).i32(4).mul().set(cs);
    for (let i = 0; i < MR; i++) f.get(rs).i32(i).mul().set(offs[i]);
    f.for(ir, 0, (g) => g.get(m), MR, () => {
      min(f, (g) => g.get(m).get(ir).sub(), MR, t1, t2).set(rows);
      f.get(src).get(ir).get(rs).mul().add().set(p);
      f.if(
        (g) => g.get(rows).i32(MR).eq(),
        () => {
          f.for(kk, 0, (g) => g.get(k), 1, () => {
            for (let i = 0; i < MR; i++) f.get(dst).get(p).get(offs[i]).add().f32load().f32store(4 * i);
            f.get(p).get(cs).add().set(p);
            f.get(dst).i32(MR * 4).add().set(dst);
          });
        },
        () => {
          f.for(kk, 0, (g) => g.get(k), 1, () => {
            for (let i = 0; i < MR; i++) {
              f.if(
                (g) => g.get(rows).i32(i).gts(),
                () => f.get(dst).get(p).get(offs[i]).add().f32load().f32store(4 * i),
                () => f.get(dst).f32(0).f32store(4 * i),
              );
            }
            f.get(p).get(cs).add().set(p);
            f.get(dst).i32(MR * 4).add().set(dst);
          });
        },
      );
    });
    mod.add(f);
  }

  // ---- packB(src, rs, cs, k, n, dst): NR-column panels, k-major, zero padded ----
  const packB = new Fn('packB', [I32, I32, I32, I32, I32, I32]);
  {
    const f = packB;
    const [src, rs, cs, k, n, dst] = [0, 1, 2, 3, 4, 5];
    const jr = f.local(I32);
    const cols = f.local(I32);
    const p = f.local(I32);
    const kk = f.local(I32);
    const t1 = f.local(I32);
    const t2 = f.local(I32);
    const offs = Array.from({ length: NR }, () => f.local(I32));
    f.get(rs).i32(4).mul().set(rs);
    f.get(cs).i32(4).mul().set(cs);
    for (let j = 0; j < NR; j++) f.get(cs).i32(j).mul().set(offs[j]);
    f.for(jr, 0, (g) => g.get(n), NR, () => {
      min(f, (g) => g.get(n).get(jr).sub(), NR, t1, t2).set(cols);
      f.get(src).get(jr).get(cs).mul().add().set(p);
      f.if(
        (g) => g.get(cols).i32(NR).eq().get(cs).i32(4).eq().and(),
        () => {
          f.for(kk, 0, (g) => g.get(k), 1, () => {
            for (let v = 0; v < NV; v++) f.get(dst).get(p).v128load(16 * v).v128store(16 * v);
            f.get(p).get(rs).add().set(p);
            f.get(dst).i32(NR * 4).add().set(dst);
          });
        },
        () =>
          f.if(
            (g) => g.get(cols).i32(NR).eq(),
            // A whole strip of a strided (e.g. transposed) B: straight-line gathers, no per-element test.
            () => {
              f.for(kk, 0, (g) => g.get(k), 1, () => {
                for (let j = 0; j < NR; j++) f.get(dst).get(p).get(offs[j]).add().f32load().f32store(4 * j);
                f.get(p).get(rs).add().set(p);
                f.get(dst).i32(NR * 4).add().set(dst);
              });
            },
            // The ragged last strip: zero padded.
            () => {
              f.for(kk, 0, (g) => g.get(k), 1, () => {
                for (let j = 0; j < NR; j++) {
                  f.if(
                    (g) => g.get(cols).i32(j).gts(),
                    () => f.get(dst).get(p).get(offs[j]).add().f32load().f32store(4 * j),
                    () => f.get(dst).f32(0).f32store(4 * j),
                  );
                }
                f.get(p).get(rs).add().set(p);
                f.get(dst).i32(NR * 4).add().set(dst);
              });
            },
          ),
      );
    });
    mod.add(f);
  }

  // ---- macro(pa, pb, c, ldc, mc, nc, kc, ow, tmp) ----
  const macro2 = new Fn('macro', [I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  {
    const f = macro2;
    const [pa, pb, cp, ldc, mc, nc, kc, ow, tmp] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const jr = f.local(I32);
    const ir = f.local(I32);
    const mrr = f.local(I32);
    const nrr = f.local(I32);
    const i = f.local(I32);
    const j = f.local(I32);
    const t1 = f.local(I32);
    const t2 = f.local(I32);
    const cij = f.local(I32);
    const fv = f.local(F32);
    f.for(jr, 0, (g) => g.get(nc), NR, () => {
      min(f, (g) => g.get(nc).get(jr).sub(), NR, t1, t2).set(nrr);
      f.for(ir, 0, (g) => g.get(mc), MR, () => {
        min(f, (g) => g.get(mc).get(ir).sub(), MR, t1, t2).set(mrr);
        f.get(cp).get(ir).get(ldc).mul().get(jr).add().i32(4).mul().add().set(cij);
        f.if(
          (g) => g.get(mrr).i32(MR).eq().get(nrr).i32(NR).eq().and(),
          () => {
            f.get(pa).get(ir).get(kc).mul().i32(4).mul().add();
            f.get(pb).get(jr).get(kc).mul().i32(4).mul().add();
            f.get(cij).get(ldc).get(kc).get(ow).call(mod.index(micro));
          },
          () => {
            f.get(pa).get(ir).get(kc).mul().i32(4).mul().add();
            f.get(pb).get(jr).get(kc).mul().i32(4).mul().add();
            f.get(tmp).i32(NR).get(kc).i32(1).call(mod.index(micro));
            f.for(i, 0, (g) => g.get(mrr), 1, () => {
              f.for(j, 0, (g) => g.get(nrr), 1, () => {
                f.get(cij).get(i).get(ldc).mul().get(j).add().i32(4).mul().add().set(t1);
                f.get(tmp).get(i).i32(NR).mul().get(j).add().i32(4).mul().add().f32load().set(fv);
                f.if((g) => g.get(ow).eqz(), () => f.get(t1).f32load().get(fv).fadd().set(fv));
                f.get(t1).get(fv).f32store();
              });
            });
          },
        );
      });
    });
    mod.add(f);
  }

  // ---- gemm(A, rsA, csA, B, rsB, csB, C, ldc, M, N, K, ws, acc): one thread, whole problem ----
  const mcp = Math.ceil(c.mc / MR) * MR;
  const ncp = Math.ceil(c.nc / NR) * NR;
  const gemm = new Fn('gemm', [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  {
    const f = gemm;
    // packed: 0, or B already packed by packBAll (then B, rsB, csB are unused).
    const [A, rsA, csA, B, rsB, csB, C, ldc, M, N, K, ws, acc, packed] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const cursor = f.local(I32);
    const pbUse = f.local(I32);
    const jc = f.local(I32);
    const pc = f.local(I32);
    const ic = f.local(I32);
    const nc = f.local(I32);
    const kc = f.local(I32);
    const mc = f.local(I32);
    const pa = f.local(I32);
    const pb = f.local(I32);
    const tmp = f.local(I32);
    const t1 = f.local(I32);
    const t2 = f.local(I32);
    f.get(ws).set(pa);
    f.get(ws).i32(mcp * c.kc * 4).add().set(pb);
    f.get(pb).i32(c.kc * ncp * 4).add().set(tmp);
    // K == 0: C = 0 (or unchanged when accumulating).
    f.if(
      (g) => g.get(K).eqz(),
      () => {
        f.if(
          (g) => g.get(acc).eqz(),
          () => {
            f.for(ic, 0, (g) => g.get(M), 1, () => {
              f.get(C).get(ic).get(ldc).mul().i32(4).mul().add().i32(0).get(N).i32(4).mul().memfill();
            });
          },
        );
        f.ret();
      },
    );
    f.get(packed).set(cursor);
    f.for(jc, 0, (g) => g.get(N), c.nc, () => {
      min(f, (g) => g.get(N).get(jc).sub(), c.nc, t1, t2).set(nc);
      f.for(pc, 0, (g) => g.get(K), c.kc, () => {
        min(f, (g) => g.get(K).get(pc).sub(), c.kc, t1, t2).set(kc);
        f.if(
          (g) => g.get(packed),
          () => {
            // Prepacked panels follow each other in this loop's (jc, pc) order.
            f.get(cursor).set(pbUse);
            f.get(cursor).get(nc).i32(NR - 1).add().i32(NR).divs().i32(NR * 4).mul().get(kc).mul().add().set(cursor);
          },
          () => {
            f.get(B).get(pc).get(rsB).mul().get(jc).get(csB).mul().add().i32(4).mul().add();
            f.get(rsB).get(csB).get(kc).get(nc).get(pb).call(mod.index(packB));
            f.get(pb).set(pbUse);
          },
        );
        f.for(ic, 0, (g) => g.get(M), c.mc, () => {
          min(f, (g) => g.get(M).get(ic).sub(), c.mc, t1, t2).set(mc);
          f.get(A).get(ic).get(rsA).mul().get(pc).get(csA).mul().add().i32(4).mul().add();
          f.get(rsA).get(csA).get(mc).get(kc).get(pa).call(mod.index(packA2));
          f.get(pa).get(pbUse);
          f.get(C).get(ic).get(ldc).mul().get(jc).add().i32(4).mul().add();
          f.get(ldc).get(mc).get(nc).get(kc);
          f.get(pc).eqz().get(acc).eqz().and();
          f.get(tmp).call(mod.index(macro2));
        });
      });
    });
    mod.add(f);
  }

  // ---- packBAll(B, rsB, csB, K, N, dst): all of B's panels in gemm's (jc, pc) order, for gemm's `packed` ----
  const packBAll = new Fn('packBAll', [I32, I32, I32, I32, I32, I32]);
  {
    const f = packBAll;
    const [B, rsB, csB, K, N, dst] = [0, 1, 2, 3, 4, 5];
    const [jc, pc, nc, kc, t1, t2] = Array.from({ length: 6 }, () => f.local(I32));
    f.for(jc, 0, (g) => g.get(N), c.nc, () => {
      min(f, (g) => g.get(N).get(jc).sub(), c.nc, t1, t2).set(nc);
      f.for(pc, 0, (g) => g.get(K), c.kc, () => {
        min(f, (g) => g.get(K).get(pc).sub(), c.kc, t1, t2).set(kc);
        f.get(B).get(pc).get(rsB).mul().get(jc).get(csB).mul().add().i32(4).mul().add();
        f.get(rsB).get(csB).get(kc).get(nc).get(dst).call(mod.index(packB));
        f.get(dst).get(nc).i32(NR - 1).add().i32(NR).divs().i32(NR * 4).mul().get(kc).mul().add().set(dst);
      });
    });
    mod.add(f);
  }

  // ---- task_gemm(desc, t, T): batched, split across threads ----
  // Work is handed out in chunks through an atomic counter (descriptor field `next`, zeroed by the
  // caller): whole matrices when the batch covers the threads, else column (or row) slabs of about
  // 1/(T·chunks) of the output. A thread that is descheduled on a shared machine then costs its share
  // of one chunk, not its whole static share.
  {
    const f = new Fn('task_gemm', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const G = GEMM;
    const L: Record<string, number> = {};
    for (const key of Object.keys(G)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(G)) f.set(L[key], field(d, i));
    const b = f.local(I32);
    const lo = f.local(I32);
    const hi = f.local(I32);
    const blocks = f.local(I32);
    const per = f.local(I32);
    const chunk = f.local(I32);
    const count = f.local(I32);
    const ws = f.local(I32);
    const accb = f.local(I32);
    const [t1, t2] = [f.local(I32), f.local(I32)];
    f.get(L.ws).get(t).get(L.wsStride).mul().add().set(ws);
    const call = (mOff: Expr, nOff: Expr, mLen: Expr, nLen: Expr, packed: Expr = 0) => {
      // A + (b*bsA + mOff*rsA)*4, B + (b*bsB + nOff*csB)*4, C + (b*bsC + mOff*ldc + nOff)*4
      f.get(L.A).get(b).get(L.bsA).mul().e(mOff).get(L.rsA).mul().add().i32(4).mul().add();
      f.get(L.rsA).get(L.csA);
      f.get(L.B).get(b).get(L.bsB).mul().e(nOff).get(L.csB).mul().add().i32(4).mul().add();
      f.get(L.rsB).get(L.csB);
      f.get(L.C).get(b).get(L.bsC).mul().e(mOff).get(L.ldc).mul().add().e(nOff).add().i32(4).mul().add();
      f.get(L.ldc).e(mLen).e(nLen).get(L.K).get(ws).get(accb).e(packed).call(mod.index(gemm));
    };
    /** Runs `body` for each chunk index this thread claims, 0 <= chunk < count. */
    const claim = (body: () => void) => {
      f.block(() => {
        f.loop(() => {
          f.get(d).i32(1).atomicAdd(G.next * 4).tee(chunk).get(count).ges().brIf(1);
          body();
          f.br(0);
        });
      });
    };
    /** Slabs of `dim` (a multiple of `unit` wide, about dim/(T·chunks)); `run(lo, len)` does one. */
    const slabs = (dim: number, unit: number, run: (lo: Expr, len: Expr) => void, fixed = 0) => {
      f.get(dim).i32(unit - 1).add().i32(unit).divs().set(blocks);
      if (fixed) {
        // Slabs of `fixed` (nothing is re-packed per slab): as many parts as that makes.
        f.get(blocks).i32(fixed / unit - 1).add().i32(fixed / unit).divs().set(count);
        f.i32(fixed).set(per);
      } else {
      // Parts: T·chunks when every part still spans SLAB_MIN rows/columns, else T (each part
      // re-packs the other operand, which small products, e.g. Winograd's, cannot amortise).
      // One thread takes the whole problem in one part (chunks only balance load between threads).
      f.get(T).i32(c.chunks).mul().set(per);
      f.if((g) => g.get(blocks).get(per).i32(Math.ceil(SLAB_MIN / unit)).mul().lts().get(T).i32(1).eq().op(0x72), () => f.get(T).set(per));
      // Blocks per part: ceil(blocks / parts), at least 1.
      f.get(blocks).get(per).add().i32(1).sub().get(per).divs().set(per);
      f.get(per).get(per).eqz().add().set(per);
      f.get(blocks).get(per).add().i32(1).sub().get(per).divs().set(count);
      f.get(per).i32(unit).mul().set(per);
      }
      claim(() => {
        f.get(chunk).get(per).mul().set(lo);
        min(f, (g) => g.get(lo).get(per).add(), (g) => g.get(dim), t1, t2).set(hi);
        f.for(b, 0, (g) => g.get(L.batch), 1, () => {
          // Batches summed into one C (bsC == 0) accumulate after the first.
          f.get(L.acc).get(b).i32(0).gts().get(L.bsC).eqz().and().op(0x72).set(accb);
          run((g) => g.get(lo), (g) => g.get(hi).get(lo).sub());
        });
      });
    };
    f.if(
      (g) => g.get(L.batch).get(T).ges().get(L.bsC).i32(0).ne().and(),
      () => {
        // Whole matrices per chunk.
        f.get(L.batch).set(count);
        f.get(L.acc).set(accb);
        claim(() => {
          f.get(chunk).set(b);
          call(0, 0, (g) => g.get(L.M), (g) => g.get(L.N));
        });
      },
      () => {
        f.if(
          (g) => g.get(L.pb),
          // B packed once for everyone: row slabs of one mc block, each packing only its own rows
          // of A, so many small parts cost nothing and balance a descheduled thread.
          () => slabs(L.M, MR, (lo, len) => call(lo, 0, len, (g) => g.get(L.N), (g) => g.get(L.pb)), mcp),
          () =>
            f.if(
              (g) => g.get(L.N).get(L.M).ges(),
              () => slabs(L.N, NR, (lo, len) => call(0, lo, (g) => g.get(L.M), len)),
              () => slabs(L.M, MR, (lo, len) => call(lo, 0, len, (g) => g.get(L.N))),
            ),
        );
      },
    );
    mod.add(f);
  }

  // ---- task_gemm_packb(desc, t, T): B of a one-matrix task_gemm descriptor packed into `pb`, ----
  // in gemm's (jc, pc) panel order (as packBAll), the panels shared out between the threads.
  {
    const f = new Fn('task_gemm_packb', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const G = GEMM;
    const [B, rsB, csB, K, N, pb, nK, P, p, jc, pc, nc, kc, t1, t2] = Array.from({ length: 15 }, () => f.local(I32));
    f.set(B, field(d, G.B));
    f.set(rsB, field(d, G.rsB));
    f.set(csB, field(d, G.csB));
    f.set(K, field(d, G.K));
    f.set(N, field(d, G.N));
    f.set(pb, field(d, G.pb));
    f.get(K).i32(c.kc - 1).add().i32(c.kc).divs().set(nK);
    f.get(N).i32(c.nc - 1).add().i32(c.nc).divs().get(nK).mul().set(P);
    f.for(p, (g) => g.get(t), (g) => g.get(P), (g) => g.get(T), () => {
      f.get(p).get(nK).divs().i32(c.nc).mul().set(jc);
      f.get(p).get(nK).rems().i32(c.kc).mul().set(pc);
      min(f, (g) => g.get(N).get(jc).sub(), c.nc, t1, t2).set(nc);
      min(f, (g) => g.get(K).get(pc).sub(), c.kc, t1, t2).set(kc);
      f.get(B).get(pc).get(rsB).mul().get(jc).get(csB).mul().add().i32(4).mul().add();
      f.get(rsB).get(csB).get(kc).get(nc);
      // Earlier column blocks are whole (ncp wide, all of K); then this block's earlier panels.
      f.get(pb).get(jc).i32(c.nc).divs().i32(ncp).mul().get(K).mul();
      f.get(nc).i32(NR - 1).add().i32(NR).divs().i32(NR).mul().get(pc).mul().add().i32(4).mul().add();
      f.call(mod.index(packB));
    });
    mod.add(f);
  }
  return { gemm, packBAll };
}

/** Bytes `packBAll` writes for a K×N operand (each nc-wide block rounded up to whole NR strips). */
export function packedBBytes(c: KernelConfig, K: number, N: number): number {
  let cols = 0;
  for (let jc = 0; jc < N; jc += c.nc) cols += Math.ceil(Math.min(c.nc, N - jc) / c.nr) * c.nr;
  return cols * K * 4;
}
