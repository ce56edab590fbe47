import type { Conv2dParams } from '../../backend.js';
import type { ConvDims as Dims } from '../../shape.js';

/**
 * Direct-loop convolutions in f64: the oracle that implicit-GEMM kernels are checked against.
 * Layouts: x [N, C, H, W], w [O, C/g, kh, kw], y [N, O, Ho, Wo].
 */

function forEachTap(d: Dims, p: Conv2dParams, fn: (xi: number, wi: number, yi: number) => void): void {
  const { N, C, H, W, O, kh, kw, Ho, Wo } = d;
  const g = p.groups;
  const cg = C / g;
  const og = O / g;
  const [sh, sw] = p.stride;
  const [ph, pw] = p.padding;
  const [dh, dw] = p.dilation;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const grp = Math.floor(o / og);
      for (let c = 0; c < cg; c++) {
        const ci = grp * cg + c;
        for (let i = 0; i < kh; i++)
          for (let j = 0; j < kw; j++) {
            const wi = ((o * cg + c) * kh + i) * kw + j;
            for (let oh = 0; oh < Ho; oh++) {
              const ih = oh * sh - ph + i * dh;
              if (ih < 0 || ih >= H) continue;
              const xrow = ((n * C + ci) * H + ih) * W;
              const yrow = ((n * O + o) * Ho + oh) * Wo;
              for (let ow = 0; ow < Wo; ow++) {
                const iw = ow * sw - pw + j * dw;
                if (iw < 0 || iw >= W) continue;
                fn(xrow + iw, wi, yrow + ow);
              }
            }
          }
      }
    }
}

export function conv2dForward(x: Float64Array, w: Float64Array, d: Dims, p: Conv2dParams): Float64Array {
  const y = new Float64Array(d.N * d.O * d.Ho * d.Wo);
  forEachTap(d, p, (xi, wi, yi) => {
    y[yi] += x[xi] * w[wi];
  });
  return y;
}

export function conv2dInputGrad(gy: Float64Array, w: Float64Array, d: Dims, p: Conv2dParams): Float64Array {
  const gx = new Float64Array(d.N * d.C * d.H * d.W);
  forEachTap(d, p, (xi, wi, yi) => {
    gx[xi] += gy[yi] * w[wi];
  });
  return gx;
}

export function conv2dWeightGrad(x: Float64Array, gy: Float64Array, d: Dims, p: Conv2dParams): Float64Array {
  const gw = new Float64Array(d.O * (d.C / p.groups) * d.kh * d.kw);
  forEachTap(d, p, (xi, wi, yi) => {
    gw[wi] += x[xi] * gy[yi];
  });
  return gw;
}
