/**
 * Winograd F(4×4, 3×3) transforms for 3×3 stride-1 convolutions (Lavin & Gray): 36 batched GEMMs
 * of 6×6-transformed tiles replace the 9-tap GEMM, 4× fewer multiplies. Every transform is the same
 * sandwich `out = L · X · Lᵀ` with a constant L, emitted as straight-line code (zero terms skipped).
 *
 *   forward:      U = G g Gᵀ,  V = Bᵀ d B,  M = U ⊙ V (GEMMs over channels),  y = Aᵀ M A
 *   weight grad:  W = A dy Aᵀ,  Z = Σ_tiles W ⊙ V (GEMMs over tiles),  dg = Gᵀ Z G
 *   input grad:   the forward with the weights flipped and transposed, padding 2 - p.
 */
import { Fn, I32, V128 } from '../emit.js';
import type { Expr } from '../emit.js';
import { min } from './module.js';

export const BT = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
export const G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];
export const AT = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];
const transpose = (m: number[][]): number[][] => m[0].map((_, j) => m.map((r) => r[j]));

/**
 * Tile-transform descriptor: planes [N·C][H][W]; tiles of step 4 at offset (-ph, -pw); the
 * transformed tiles at dst[ξ·sXi + c·sC + tile] with tile = (n·tilesH + ty)·tilesW + tx (tiles
 * adjacent, so four neighbours are one f32x4). `pad` is per-thread scratch, `padStride` bytes apart
 * (`winoPadBytes`): the input transforms copy each plane into it zero-padded, so no tile needs a
 * bounds check.
 */
export const WIN_TILE = { src: 0, N: 1, C: 2, H: 3, W: 4, ph: 5, pw: 6, tilesH: 7, tilesW: 8, dst: 9, sXi: 10, sC: 11, pad: 12, padStride: 13, next: 14 } as const;
/** Small-matrix transform descriptor: items (a, b), element (i, j) at a*sA + b*sB + i*sI + j*sJ. */
export const WIN_MAT = { src: 0, sA: 1, sB: 2, sI: 3, sJ: 4, nA: 5, nB: 6, dst: 7, dA: 8, dB: 9, dI: 10, dJ: 11, next: 12 } as const;
export const WINOGRAD_TASKS = ['task_wino_in', 'task_wino_dy', 'task_wino_out', 'task_wino_w', 'task_wino_winv'] as const;

/** Bytes of one thread's zero-padded plane for the input transforms (a multiple of 64). */
export function winoPadBytes(tilesH: number, tilesW: number): number {
  const bytes = (tilesH * 4 + 2) * (Math.ceil(tilesW / 4) * 16 + 4) * 4;
  return Math.ceil(bytes / 64) * 64;
}

const field = (d: number, i: number): Expr => (f) => f.get(d).i32load(i * 4);

/** i8x16.shuffle of the two f32x4 on the stack, picking 32-bit lanes (0–3 first operand, 4–7 second). */
function shuffle32(f: Fn, lanes: number[]): void {
  f.simd(0x0d);
  for (const l of lanes) f.code.push(4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3);
}

/** dst[l][m] = src[m][l]: four f32x4 locals transposed (8 shuffles); `tmp` are 4 scratch locals. */
function transpose4(f: Fn, src: number[], dst: number[], tmp: number[]): void {
  const step = (a: number, b: number, lanes: number[], to: number) => {
    f.get(a).get(b);
    shuffle32(f, lanes);
    f.set(to);
  };
  // Interleave pairs of rows, then pairs of pairs.
  for (const h of [0, 1]) {
    step(src[2 * h], src[2 * h + 1], [0, 4, 1, 5], tmp[2 * h]);
    step(src[2 * h], src[2 * h + 1], [2, 6, 3, 7], tmp[2 * h + 1]);
  }
  for (const h of [0, 1]) {
    step(tmp[h], tmp[h + 2], [0, 1, 4, 5], dst[2 * h]);
    step(tmp[h], tmp[h + 2], [2, 3, 6, 7], dst[2 * h + 1]);
  }
}

