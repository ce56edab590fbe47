/**
 * Winograd F(4×4, 3×3) transforms for 3×3 stride-1 convolutions (Lavin & Gray): 36 batched GEMMs
 * of 6×6-transformed tiles replace the 9-tap GEMM, 4× fewer multiplies. Every transform is the same
 * sandwich `out = L · X · Lᵀ` with a constant L, emitted as straight-line code (zero terms skipped).
 *
 *   forward:      U = G g Gᵀ,  V = Bᵀ d B,  M = U ⊙ V (GEMMs over channels),  y = Aᵀ M A
 *   weight grad:  W = A dy Aᵀ,  Z = Σ_tiles W ⊙ V (GEMMs over tiles),  dg = Gᵀ Z G
 *   input grad:   the forward with the weights flipped and transposed, padding 2 - p.
 */
import { F32, Fn, I32, V128 } from '../emit.js';
import type { Expr } from '../emit.js';

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

/** Tile-transform descriptor: a plane [C][H][W] per image, tiles of `step` with offset -pad. */
export const WIN_TILE = { src: 0, N: 1, C: 2, H: 3, W: 4, ph: 5, pw: 6, tilesH: 7, tilesW: 8, dst: 9, sXi: 10, sC: 11, sT: 12 } as const;
/** Small-matrix transform descriptor: items (a, b), element (i, j) at a*sA + b*sB + i*sI + j*sJ. */
export const WIN_MAT = { src: 0, sA: 1, sB: 2, sI: 3, sJ: 4, nA: 5, nB: 6, dst: 7, dA: 8, dB: 9, dI: 10, dJ: 11 } as const;
export const WINOGRAD_TASKS = ['task_wino_in', 'task_wino_dy', 'task_wino_out', 'task_wino_w', 'task_wino_winv'] as const;

const field = (d: number, i: number): Expr => (f) => f.get(d).i32load(i * 4);

