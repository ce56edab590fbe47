/**
 * im2col and col2im for convolutions the Winograd and 1×1 paths do not take: the column matrix
 * of a chunk of output rows, and its scatter-add back into the image (the input gradient).
 */
import { Fn, I32 } from '../emit.js';
import { field, min } from './module.js';
import type { ModuleBuilder } from './module.js';

/** Descriptor of `task_im2col` and `task_col2im`: image [C, H, W], kernel, stride, padding, dilation, output rows [oh0, oh1). */
export const IM2COL = { x: 0, C: 1, H: 2, W: 3, kh: 4, kw: 5, sh: 6, sw: 7, ph: 8, pw: 9, dh: 10, dw: 11, Wo: 12, oh0: 13, oh1: 14, col: 15 } as const;

export function emitIm2col(mod: ModuleBuilder): void {
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
    mod.add(f);
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
    mod.add(f);
  }
}
