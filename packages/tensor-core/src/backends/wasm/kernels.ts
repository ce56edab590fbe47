/**
 * The compute kernels of the wasm backend, described once here and emitted as WebAssembly at
 * load time (see `emit.ts`). All pointers are byte addresses into the one shared memory; strides
 * count f32 elements. Every exported `task_*` function takes `(desc, t, T)`: a descriptor of
 * i32 fields in memory, this thread's index and the thread count, and does its share of the work.
 */
import { F32, Fn, I32, V128, assemble } from './emit.js';
import type { Expr } from './emit.js';
import { WINOGRAD_TASKS, winogradFns } from './winograd.js';

export interface KernelConfig {
  relaxed: boolean;
  mr: number;
  nr: number;
  kc: number;
  mc: number;
  nc: number;
  /** k-loop unroll of the microkernel. */
  unroll: number;
  /** How A values are broadcast: a load-splat per row, or one load and lane shuffles (mr % 4 == 0). */
  splat?: 'load' | 'shuffle';
}

export const DEFAULT_CONFIG: Omit<KernelConfig, 'relaxed'> = { mr: 4, nr: 8, kc: 256, mc: 96, nc: 1024, unroll: 1, splat: 'load' };

/** Per-thread GEMM workspace: packed A block, packed B panel, an edge tile. */
export function gemmWorkspaceBytes(c: KernelConfig): number {
  const mcp = Math.ceil(c.mc / c.mr) * c.mr;
  const ncp = Math.ceil(c.nc / c.nr) * c.nr;
  return (mcp * c.kc + c.kc * ncp + c.mr * c.nr) * 4 + 256;
}

/** Descriptor field indices (i32 slots). */
export const GEMM = { A: 0, rsA: 1, csA: 2, bsA: 3, B: 4, rsB: 5, csB: 6, bsB: 7, C: 8, ldc: 9, bsC: 10, M: 11, N: 12, K: 13, batch: 14, acc: 15, ws: 16, wsStride: 17 } as const;
export const IM2COL = { x: 0, C: 1, H: 2, W: 3, kh: 4, kw: 5, sh: 6, sw: 7, ph: 8, pw: 9, dh: 10, dw: 11, Wo: 12, oh0: 13, oh1: 14, col: 15 } as const;
export const ATTN = { Q: 0, K: 1, V: 2, O: 3, mask: 4, B: 5, Lq: 6, Lk: 7, E: 8, Ev: 9, causal: 10, scale: 11, ws: 12, wsStride: 13, bq: 14, ldS: 15 } as const;

export const SOFTMAX = { S: 0, rows: 1, n: 2, ld: 3 } as const;
export const GNORM = { x: 0, N: 1, C: 2, spatial: 3, groups: 4, w: 5, b: 6, eps: 7, silu: 8 } as const;
export const LNORM = { x: 0, rows: 1, size: 2, w: 3, b: 4, eps: 5 } as const;
export const ADAMW = { p: 0, g: 1, m: 2, v: 3, n: 4, decay: 5, b1: 6, c1: 7, b2: 8, c2: 9, stepSize: 10, invBc2: 11, eps: 12 } as const;
export const TASKS = ['task_gemm', 'task_im2col', 'task_col2im', 'task_attention', 'task_softmax', 'task_groupnorm', 'task_layernorm', 'task_adamw', 'task_binary', 'task_unary', ...WINOGRAD_TASKS] as const;
/** Elementwise unary in place: op 0 exp, 1 sigmoid, 2 silu, 3 tanh, 4 gelu (erf), 5 gelu (tanh), 6 erf. */
export const UN = { op: 0, a: 1, n: 2 } as const;
export const UNARY_CODES = { exp: 0, sigmoid: 1, silu: 2, tanh: 3, gelu: 4, geluTanh: 5, erf: 6 } as const;
/** Elementwise binary: op 0 add, 1 sub, 2 mul, 3 div; mode 0: b same size, 1: b scalar, 2: one b per row of D. */
export const BIN = { op: 0, a: 1, b: 2, n: 3, mode: 4, D: 5 } as const;
export type TaskName = (typeof TASKS)[number];

