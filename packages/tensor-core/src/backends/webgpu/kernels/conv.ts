/**
 * conv2d and its two gradients as implicit GEMMs (no im2col buffer): each kind only says how
 * its A and B operands are gathered from x, w and gy, and where outputs land. The kernel size is a
 * compile-time constant so its divisions become multiplies.
 */
import type { Conv2dParams, View } from '../../../backend.js';
import { conv2dOutputShape, convDims } from '../../../shape.js';
import type { ConvDims } from '../../../shape.js';
import type { GpuContext } from '../context.js';
import { Meta } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { gemm } from './gemm.js';
import type { ATile, BTile } from './gemm.js';

type GV = View<GpuStorage>;

/** Everything about one convolution's shapes (the sizes from shape.ts, shared with every backend). */
interface ConvGeometry extends ConvDims {
  p: Conv2dParams;
}

/** Index helpers over the conv fields (x, w and gy are read through `xAt`, `wAt`, `gAt`). */
const convWgsl = (kh: number, kw: number) => `
const KH = ${kh}u;
const KW = ${kw}u;
fn xAt(n: u32, c: u32, h: u32, w: u32) -> u32 { return md_xOff() + n * md_xSn() + c * md_xSc() + h * md_xSh() + w * md_xSw(); }
fn wAt(o: u32, c: u32, i: u32, j: u32) -> u32 { return md_wOff() + o * md_wSo() + c * md_wSc() + i * md_wSh() + j * md_wSw(); }
fn gAt(n: u32, o: u32, h: u32, w: u32) -> u32 { return md_gOff() + n * md_gSn() + o * md_gSo() + h * md_gSh() + w * md_gSw(); }
// Input pixel read by output (oh, ow) through tap (i, j); -1 when it falls in the padding.
fn tapX(oh: u32, ow: u32, i: u32, j: u32) -> vec2<i32> {
  let ih = i32(oh) * md_SH() - md_PH() + i32(i) * md_DH();
  let iw = i32(ow) * md_SW() - md_PW() + i32(j) * md_DW();
  if (ih < 0 || ih >= i32(md_H()) || iw < 0 || iw >= i32(md_W())) { return vec2<i32>(-1, -1); }
  return vec2<i32>(ih, iw);
}
`;

type ConvKind = 'conv' | 'dgrad' | 'wgrad';

/** Per kind: the GEMM's dims over the geometry, its tile modes, and its load functions. */
const KINDS: Record<
  ConvKind,
  { dims: (g: ConvGeometry) => [number, number, number]; outSize: (g: ConvGeometry) => number; aTile: ATile; bTile: BTile; loads: string }
> = {
  // out[o, (n, oh, ow)] = Σ_(c, i, j) w[o, c, i, j] · x[n, c, tap]
  conv: {
    dims: (g) => [g.O / g.p.groups, g.N * g.Ho * g.Wo, (g.C / g.p.groups) * g.kh * g.kw],
    outSize: (g) => g.N * g.O * g.Ho * g.Wo,
    aTile: 'k',
    bTile: 'n',
    loads: `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let c = k / (KH * KW); let r = k % (KH * KW);
  return ld_w(wAt(z * md_OG() + m, c, r / KW, r % KW));
}
fn loadB(z: u32, k: u32, p: u32) -> f32 {
  let c = k / (KH * KW); let r = k % (KH * KW);
  let hw = md_Ho() * md_Wo();
  let n = p / hw; let q = p % hw;
  let t = tapX(q / md_Wo(), q % md_Wo(), r / KW, r % KW);
  if (t.x < 0) { return 0.0; }
  return ld_x(xAt(n, z * md_CG() + c, u32(t.x), u32(t.y)));
}
fn outIndex(z: u32, m: u32, p: u32) -> u32 {
  let hw = md_Ho() * md_Wo();
  return ((p / hw) * md_O() + z * md_OG() + m) * hw + p % hw;
}
`,
  },
  // dx[c, (n, h, w)] = Σ_(o, i, j) w[o, c, i, j] · gy[n, o, (h, w) reached through tap (i, j)]
  dgrad: {
    dims: (g) => [g.C / g.p.groups, g.N * g.H * g.W, (g.O / g.p.groups) * g.kh * g.kw],
    outSize: (g) => g.N * g.C * g.H * g.W,
    aTile: 'm',
    bTile: 'n',
    loads: `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let o = k / (KH * KW); let r = k % (KH * KW);
  return ld_w(wAt(z * md_OG() + o, m, r / KW, r % KW));
}
fn loadB(z: u32, k: u32, p: u32) -> f32 {
  let o = k / (KH * KW); let r = k % (KH * KW);
  let i = r / KW; let j = r % KW;
  let hw = md_H() * md_W();
  let n = p / hw; let q = p % hw;
  let th = i32(q / md_W()) + md_PH() - i32(i) * md_DH();
  let tw = i32(q % md_W()) + md_PW() - i32(j) * md_DW();
  if (th < 0 || tw < 0 || th % md_SH() != 0 || tw % md_SW() != 0) { return 0.0; }
  let oh = u32(th / md_SH()); let ow = u32(tw / md_SW());
  if (oh >= md_Ho() || ow >= md_Wo()) { return 0.0; }
  return ld_g(gAt(n, z * md_OG() + o, oh, ow));
}
fn outIndex(z: u32, m: u32, p: u32) -> u32 {
  let hw = md_H() * md_W();
  return ((p / hw) * md_C() + z * md_CG() + m) * hw + p % hw;
}
`,
  },
  // dw[o, (c, i, j)] = Σ_(n, oh, ow) gy[n, o, oh, ow] · x[n, c, tap]
  wgrad: {
    dims: (g) => [g.O / g.p.groups, (g.C / g.p.groups) * g.kh * g.kw, g.N * g.Ho * g.Wo],
    outSize: (g) => g.O * (g.C / g.p.groups) * g.kh * g.kw,
    aTile: 'k',
    bTile: 'k',
    loads: `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let hw = md_Ho() * md_Wo();
  let n = k / hw; let q = k % hw;
  return ld_g(gAt(n, z * md_OG() + m, q / md_Wo(), q % md_Wo()));
}
fn loadB(z: u32, k: u32, col: u32) -> f32 {
  let c = col / (KH * KW); let r = col % (KH * KW);
  let hw = md_Ho() * md_Wo();
  let n = k / hw; let q = k % hw;
  let t = tapX(q / md_Wo(), q % md_Wo(), r / KW, r % KW);
  if (t.x < 0) { return 0.0; }
  return ld_x(xAt(n, z * md_CG() + c, u32(t.x), u32(t.y)));
}
fn outIndex(z: u32, m: u32, col: u32) -> u32 {
  return (z * md_OG() + m) * md_CG() * KH * KW + col;
}
`,
  },
};