/** Emits `out = L · X · Lᵀ` over f32 locals (X: q×q, out: p×p, row-major). */
function sandwich(f: Fn, L: number[][], X: number[], out: number[]): void {
  const p = L.length;
  const q = L[0].length;
  const tmp = Array.from({ length: p * q }, () => f.local(F32));
  const lin = (terms: [number, number][], dst: number) => {
    let first = true;
    for (const [c, loc] of terms) {
      if (c === 0) continue;
      if (first) {
        f.get(loc);
        if (c === -1) f.op(0x8c);
        else if (c !== 1) f.f32(c).fmul();
        first = false;
      } else if (c === 1) f.get(loc).fadd();
      else if (c === -1) f.get(loc).fsub();
      else f.get(loc).f32(c).fmul().fadd();
    }
    if (first) f.f32(0);
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


/** `sandwich` on f32x4 locals: four independent small matrices at once. */
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

export function winogradFns(): Fn[] {
  const fns: Fn[] = [];

  // Tile transforms from an image plane (input d with B, output-grad dy with A), zero outside.
  const tileIn = (name: string, L: number[][]) => {
    const q = L[0].length;
    const p = L.length;
    const f = new Fn(name, [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const F: Record<string, number> = {};
    for (const key of Object.keys(WIN_TILE)) F[key] = f.local(I32);
    for (const [key, i] of Object.entries(WIN_TILE)) f.set(F[key], field(d, i));
    const [u, u0, u1, n, c, ty, tx, plane, ih, iw, tile, base] = Array.from({ length: 12 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(F32));
    const out = Array.from({ length: p * p }, () => f.local(F32));
    f.get(F.N).get(F.C).mul().get(t).mul().get(T).divs().set(u0);
    f.get(F.N).get(F.C).mul().get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      f.get(u).get(F.C).divs().set(n);
      f.get(u).get(F.C).rems().set(c);
      f.get(F.src).get(u).get(F.H).mul().get(F.W).mul().i32(4).mul().add().set(plane);
      f.for(ty, 0, (g) => g.get(F.tilesH), 1, () => {
        f.for(tx, 0, (g) => g.get(F.tilesW), 1, () => {
          f.get(ty).i32(4).mul().get(F.ph).sub().set(ih);
          f.get(tx).i32(4).mul().get(F.pw).sub().set(iw);
          f.if(
            (g) => g.get(ih).i32(0).ges().get(iw).i32(0).ges().and().get(ih).i32(q).add().get(F.H).les().and().get(iw).i32(q).add().get(F.W).les().and(),
            () => {
              // Interior tile: no bounds checks, constant column offsets.
              f.get(plane).get(ih).get(F.W).mul().get(iw).add().i32(4).mul().add().set(base);
              for (let kk = 0; kk < q; kk++) {
                for (let l = 0; l < q; l++) f.get(base).f32load(4 * l).set(X[kk * q + l]);
                f.get(base).get(F.W).i32(4).mul().add().set(base);
              }
            },
            () => {
              for (let kk = 0; kk < q; kk++) {
                f.get(ty).i32(4).mul().get(F.ph).sub().i32(kk).add().set(ih);
                for (let l = 0; l < q; l++) {
                  f.get(tx).i32(4).mul().get(F.pw).sub().i32(l).add().set(iw);
                  f.f32(0).set(X[kk * q + l]);
                  f.if(
                    (g) => g.get(ih).i32(0).ges().get(ih).get(F.H).lts().and().get(iw).i32(0).ges().and().get(iw).get(F.W).lts().and(),
                    () => f.get(plane).get(ih).get(F.W).mul().get(iw).add().i32(4).mul().add().f32load().set(X[kk * q + l]),
                  );
                }
              }
            },
          );
          sandwich(f, L, X, out);
          f.get(n).get(F.tilesH).mul().get(ty).add().get(F.tilesW).mul().get(tx).add().set(tile);
          f.get(F.dst).get(c).get(F.sC).mul().get(tile).get(F.sT).mul().add().i32(4).mul().add().set(base);
          for (let xi = 0; xi < p * p; xi++) f.get(base).get(out[xi]).f32store().get(base).get(F.sXi).i32(4).mul().add().set(base);
        });
      });
    });
    fns.push(f);
  };
  tileIn('task_wino_in', BT);
  tileIn('task_wino_dy', transpose(AT));

  // Output transform: M[ξ][o][t] -> y[n][o] tiles of 4×4, clipped at the borders.
  {
    const L = AT;
    const p = L.length;
    const q = L[0].length;
    const f = new Fn('task_wino_out', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const F: Record<string, number> = {};
    for (const key of Object.keys(WIN_TILE)) F[key] = f.local(I32);
    // Here src = M (with sXi, sC = per-o stride, sT), dst = y planes [N][C=O][H][W].
    for (const [key, i] of Object.entries(WIN_TILE)) f.set(F[key], field(d, i));
    const [u, u0, u1, n, c, ty, tx, plane, oh, ow, tile, base] = Array.from({ length: 12 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(F32));
    const out = Array.from({ length: p * p }, () => f.local(F32));
    f.get(F.N).get(F.C).mul().get(t).mul().get(T).divs().set(u0);
    f.get(F.N).get(F.C).mul().get(t).i32(1).add().mul().get(T).divs().set(u1);
    f.for(u, (g) => g.get(u0), (g) => g.get(u1), 1, () => {
      f.get(u).get(F.C).divs().set(n);
      f.get(u).get(F.C).rems().set(c);
      f.get(F.dst).get(u).get(F.H).mul().get(F.W).mul().i32(4).mul().add().set(plane);
      f.for(ty, 0, (g) => g.get(F.tilesH), 1, () => {
        f.for(tx, 0, (g) => g.get(F.tilesW), 1, () => {
          f.get(n).get(F.tilesH).mul().get(ty).add().get(F.tilesW).mul().get(tx).add().set(tile);
          f.get(F.src).get(c).get(F.sC).mul().get(tile).get(F.sT).mul().add().i32(4).mul().add().set(base);
          for (let xi = 0; xi < q * q; xi++) f.get(base).f32load().set(X[xi]).get(base).get(F.sXi).i32(4).mul().add().set(base);
          sandwich(f, L, X, out);
          for (let i = 0; i < p; i++) {
            f.get(ty).i32(4).mul().i32(i).add().set(oh);
            f.if((g) => g.get(oh).get(F.H).lts(), () => {
              for (let j = 0; j < p; j++) {
                f.get(tx).i32(4).mul().i32(j).add().set(ow);
                f.if((g) => g.get(ow).get(F.W).lts(), () => f.get(plane).get(oh).get(F.W).mul().get(ow).add().i32(4).mul().add().get(out[i * p + j]).f32store());
              }
            });
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
    const [d, t, T] = [0, 1, 2];
    const F: Record<string, number> = {};
    for (const key of Object.keys(WIN_MAT)) F[key] = f.local(I32);
    for (const [key, i] of Object.entries(WIN_MAT)) f.set(F[key], field(d, i));
    const [a, a0, a1, b, bl, last] = Array.from({ length: 6 }, () => f.local(I32));
    const sb = Array.from({ length: 4 }, () => f.local(I32));
    const db = Array.from({ length: 4 }, () => f.local(I32));
    const X = Array.from({ length: q * q }, () => f.local(V128));
    const out = Array.from({ length: p * p }, () => f.local(V128));
    f.get(F.nA).get(t).mul().get(T).divs().set(a0);
    f.get(F.nA).get(t).i32(1).add().mul().get(T).divs().set(a1);
    f.get(F.nB).i32(1).sub().set(last);
    f.for(a, (g) => g.get(a0), (g) => g.get(a1), 1, () => {
      f.for(b, 0, (g) => g.get(F.nB), 4, () => {
        for (let l = 0; l < 4; l++) {
          f.get(b).i32(l).add().set(bl);
          f.if((g) => g.get(bl).get(last).gts(), () => f.get(last).set(bl));
          f.get(F.src).get(a).get(F.sA).mul().get(bl).get(F.sB).mul().add().i32(4).mul().add().set(sb[l]);
          f.get(F.dst).get(a).get(F.dA).mul().get(bl).get(F.dB).mul().add().i32(4).mul().add().set(db[l]);
        }
        for (let i = 0; i < q; i++)
          for (let j = 0; j < q; j++) {
            const off = (g: Fn) => g.get(F.sI).i32(i).mul().get(F.sJ).i32(j).mul().add().i32(4).mul();
            f.get(sb[0]).e(off).add().f32load().vsplat();
            for (let l = 1; l < 4; l++) {
              f.get(sb[l]).e(off).add().f32load();
              f.simd(0x20);
              f.code.push(l);
            }
            f.set(X[i * q + j]);
          }
        sandwichV(f, L, X, out);
        for (let i = 0; i < p; i++)
          for (let j = 0; j < p; j++)
            for (let l = 0; l < 4; l++) {
              f.get(db[l]).get(F.dI).i32(i).mul().get(F.dJ).i32(j).mul().add().i32(4).mul().add();
              f.get(out[i * p + j]).vextract(l).f32store();
            }
      });
    });
    fns.push(f);
  };
  mat('task_wino_w', G);
  mat('task_wino_winv', transpose(G));
  return fns;
}