/** Emits `out = L · X · Lᵀ` on f32x4 locals (X: q×q, out: p×p, row-major): four independent matrices at once. */
function sandwichV(f: Fn, L: number[][], X: number[], out: number[]): void {
  const p = L.length;
  const q = L[0].length;
  const tmp = Array.from({ length: p * q }, () => f.local(V128));
  const lin = (terms: [number, number][], dst: number) => {
    let first = true;
    for (const [c, loc] of terms) {
      if (c === 0) continue;
      if (first) {
        f.get(loc);
        if (c === -1) f.simd(0xe1);
        else if (c !== 1) f.f32(c).vsplat().vmul();
        first = false;
      } else if (c === 1) f.get(loc).vadd();
      else if (c === -1) f.get(loc).vsub();
      else f.get(loc).f32(c).vsplat().vmul().vadd();
    }
    if (first) f.f32(0).vsplat();
    f.set(dst);
  };
  for (let i = 0; i < p; i++)
    for (let l = 0; l < q; l++)
      lin(
        L[i].map((c, k) => [c, X[k * q + l]]),
        tmp[i * q + l],
      );
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++)
      lin(
        L[j].map((c, l) => [c, tmp[i * q + l]]),
        out[i * p + j],
      );
}

/**
 * `body(i)` for each i < count this thread claims. Work is claimed in chunks of about
 * count / (8·T) through the atomic counter in descriptor field `next` (zeroed by the caller), so a
 * thread descheduled on a shared machine holds up one chunk, not a static half. Every item is
 * computed the same way whoever claims it: results do not depend on the thread count.
 */
function claimed(f: Fn, next: number, count: Expr, T: number, body: (i: number) => void): void {
  const [n, ch, i0, i1, i] = Array.from({ length: 5 }, () => f.local(I32));
  f.set(n, count);
  f.get(n).get(T).i32(8).mul().add().i32(1).sub().get(T).i32(8).mul().divs().set(ch);
  f.block(() => {
    f.loop(() => {
      f.get(0).get(ch).atomicAdd(next * 4).tee(i0).get(n).ges().brIf(1);
      f.get(i0).get(ch).add().set(i1);
      f.if((g) => g.get(i1).get(n).gts(), () => f.get(n).set(i1));
      f.for(i, (g) => g.get(i0), (g) => g.get(i1), 1, () => body(i));
      f.br(0);
    });
  });
}

/** This thread's share of the N·C planes of a WIN_TILE descriptor (fields in locals F). */
function planes(f: Fn, F: Record<string, number>, T: number, body: (u: number, n: number, c: number) => void): void {
  const [n, c] = Array.from({ length: 2 }, () => f.local(I32));
  claimed(f, WIN_TILE.next, (g) => g.get(F.N).get(F.C).mul(), T, (u) => {
    f.get(u).get(F.C).divs().set(n);
    f.get(u).get(F.C).rems().set(c);
    body(u, n, c);
  });
}

function tileFn(name: string): { f: Fn; F: Record<string, number>; t: number; T: number } {
  const f = new Fn(name, [I32, I32, I32]);
  const F: Record<string, number> = {};
  for (const key of Object.keys(WIN_TILE)) F[key] = f.local(I32);
  for (const [key, i] of Object.entries(WIN_TILE)) f.set(F[key], field(0, i));
  return { f, F, t: 1, T: 2 };
}