/** Loads descriptor field `i` (an i32) of the descriptor in local `d`. */
const field = (d: number, i: number): Expr => (f) => f.get(d).i32load(i * 4);
const min = (f: Fn, a: Expr, b: Expr, tmpA: number, tmpB: number): Fn =>
  f.set(tmpA, a).set(tmpB, b).get(tmpA).get(tmpB).get(tmpA).get(tmpB).lts().select();

export function buildModule(c: KernelConfig, memory: { initial: number; maximum: number; shared: boolean }): Uint8Array {
  const { mr: MR, nr: NR } = c;
  EXP_FMA.relaxed = c.relaxed;
  const NV = NR / 4;
  const fns: Fn[] = [];
  const idx = (f: Fn): number => fns.indexOf(f);

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
    fns.push(f);
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
    fns.push(f);
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
      );
    });
    fns.push(f);
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
            f.get(cij).get(ldc).get(kc).get(ow).call(idx(micro));
          },
          () => {
            f.get(pa).get(ir).get(kc).mul().i32(4).mul().add();
            f.get(pb).get(jr).get(kc).mul().i32(4).mul().add();
            f.get(tmp).i32(NR).get(kc).i32(1).call(idx(micro));
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
    fns.push(f);
  }

  // ---- gemm(A, rsA, csA, B, rsB, csB, C, ldc, M, N, K, ws, acc): one thread, whole problem ----
  const mcp = Math.ceil(c.mc / MR) * MR;
  const ncp = Math.ceil(c.nc / NR) * NR;
  const gemm = new Fn('gemm', [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  {
    const f = gemm;
    const [A, rsA, csA, B, rsB, csB, C, ldc, M, N, K, ws, acc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
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
    f.for(jc, 0, (g) => g.get(N), c.nc, () => {
      min(f, (g) => g.get(N).get(jc).sub(), c.nc, t1, t2).set(nc);
      f.for(pc, 0, (g) => g.get(K), c.kc, () => {
        min(f, (g) => g.get(K).get(pc).sub(), c.kc, t1, t2).set(kc);
        f.get(B).get(pc).get(rsB).mul().get(jc).get(csB).mul().add().i32(4).mul().add();
        f.get(rsB).get(csB).get(kc).get(nc).get(pb).call(idx(packB));
        f.for(ic, 0, (g) => g.get(M), c.mc, () => {
          min(f, (g) => g.get(M).get(ic).sub(), c.mc, t1, t2).set(mc);
          f.get(A).get(ic).get(rsA).mul().get(pc).get(csA).mul().add().i32(4).mul().add();
          f.get(rsA).get(csA).get(mc).get(kc).get(pa).call(idx(packA2));
          f.get(pa).get(pb);
          f.get(C).get(ic).get(ldc).mul().get(jc).add().i32(4).mul().add();
          f.get(ldc).get(mc).get(nc).get(kc);
          f.get(pc).eqz().get(acc).eqz().and();
          f.get(tmp).call(idx(macro2));
        });
      });
    });
    fns.push(f);
  }

  // ---- task_gemm(desc, t, T): batched, split across threads ----
  {
    const f = new Fn('task_gemm', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const G = GEMM;
    const L: Record<string, number> = {};
    for (const key of Object.keys(G)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(G)) f.set(L[key], field(d, i));
    const b = f.local(I32);
    const b0 = f.local(I32);
    const b1 = f.local(I32);
    const lo = f.local(I32);
    const hi = f.local(I32);
    const blocks = f.local(I32);
    const ws = f.local(I32);
    const accb = f.local(I32);
    f.get(L.ws).get(t).get(L.wsStride).mul().add().set(ws);
    const call = (mOff: Expr, nOff: Expr, mLen: Expr, nLen: Expr) => {
      // A + (b*bsA + mOff*rsA)*4, B + (b*bsB + nOff*csB)*4, C + (b*bsC + mOff*ldc + nOff)*4
      f.get(L.A).get(b).get(L.bsA).mul().e(mOff).get(L.rsA).mul().add().i32(4).mul().add();
      f.get(L.rsA).get(L.csA);
      f.get(L.B).get(b).get(L.bsB).mul().e(nOff).get(L.csB).mul().add().i32(4).mul().add();
      f.get(L.rsB).get(L.csB);
      f.get(L.C).get(b).get(L.bsC).mul().e(mOff).get(L.ldc).mul().add().e(nOff).add().i32(4).mul().add();
      f.get(L.ldc).e(mLen).e(nLen).get(L.K).get(ws).get(accb).call(idx(gemm));
    };
    f.if(
      (g) => g.get(L.batch).get(T).ges().get(L.bsC).i32(0).ne().and(),
      () => {
        // Whole matrices per thread.
        f.get(L.batch).get(t).mul().get(T).divs().set(b0);
        f.get(L.batch).get(t).i32(1).add().mul().get(T).divs().set(b1);
        f.get(L.acc).set(accb);
        f.for(b, (g) => g.get(b0), (g) => g.get(b1), 1, () => call(0, 0, (g) => g.get(L.M), (g) => g.get(L.N)));
      },
      () => {
        f.if(
          (g) => g.get(L.N).get(L.M).ges(),
          () => {
            f.get(L.N).i32(NR - 1).add().i32(NR).divs().set(blocks);
            f.get(blocks).get(t).mul().get(T).divs().i32(NR).mul().set(lo);
            f.get(blocks).get(t).i32(1).add().mul().get(T).divs().i32(NR).mul().set(hi);
            min(f, (g) => g.get(hi), (g) => g.get(L.N), b0, b1).set(hi);
            f.if(
              (g) => g.get(hi).get(lo).gts(),
              () => {
                f.for(b, 0, (g) => g.get(L.batch), 1, () => {
                  f.get(L.acc).get(b).i32(0).gts().get(L.bsC).eqz().and().op(0x72).set(accb);
                  call(0, (g) => g.get(lo), (g) => g.get(L.M), (g) => g.get(hi).get(lo).sub());
                });
              },
            );
          },
          () => {
            f.get(L.M).i32(MR - 1).add().i32(MR).divs().set(blocks);
            f.get(blocks).get(t).mul().get(T).divs().i32(MR).mul().set(lo);
            f.get(blocks).get(t).i32(1).add().mul().get(T).divs().i32(MR).mul().set(hi);
            min(f, (g) => g.get(hi), (g) => g.get(L.M), b0, b1).set(hi);
            f.if(
              (g) => g.get(hi).get(lo).gts(),
              () => {
                f.for(b, 0, (g) => g.get(L.batch), 1, () => {
                  f.get(L.acc).get(b).i32(0).gts().get(L.bsC).eqz().and().op(0x72).set(accb);
                  call((g) => g.get(lo), 0, (g) => g.get(hi).get(lo).sub(), (g) => g.get(L.N));
                });
              },
            );
          },
        );
      },
    );
    fns.push(f);
  }

  // ---- task_im2col(desc, t, T): rows (c, i, j) of col[C*kh*kw, (oh1-oh0)*Wo], split by rows ----
  {
    const f = new Fn('task_im2col', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(IM2COL)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(IM2COL)) f.set(L[key], field(d, i));
    const [r, r0, r1, cc, i, j, oh, ow, ih, iw, dst, srcRow, lo, hi, rowsN, t1, t2, P] = Array.from({ length: 18 }, () => f.local(I32));
    f.get(L.oh1).get(L.oh0).sub().get(L.Wo).mul().set(P);
    f.get(L.C).get(L.kh).mul().get(L.kw).mul().set(rowsN);
    f.get(rowsN).get(t).mul().get(T).divs().set(r0);
    f.get(rowsN).get(t).i32(1).add().mul().get(T).divs().set(r1);
    f.for(r, (g) => g.get(r0), (g) => g.get(r1), 1, () => {
      f.get(r).get(L.kw).rems().set(j);
      f.get(r).get(L.kw).divs().get(L.kh).rems().set(i);
      f.get(r).get(L.kw).get(L.kh).mul().divs().set(cc);
      f.get(L.col).get(r).get(P).mul().i32(4).mul().add().set(dst);
      // valid ow range for stride-1 rows: iw = ow*sw - pw + j*dw in [0, W)
      f.for(oh, (g) => g.get(L.oh0), (g) => g.get(L.oh1), 1, () => {
        f.get(oh).get(L.sh).mul().get(L.ph).sub().get(i).get(L.dh).mul().add().set(ih);
        f.if(
          (g) => g.get(ih).i32(0).lts().get(ih).get(L.H).ges().op(0x72),
          () => f.get(dst).i32(0).get(L.Wo).i32(4).mul().memfill(),
          () => {
            f.get(L.x).get(cc).get(L.H).mul().get(ih).add().get(L.W).mul().i32(4).mul().add().set(srcRow);
            f.if(
              (g) => g.get(L.sw).i32(1).eq(),
              () => {
                // iw = ow + off, off = j*dw - pw; lo = max(0, -off), hi = min(Wo, W - off)
                f.get(j).get(L.dw).mul().get(L.pw).sub().set(t1);
                f.i32(0).i32(0).get(t1).sub().tee(lo).get(lo).i32(0).lts().select().set(lo);
                min(f, (g) => g.get(L.Wo), (g) => g.get(L.W).get(t1).sub(), t2, hi).set(hi);
                f.if((g) => g.get(hi).get(lo).lts(), () => f.get(lo).set(hi));
                min(f, (g) => g.get(lo), (g) => g.get(L.Wo), t2, iw).set(lo);
                f.get(dst).i32(0).get(lo).i32(4).mul().memfill();
                f.get(dst).get(lo).i32(4).mul().add().get(srcRow).get(lo).get(t1).add().i32(4).mul().add().get(hi).get(lo).sub().i32(4).mul().memcopy();
                f.get(dst).get(hi).i32(4).mul().add().i32(0).get(L.Wo).get(hi).sub().i32(4).mul().memfill();
              },
              () => {
                f.for(ow, 0, (g) => g.get(L.Wo), 1, () => {
                  f.get(ow).get(L.sw).mul().get(L.pw).sub().get(j).get(L.dw).mul().add().set(iw);
                  f.if(
                    (g) => g.get(iw).i32(0).lts().get(iw).get(L.W).ges().op(0x72),
                    () => f.get(dst).get(ow).i32(4).mul().add().f32(0).f32store(),
                    () => f.get(dst).get(ow).i32(4).mul().add().get(srcRow).get(iw).i32(4).mul().add().f32load().f32store(),
                  );
                });
              },
            );
          },
        );
        f.get(dst).get(L.Wo).i32(4).mul().add().set(dst);
      });
    });
    fns.push(f);
  }

  // ---- task_col2im(desc, t, T): x[c] += col rows of channel c (x pre-zeroed), split by channel ----
  {
    const f = new Fn('task_col2im', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(IM2COL)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(IM2COL)) f.set(L[key], field(d, i));
    const [cc, c0, c1, i, j, oh, ow, ih, iw, src, dstRow, P, r, a] = Array.from({ length: 14 }, () => f.local(I32));
    f.get(L.oh1).get(L.oh0).sub().get(L.Wo).mul().set(P);
    f.get(L.C).get(t).mul().get(T).divs().set(c0);
    f.get(L.C).get(t).i32(1).add().mul().get(T).divs().set(c1);
    f.for(cc, (g) => g.get(c0), (g) => g.get(c1), 1, () => {
      f.for(i, 0, (g) => g.get(L.kh), 1, () => {
        f.for(j, 0, (g) => g.get(L.kw), 1, () => {
          f.get(cc).get(L.kh).mul().get(i).add().get(L.kw).mul().get(j).add().set(r);
          f.get(L.col).get(r).get(P).mul().i32(4).mul().add().set(src);
          f.for(oh, (g) => g.get(L.oh0), (g) => g.get(L.oh1), 1, () => {
            f.get(oh).get(L.sh).mul().get(L.ph).sub().get(i).get(L.dh).mul().add().set(ih);
            f.if(
              (g) => g.get(ih).i32(0).ges().get(ih).get(L.H).lts().and(),
              () => {
                f.get(L.x).get(cc).get(L.H).mul().get(ih).add().get(L.W).mul().i32(4).mul().add().set(dstRow);
                f.for(ow, 0, (g) => g.get(L.Wo), 1, () => {
                  f.get(ow).get(L.sw).mul().get(L.pw).sub().get(j).get(L.dw).mul().add().set(iw);
                  f.if(
                    (g) => g.get(iw).i32(0).ges().get(iw).get(L.W).lts().and(),
                    () => {
                      f.get(dstRow).get(iw).i32(4).mul().add().set(a);
                      f.get(a).get(a).f32load().get(src).get(ow).i32(4).mul().add().f32load().fadd().f32store();
                    },
                  );
                });
              },
            );
            f.get(src).get(L.Wo).i32(4).mul().add().set(src);
          });
        });
      });
    });
    fns.push(f);
  }

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
        emitExp(f, x, nf);
        f.get(row).get(jj).i32(4).mul().add().get(x).v128store();
        f.get(vsum).get(x).vadd().set(vsum);
      });
      f.f32(1).get(vsum).vextract(0).get(vsum).vextract(1).fadd().get(vsum).vextract(2).fadd().get(vsum).vextract(3).fadd().fdiv().set(inv);
      f.get(inv).vsplat().set(vm);
      f.for(jj, 0, (g) => g.get(ld), 4, () => {
        f.get(row).get(jj).i32(4).mul().add().get(row).get(jj).i32(4).mul().add().v128load().get(vm).vmul().v128store();
      });
    });
    fns.push(f);
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
    f.get(r1).get(r0).sub().get(n).get(ld).f32(1).i32(0).i32(-1).call(idx(softmaxRows));
    fns.push(f);
  }

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
    const hsum = (v: number) => f.get(v).vextract(0).get(v).vextract(1).fadd().get(v).vextract(2).fadd().get(v).vextract(3).fadd();
    f.get(d).f32load(GNORM.eps * 4).set(eps);
    f.get(L.C).get(L.groups).divs().set(cg);
    f.get(L.N).get(L.groups).mul().set(units);
    f.get(units).get(t).mul().get(T).divs().set(u0);
    f.get(units).get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.get(cg).get(L.spatial).mul().set(size);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      // unit u = n * groups + g  ->  its elements start at u * size
      f.get(L.x).get(u).get(size).mul().i32(4).mul().add().set(base);
      f.get(base).get(size).i32(4).mul().add().set(end);
      // One pass over x - x0 (x0: the group's first element, a shift that keeps the variance
      // well conditioned): S1 = Σ(x - x0) in acc, S2 = Σ(x - x0)² in vsh.
      f.get(base).v128splat32().set(e);
      f.f32(0).vsplat().set(acc);
      f.f32(0).vsplat().set(vsh);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
        f.get(p).v128load().get(e).vsub().set(x);
        f.get(acc).get(x).vadd().set(acc);
        f.get(vsh).get(x).get(x).vmul().vadd().set(vsh);
      });
      hsum(acc).get(size).fconvi().fdiv().set(sc); // mean of the shifted values
      f.get(e).vextract(0).get(sc).fadd().set(mean);
      f.f32(1);
      hsum(vsh).get(size).fconvi().fdiv().get(sc).get(sc).fmul().fsub().f32(0).fmax().get(eps).fadd().fsqrt();
      f.fdiv().set(rstd);
      f.get(base).set(p);
      f.for(cc, 0, (g) => g.get(cg), 1, () => {
        f.get(u).get(L.groups).rems().get(cg).mul().get(cc).add().set(ch);
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
              emitExp(f, e, acc);
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
    fns.push(f);
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
    const hsum = (v: number) => f.get(v).vextract(0).get(v).vextract(1).fadd().get(v).vextract(2).fadd().get(v).vextract(3).fadd();
    f.get(d).f32load(LNORM.eps * 4).set(eps);
    f.get(L.rows).get(t).mul().get(T).divs().set(r0);
    f.get(L.rows).get(t).i32(1).add().mul().get(T).divs().set(r1);
    f.for(r, (g) => g.get(r0), (g) => g.get(r1), 1, () => {
      f.get(L.x).get(r).get(L.size).mul().i32(4).mul().add().set(base);
      f.get(base).get(L.size).i32(4).mul().add().set(end);
      f.f32(0).vsplat().set(acc);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => f.get(acc).get(p).v128load().vadd().set(acc));
      hsum(acc).get(L.size).fconvi().fdiv().set(mean);
      f.get(mean).vsplat().set(vm);
      f.f32(0).vsplat().set(acc);
      f.for(p, (g) => g.get(base), (g) => g.get(end), 16, () => {
        f.get(p).v128load().get(vm).vsub().set(x);
        f.get(acc).get(x).get(x).vmul().vadd().set(acc);
      });
      f.f32(1);
      hsum(acc).get(L.size).fconvi().fdiv().get(eps).fadd().fsqrt();
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
    fns.push(f);
  }

  // ---- task_adamw(desc, t, T): in place on p, m, v (n % 4 == 0), split across threads ----
  {
    const f = new Fn('task_adamw', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
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
    f.get(n).i32(2).shr_s().get(t).mul().get(T).divs().i32(4).mul().set(i0);
    f.get(n).i32(2).shr_s().get(t).i32(1).add().mul().get(T).divs().i32(4).mul().set(i1);
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
    fns.push(f);
  }

  // ---- task_binary(desc, t, T): a ← a op b in place, n % 4 == 0 (and D % 4 == 0 in row mode) ----
  {
    const f = new Fn('task_binary', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(BIN)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(BIN)) f.set(L[key], field(d, i));
    const [i0, i1, o, e, bo, rowEnd] = Array.from({ length: 6 }, () => f.local(I32));
    const vb = f.local(V128);
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
              f.get(o).get(o).v128load().get(o).get(bo).add().v128load();
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
                  f.get(o).get(o).v128load().get(vb);
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
                      f.get(o).get(o).v128load().get(vb);
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
    fns.push(f);
  }

  // ---- task_unary(desc, t, T): transcendental elementwise ops in place, n % 4 == 0 ----
  {
    const f = new Fn('task_unary', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const [op, a, n, i0, i1, o, e] = Array.from({ length: 7 }, () => f.local(I32));
    const [x, y, z, s, w] = Array.from({ length: 5 }, () => f.local(V128));
    const k = (v: number) => (g: Fn) => g.f32(v).vsplat();
    f.set(op, field(d, UN.op)).set(a, field(d, UN.a)).set(n, field(d, UN.n));
    f.get(n).i32(2).shr_s().get(t).mul().get(T).divs().i32(4).mul().set(i0);
    f.get(n).i32(2).shr_s().get(t).i32(1).add().mul().get(T).divs().i32(4).mul().set(i1);
    f.get(a).get(i1).i32(4).mul().add().set(e);
    // 1 / (1 + exp(-v)) for v in local y, result in y (uses z, s).
    const sigmoidOf = () => {
      f.e(k(0)).get(y).vsub().set(z);
      emitExp(f, z, s);
      f.e(k(1)).e(k(1)).get(z).vadd().vdiv().set(y);
    };
    // tanh(v) = 1 - 2 / (exp(2v) + 1) for v in y, result in y.
    const tanhOf = () => {
      f.get(y).get(y).vadd().set(z);
      emitExp(f, z, s);
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
      emitExp(f, z, s);
      f.e(k(1)).get(y).get(z).vmul().vsub().set(y);
    };
    const body: Record<number, () => void> = {
      0: () => {
        f.get(x).set(y);
        emitExp(f, y, s);
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
          f.get(o).get(y).v128store();
        });
      });
    }
    fns.push(f);
  }

  // ---- task_attention(desc, t, T): (batch, query block) units split across threads ----
  {
    const f = new Fn('task_attention', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const L: Record<string, number> = {};
    for (const key of Object.keys(ATTN)) L[key] = f.local(I32);
    for (const [key, i] of Object.entries(ATTN)) f.set(L[key], field(d, i));
    const [u, u0, u1, units, nqb, b, i0, rows, ws, S, t1, t2, maskp] = Array.from({ length: 13 }, () => f.local(I32));
    const scale = f.local(F32);
    f.get(d).f32load(ATTN.scale * 4).set(scale);
    f.get(L.Lq).get(L.bq).add().i32(1).sub().get(L.bq).divs().set(nqb);
    f.get(L.B).get(nqb).mul().set(units);
    f.get(units).get(t).mul().get(T).divs().set(u0);
    f.get(units).get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.get(L.ws).get(t).get(L.wsStride).mul().add().set(ws);
    f.get(ws).i32(gemmWorkspaceBytes(c)).add().set(S);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      f.get(u).get(nqb).divs().set(b);
      f.get(u).get(nqb).rems().get(L.bq).mul().set(i0);
      min(f, (g) => g.get(L.bq), (g) => g.get(L.Lq).get(i0).sub(), t1, t2).set(rows);
      // S = Q[b, i0:i0+rows] · K[b]ᵀ
      f.get(L.Q).get(b).get(L.Lq).mul().get(i0).add().get(L.E).mul().i32(4).mul().add();
      f.get(L.E).i32(1);
      // K is staged transposed, [B, E, Lk]
      f.get(L.K).get(b).get(L.Lk).mul().get(L.E).mul().i32(4).mul().add();
      f.get(L.Lk).i32(1);
      f.get(S).get(L.ldS).get(rows).get(L.Lk).get(L.E).get(ws).i32(0).call(idx(gemm));
      f.i32(0).set(maskp);
      f.if((g) => g.get(L.mask), () => f.get(L.mask).get(b).get(L.Lq).mul().get(i0).add().get(L.Lk).mul().i32(4).mul().add().set(maskp));
      f.get(S).get(rows).get(L.Lk).get(L.ldS).get(scale).get(maskp);
      // causal0 = causal ? i0 : -1
      f.get(i0).i32(-1).get(L.causal).select();
      f.call(idx(softmaxRows));
      // O[b, i0:] = P · V[b]
      f.get(S).get(L.ldS).i32(1);
      f.get(L.V).get(b).get(L.Lk).mul().get(L.Ev).mul().i32(4).mul().add();
      f.get(L.Ev).i32(1);
      f.get(L.O).get(b).get(L.Lq).mul().get(i0).add().get(L.Ev).mul().i32(4).mul().add();
      f.get(L.Ev).get(rows).get(L.Ev).get(L.Lk).get(ws).i32(0).call(idx(gemm));
    });
    fns.push(f);
  }

  fns.push(...winogradFns());
  return assemble(fns, memory);
}

