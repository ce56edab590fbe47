/**
 * layerNorm and groupNorm(+SiLU) on plain f64 arrays for the cpu backend, forward and gradient.
 * Both see x as `groups` runs of `size` consecutive elements normalised together, with
 * `channelOf(group, i)` naming the affine channel of element i of a group: layerNorm has one group
 * per row and channel = position, groupNorm C/groups channels of `spatial` elements per group.
 */

export type ChannelOf = (group: number, i: number) => number;

/** Mean and 1/sqrt(var + eps) of x[base, base + size), two-pass. */
function moments(x: Float64Array, base: number, size: number, eps: number): { mean: number; rstd: number } {
  let mean = 0;
  for (let i = 0; i < size; i++) mean += x[base + i];
  mean /= size;
  let vr = 0;
  for (let i = 0; i < size; i++) vr += (x[base + i] - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(vr / size + eps) };
}

/** y = act(xhat · w[c] + b[c]) in place of x, act the identity or SiLU. */
export function normForward(
  x: Float64Array,
  w: Float64Array | null,
  bias: Float64Array | null,
  groups: number,
  size: number,
  channelOf: ChannelOf,
  eps: number,
  silu: boolean,
): Float64Array {
  for (let g = 0; g < groups; g++) {
    const base = g * size;
    const { mean, rstd } = moments(x, base, size, eps);
    for (let i = 0; i < size; i++) {
      const c = channelOf(g, i);
      let y = (x[base + i] - mean) * rstd * (w ? w[c] : 1) + (bias ? bias[c] : 0);
      if (silu) y = y / (1 + Math.exp(-y));
      x[base + i] = y;
    }
  }
  return x;
}

/**
 * Gradients of y = act(xhat · w[c] + b[c]) over `groups` of `size` consecutive elements, where
 * act the identity or SiLU.
 * Returns [dx, dweight, dbias] (dweight/dbias summed over every group, `channels` long).
 */
export function normBackward(
  x: Float64Array,
  w: Float64Array | null,
  bias: Float64Array | null,
  gy: Float64Array,
  groups: number,
  size: number,
  channels: number,
  channelOf: ChannelOf,
  eps: number,
  silu: boolean,
): [Float64Array, Float64Array, Float64Array] {
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(channels);
  const db = new Float64Array(channels);
  const gxhat = new Float64Array(size);
  const xhat = new Float64Array(size);
  for (let g = 0; g < groups; g++) {
    const base = g * size;
    const { mean, rstd } = moments(x, base, size, eps);
    let sumG = 0;
    let sumGX = 0;
    for (let i = 0; i < size; i++) {
      const c = channelOf(g, i);
      const xh = (x[base + i] - mean) * rstd;
      let gz = gy[base + i];
      if (silu) {
        const z = xh * (w ? w[c] : 1) + (bias ? bias[c] : 0);
        const s = 1 / (1 + Math.exp(-z));
        gz *= s * (1 + z * (1 - s));
      }
      dw[c] += gz * xh;
      db[c] += gz;
      const gx = gz * (w ? w[c] : 1);
      xhat[i] = xh;
      gxhat[i] = gx;
      sumG += gx;
      sumGX += gx * xh;
    }
    for (let i = 0; i < size; i++) dx[base + i] = rstd * (gxhat[i] - sumG / size - xhat[i] * (sumGX / size));
  }
  return [dx, dw, db];
}