/** Runs one conv kind as a GEMM; absent operands (the one a kind does not read) pass null. */
function convGemm(ctx: GpuContext, kind: ConvKind, g: ConvGeometry, ops: { x: GV | null; w: GV | null; gy: GV | null }): GpuStorage {
  const { p } = g;
  const meta = new Meta().u32s({ C: g.C, H: g.H, W: g.W, O: g.O, Ho: g.Ho, Wo: g.Wo, CG: g.C / p.groups, OG: g.O / p.groups });
  meta
    .i32('SH', p.stride[0])
    .i32('SW', p.stride[1])
    .i32('PH', p.padding[0])
    .i32('PW', p.padding[1])
    .i32('DH', p.dilation[0])
    .i32('DW', p.dilation[1]);
  const strides = (prefix: string, v: GV | null, dims: string) => {
    meta.u32(`${prefix}Off`, v?.offset ?? 0);
    [...dims].forEach((d, i) => meta.u32(`${prefix}S${d}`, v?.strides[i] ?? 0));
  };
  strides('x', ops.x, 'nchw');
  strides('w', ops.w, 'ochw');
  strides('g', ops.gy, 'nohw');
  const inputs = (
    [
      ['x', ops.x],
      ['g', ops.gy],
      ['w', ops.w],
    ] as const
  )
    .filter((e): e is readonly ['x' | 'g' | 'w', GV] => e[1] !== null)
    .map(([name, v]) => ({ name, storage: v.storage, dtype: v.dtype, access: 'read' as const }));
  const k = KINDS[kind];
  const [M, N, K] = k.dims(g);
  return gemm(ctx, {
    tag: `${kind}${g.kh}x${g.kw}`,
    M,
    N,
    K,
    batch: p.groups,
    inputs,
    outDtype: inputs[0].dtype,
    outSize: k.outSize(g),
    loads: convWgsl(g.kh, g.kw) + k.loads,
    meta,
    aTile: k.aTile,
    bTile: k.bTile,
  });
}

export function conv2d(ctx: GpuContext, x: GV, w: GV, p: Conv2dParams): GpuStorage {
  return convGemm(ctx, 'conv', { ...convDims(x.shape, w.shape, conv2dOutputShape(x.shape, w.shape, p)), p }, { x, w, gy: null });
}

export function conv2dInputGrad(ctx: GpuContext, gy: GV, w: GV, inputShape: readonly number[], p: Conv2dParams): GpuStorage {
  return convGemm(ctx, 'dgrad', { ...convDims(inputShape, w.shape, gy.shape), p }, { x: null, w, gy });
}

export function conv2dWeightGrad(ctx: GpuContext, x: GV, gy: GV, weightShape: readonly number[], p: Conv2dParams): GpuStorage {
  return convGemm(ctx, 'wgrad', { ...convDims(x.shape, weightShape, gy.shape), p }, { x, w: null, gy });
}