/**
 * x ← exp(x) for f32x4 in local `x` (Cody–Waite reduction, degree-6 polynomial, 2^n by exponent
 * bits; ~2 ulp; underflows to 0 below -87.3, NaN stays NaN). `n` is a scratch v128 local.
 */
function emitExp(f: Fn, x: number, n: number, relaxed = EXP_FMA.relaxed): void {
  const k = (v: number) => (g: Fn) => g.f32(v).vsplat();
  f.get(x).e(k(88.3762626647949)).vmin().e(k(-87.3365447504)).vmax().set(x);
  f.get(x).e(k(Math.LOG2E)).vmul().vnearest().set(n);
  // r = x - n*ln2_hi - n*ln2_lo
  if (relaxed) {
    // relaxed_madd(a, b, c) = a*b + c
    f.get(n).e(k(-0.693359375)).get(x).simd(0x105).set(x);
    f.get(n).e(k(2.12194440e-4)).get(x).simd(0x105).set(x);
  } else {
    f.get(x).get(n).e(k(0.693359375)).vmul().vsub().get(n).e(k(-2.12194440e-4)).vmul().vsub().set(x);
  }
  // p(r) = 1 + r + r^2/2 + ... + r^6/720 (Horner), kept on the stack.
  const coeffs = [1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1];
  f.e(k(1 / 720));
  for (const c of coeffs) {
    if (relaxed) f.get(x).e(k(c)).simd(0x105);
    else f.get(x).vmul().e(k(c)).vadd();
  }
  // * 2^n
  f.get(n).vtrunc().i32(127).simd(0x11).viadd().i32(23).vishl().vmul().set(x);
  // Exact 0 where n hit the lower clamp (inputs below -87.3, including -inf).
  f.get(x).get(n).e(k(-125.5)).vlt().vandnot().set(x);
}

/** Whether `emitExp` may use relaxed FMA (set per module build). */
const EXP_FMA = { relaxed: false };

export { F32, I32, V128 };