export function winogradFns(): Fn[] {
  const fns: Fn[] = [];

  // Tile transforms from an image plane (input d with B, output-grad dy with A), four horizontally
  // adjacent tiles per f32x4. Each plane is first copied into the thread's zero-padded scratch
  // plane (Hp × Wp), so every group of four tiles reads whole rows: 4 or 5 f32x4 loads per row,
  // transposed into per-column vectors across the four tiles.
  const tileIn = (name: string, L: number[][]) => {
    const q = L[0].length;
    const p = L.length;
    const { f, F, t, T } = tileFn(name);
    const [Wp, Hp, pb, rows, cols, r, j, s, dd, ty, g, tile, base, rowp, tA, tB] = Array.from({ length: 16 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(V128));
    const out = Array.from({ length: p * p }, () => f.local(V128));
    const v = Array.from({ length: 5 }, () => f.local(V128));
    const tmp = Array.from({ length: 4 }, () => f.local(V128));
    f.get(F.tilesW).i32(3).add().i32(2).shr_s().i32(16).mul().i32(4).add().set(Wp);
    f.get(F.tilesH).i32(4).mul().i32(2).add().set(Hp);
    f.get(F.pad).get(t).get(F.padStride).mul().add().set(pb);
    f.get(pb).i32(0).get(Hp).get(Wp).mul().i32(4).mul().memfill();
    // Rows and columns of the image that land inside the padded plane (the rest is never read).
    min(f, (g2) => g2.get(F.H), (g2) => g2.get(Hp).get(F.ph).sub(), tA, tB).set(rows);
    min(f, (g2) => g2.get(F.W), (g2) => g2.get(Wp).get(F.pw).sub(), tA, tB).set(cols);
    planes(f, F, T, (u, n, c) => {
      f.for(r, 0, (g2) => g2.get(rows), 1, () => {
        f.get(F.src).get(u).get(F.H).mul().get(r).add().get(F.W).mul().i32(4).mul().add().set(s);
        f.get(pb).get(r).get(F.ph).add().get(Wp).mul().get(F.pw).add().i32(4).mul().add().set(dd);
        f.for(j, 0, (g2) => g2.get(cols).i32(3).sub(), 4, () => {
          f.get(dd).get(j).i32(4).mul().add().get(s).get(j).i32(4).mul().add().v128load().v128store();
        });
        f.for(j, (g2) => g2.get(j), (g2) => g2.get(cols), 1, () => {
          f.get(dd).get(j).i32(4).mul().add().get(s).get(j).i32(4).mul().add().f32load().f32store();
        });
      });
      f.for(ty, 0, (g2) => g2.get(F.tilesH), 1, () => {
        f.for(g, 0, (g2) => g2.get(F.tilesW), 4, () => {
          f.get(pb).get(ty).i32(4).mul().get(Wp).mul().get(g).i32(4).mul().add().i32(4).mul().add().set(rowp);
          for (let k = 0; k < q; k++) {
            for (let m = 0; m < (q > 4 ? 5 : 4); m++) f.get(rowp).v128load(16 * m).set(v[m]);
            const Xk = X.slice(k * q, k * q + 4);
            transpose4(f, v.slice(0, 4), Xk, tmp);
            // Columns 4 and 5 of the four tiles: one tile further along, the last from the fifth load.
            for (let l = 4; l < q; l++) {
              f.get(X[k * q + l - 4]).get(v[4]);
              shuffle32(f, [1, 2, 3, l]);
              f.set(X[k * q + l]);
            }
            if (k < q - 1) f.get(rowp).get(Wp).i32(4).mul().add().set(rowp);
          }
          sandwichV(f, L, X, out);
          f.get(n).get(F.tilesH).mul().get(ty).add().get(F.tilesW).mul().get(g).add().set(tile);
          f.get(F.dst).get(c).get(F.sC).mul().get(tile).add().i32(4).mul().add().set(base);
          f.if(
            (g2) => g2.get(g).i32(4).add().get(F.tilesW).les(),
            () => {
              for (let xi = 0; xi < p * p; xi++) {
                f.get(base).get(out[xi]).v128store();
                if (xi < p * p - 1) f.get(base).get(F.sXi).i32(4).mul().add().set(base);
              }
            },
            () => {
              // The row's last, partial group: only the tiles that exist.
              for (let m = 0; m < 4; m++) {
                f.if(
                  (g2) => g2.get(g).i32(m).add().get(F.tilesW).lts(),
                  () => {
                    f.get(base).set(s);
                    for (let xi = 0; xi < p * p; xi++) {
                      f.get(s).get(out[xi]).vextract(m).f32store(4 * m);
                      if (xi < p * p - 1) f.get(s).get(F.sXi).i32(4).mul().add().set(s);
                    }
                  },
                );
              }
            },
          );
        });
      });
    });
    fns.push(f);
  };
  tileIn('task_wino_in', BT);
  tileIn('task_wino_dy', transpose(AT));

  // Output transform: M[ξ][o][tile] -> y[n][o] tiles of 4×4, clipped at the borders; four
  // adjacent tiles per f32x4, each output row transposed back into one f32x4 per tile.
  {
    const L = AT;
    const p = L.length;
    const q = L[0].length;
    const { f, F, T } = tileFn('task_wino_out');
    // Here src = M (sXi, sC = per-o stride), dst = y planes [N][C=O][H][W].
    const [ty, g, tile, base, plane, oh, rowp, col, last] = Array.from({ length: 9 }, () => f.local(I32));
    const o = Array.from({ length: 4 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(V128));
    const out = Array.from({ length: p * p }, () => f.local(V128));
    const w = Array.from({ length: 4 }, () => f.local(V128));
    const tmp = Array.from({ length: 4 }, () => f.local(V128));
    planes(f, F, T, (u, n, c) => {
      f.get(F.dst).get(u).get(F.H).mul().get(F.W).mul().i32(4).mul().add().set(plane);
      f.for(ty, 0, (g2) => g2.get(F.tilesH), 1, () => {
        f.for(g, 0, (g2) => g2.get(F.tilesW), 4, () => {
          f.get(n).get(F.tilesH).mul().get(ty).add().get(F.tilesW).mul().get(g).add().set(tile);
          f.get(F.src).get(c).get(F.sC).mul().get(tile).add().i32(4).mul().add().set(base);
          f.if(
            (g2) => g2.get(g).i32(4).add().get(F.tilesW).les(),
            () => {
              for (let xi = 0; xi < q * q; xi++) {
                f.get(base).v128load().set(X[xi]);
                if (xi < q * q - 1) f.get(base).get(F.sXi).i32(4).mul().add().set(base);
              }
            },
            () => {
              // Partial group: lanes past the row's last tile repeat it (their results are not stored).
              f.get(F.tilesW).i32(1).sub().get(g).sub().set(last);
              for (let m = 1; m < 4; m++) f.get(last).i32(4).mul().i32(4 * m).get(last).i32(m).lts().select().set(o[m]);
              for (let xi = 0; xi < q * q; xi++) {
                f.get(base).f32load().vsplat();
                for (let m = 1; m < 4; m++) {
                  f.get(base).get(o[m]).add().f32load();
                  f.simd(0x20);
                  f.code.push(m);
                }
                f.set(X[xi]);
                if (xi < q * q - 1) f.get(base).get(F.sXi).i32(4).mul().add().set(base);
              }
            },
          );
          sandwichV(f, L, X, out);
          for (let i = 0; i < p; i++) {
            f.get(ty).i32(4).mul().i32(i).add().set(oh);
            f.if(
              (g2) => g2.get(oh).get(F.H).lts(),
              () => {
                transpose4(f, out.slice(i * p, i * p + 4), w, tmp);
                f.get(plane).get(oh).get(F.W).mul().get(g).i32(4).mul().add().i32(4).mul().add().set(rowp);
                for (let m = 0; m < 4; m++) {
                  f.get(g).i32(m).add().i32(4).mul().set(col);
                  f.if(
                    (g2) => g2.get(col).i32(4).add().get(F.W).les(),
                    () => f.get(rowp).get(w[m]).v128store(16 * m),
                    () => {
                      for (let jj = 0; jj < 4; jj++)
                        f.if(
                          (g2) => g2.get(col).i32(jj).add().get(F.W).lts(),
                          () => f.get(rowp).get(w[m]).vextract(jj).f32store(16 * m + 4 * jj),
                        );
                    },
                  );
                }
              },
            );
          }
        });
      });
    });
    fns.push(f);
  }

  // Small-matrix transforms: weights forward (G g Gᵀ) and the weight gradient back (Gᵀ Z G), four
  // items (consecutive b) per f32x4; the last group repeats its final item (same value written twice).
  const mat = (name: string, L: number[][]) => {
    const p = L.length;
    const q = L[0].length;
    const f = new Fn(name, [I32, I32, I32]);
    const [d, T] = [0, 2];
    const F: Record<string, number> = {};
    for (const key of Object.keys(WIN_MAT)) F[key] = f.local(I32);
    for (const [key, i] of Object.entries(WIN_MAT)) f.set(F[key], field(d, i));
    const [b, bl, last, full] = Array.from({ length: 4 }, () => f.local(I32));
    const sb = Array.from({ length: 4 }, () => f.local(I32));
    const db = Array.from({ length: 4 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(V128));
    const out = Array.from({ length: p * p }, () => f.local(V128));
    f.get(F.nB).i32(1).sub().set(last);
    claimed(f, WIN_MAT.next, (g) => g.get(F.nA), T, (a) => {
      f.for(b, 0, (g) => g.get(F.nB), 4, () => {
        for (let l = 0; l < 4; l++) {
          f.get(b).i32(l).add().set(bl);
          f.if((g) => g.get(bl).get(last).gts(), () => f.get(last).set(bl));
          f.get(F.src).get(a).get(F.sA).mul().get(bl).get(F.sB).mul().add().i32(4).mul().add().set(sb[l]);
          f.get(F.dst).get(a).get(F.dA).mul().get(bl).get(F.dB).mul().add().i32(4).mul().add().set(db[l]);
        }
        // Four whole items adjacent in memory (unit b stride) move as one f32x4, else lane by lane.
        f.get(b).i32(4).add().get(F.nB).les().set(full);
        const srcOff = (i: number, j: number) => (g: Fn) => g.get(F.sI).i32(i).mul().get(F.sJ).i32(j).mul().add().i32(4).mul();
        f.if(
          (g) => g.get(full).get(F.sB).i32(1).eq().and(),
          () => {
            for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) f.get(sb[0]).e(srcOff(i, j)).add().v128load().set(X[i * q + j]);
          },
          () => {
            for (let i = 0; i < q; i++)
              for (let j = 0; j < q; j++) {
                f.get(sb[0]).e(srcOff(i, j)).add().f32load().vsplat();
                for (let l = 1; l < 4; l++) {
                  f.get(sb[l]).e(srcOff(i, j)).add().f32load();
                  f.simd(0x20);
                  f.code.push(l);
                }
                f.set(X[i * q + j]);
              }
          },
        );
        sandwichV(f, L, X, out);
        const dstOff = (i: number, j: number) => (g: Fn) => g.get(F.dI).i32(i).mul().get(F.dJ).i32(j).mul().add().i32(4).mul();
        f.if(
          (g) => g.get(full).get(F.dB).i32(1).eq().and(),
          () => {
            for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) f.get(db[0]).e(dstOff(i, j)).add().get(out[i * p + j]).v128store();
          },
          () => {
            for (let i = 0; i < p; i++)
              for (let j = 0; j < p; j++)
                for (let l = 0; l < 4; l++) f.get(db[l]).e(dstOff(i, j)).add().get(out[i * p + j]).vextract(l).f32store();
          },
        );
      });
    });
    fns.push(f);
  };
  mat('task_wino_w', G);
  mat('task_wino_winv', transpose(G));
  return fns;
}
