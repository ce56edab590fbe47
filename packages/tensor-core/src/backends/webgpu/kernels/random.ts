/**
 * Philox 4×32-10 on the GPU: the same stream as the core generator (`random.ts`), four numbers
 * per invocation, so a seeded tensor is identical on every backend.
 */
import type { DType } from '../../../dtype.js';
import type { GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { MATH, PHILOX, linearMain } from '../wgsl.js';

/** 2^-24: maps the top 24 bits of a word to [0, 1). */
const U24 = '5.9604644775390625e-8';

export function random(
  ctx: GpuContext,
  dist: 'uniform' | 'normal',
  dtype: DType,
  size: number,
  key: readonly [number, number],
  counter: number,
): GpuStorage {
  const out = ctx.alloc(dtype, size);
  const blocks = Math.ceil(size / 4);
  const meta = new Meta().u32s({
    size,
    blocks,
    key0: key[0],
    key1: key[1],
    counterLo: counter >>> 0,
    counterHi: Math.floor(counter / 2 ** 32) >>> 0,
  });
  // Box–Muller on pairs, with log(u) near 1 from a series so that it matches the cpu generator.
  const normal = `for (var l = 0u; l < 4u; l = l + 2u) {
    let k1 = (x[l] >> 8u) + 1u;
    let u1 = f32(k1) * ${U24};
    let t = f32(16777216u - k1) * ${U24};
    var lg: f32;
    if (t < 0.01) { lg = -(t + t * t * (0.5 + t * (0.3333333333 + t * (0.25 + t * 0.2)))); } else { lg = log(u1); }
    let r = sqrt(-2.0 * lg);
    let u2 = f32(x[l + 1u] >> 8u) * ${U24};
    let sc = sincos_turns(u2);
    v[l] = r * sc.y;
    v[l + 1u] = r * sc.x;
  }`;
  ctx.run({
    name: `random:${dist}`,
    bindings: [{ name: 'out', storage: out, dtype, access: 'write' }],
    meta,
    code: () =>
      MATH +
      PHILOX +
      linearMain(
        WG,
        `  if (gid >= md_blocks()) { return; }
  let lo = md_counterLo() + gid;
  let hi = md_counterHi() + select(0u, 1u, lo < md_counterLo());
  let x = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(md_key0(), md_key1()));
  var v: vec4<f32>;
  ${dist === 'normal' ? normal : `v = vec4<f32>(x >> vec4<u32>(8u)) * ${U24};`}
  for (var l = 0u; l < 4u; l = l + 1u) {
    let i = gid * 4u + l;
    if (i < md_size()) { st_out(i, v[l]); }
  }`,
      ),
    groups: ctx.linear(blocks),
  });
  return out;
}
