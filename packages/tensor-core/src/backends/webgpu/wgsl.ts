/**
 * WGSL code generation shared by the webgpu kernels: typed loads and stores for every storage
 * dtype, strided indexing from a metadata buffer, and the helper functions (half conversions,
 * Philox, accurate sin/cos/erf) that several kernels use.
 *
 * Storage layouts on the GPU (what `upload`/`download` convert from and to):
 * - float32 → `array<f32>`, int32 → `array<i32>`, bool → `array<u32>` (one word per element);
 * - float16 → u16 bits packed two per word; read as `array<f16>` when the device has
 *   `shader-f16`, else as `array<u32>` with manual conversion; bfloat16 → u16 bits packed two per
 *   word. Packed words are written with `atomicAnd`/`atomicOr` on the element's half so that two
 *   invocations writing neighbouring elements never race.
 */
import type { DType } from '../../dtype.js';

/** Largest rank a strided view may have after coalescing. */
export const MAX_RANK = 8;
/** u32 words one view takes in the metadata buffer: offset, rank, shape[8], strides[8]. */
export const VIEW_WORDS = 2 + 2 * MAX_RANK;

export type Access = 'read' | 'write' | 'rw';

export interface Binding {
  name: string;
  dtype: DType;
  access: Access;
  /** Bind float32 data as `array<vec4<f32>>` (no scalar loader is generated). */
  vec4?: boolean;
}

export interface Caps {
  f16: boolean;
}

const isPacked = (dtype: DType, caps: Caps) => dtype === 'bfloat16' || (dtype === 'float16' && !caps.f16);

/** Bytes per element in GPU storage (bool widens to a word). */
export function gpuItemSize(dtype: DType): number {
  return dtype === 'float16' || dtype === 'bfloat16' ? 2 : 4;
}

export const COMMON = /* wgsl */ `
const NAN_BITS = 0x7fc00000u;
const PINF_BITS = 0x7f800000u;
const NINF_BITS = 0xff800000u;
fn nan_f() -> f32 { var b = NAN_BITS; return bitcast<f32>(b); }
fn ninf_f() -> f32 { var b = NINF_BITS; return bitcast<f32>(b); }
fn pinf_f() -> f32 { var b = PINF_BITS; return bitcast<f32>(b); }
fn isnan_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn h2f(h: u32) -> f32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, s != 0u);
  }
  if (e == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}
fn f2h(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let exp = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (exp == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  var e = i32(exp) - 127 + 15;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    var m = mant >> shift;
    let rest = mant & ((1u << shift) - 1u);
    if (rest > half || (rest == half && (m & 1u) != 0u)) { m = m + 1u; }
    return sign | m;
  }
  var m = mant >> 13u;
  let rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (m & 1u) != 0u)) {
    m = m + 1u;
    if (m == 0x400u) {
      m = 0u;
      e = e + 1;
      if (e >= 31) { return sign | 0x7c00u; }
    }
  }
  return sign | (u32(e) << 10u) | m;
}
fn f2bf(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu) != 0u) { return ((x >> 16u) | 0x40u) & 0xffffu; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}
fn bf2f(b: u32) -> f32 { return bitcast<f32>(b << 16u); }
`;

export const MATH = /* wgsl */ `
fn sincos_f(x: f32) -> vec2<f32> {
  // Drivers' sin/cos are not accurate enough (SwiftShader: ~2e-4 near ±pi and for SD's ~1000-rad
  // timestep arguments), so: Cody-Waite reduction by pi/2 (1.5703125 has 8 bits, so q * it is
  // exact) and Taylor polynomials on [-pi/4, pi/4] (truncation < 3e-8), then the quadrant.
  let q = round(x * 0.6366197723675814);
  let r = (x - q * 1.5703125) - q * 4.8382679489661923e-4;
  let r2 = r * r;
  let s = r + r * r2 * (-0.16666666666666666 + r2 * (0.008333333333333333 + r2 * (-1.984126984126984e-4 + r2 * 2.7557319223985893e-6)));
  let c = 1.0 + r2 * (-0.5 + r2 * (0.041666666666666664 + r2 * (-0.001388888888888889 + r2 * (2.48015873015873e-5 - r2 * 2.755731922398589e-7))));
  let n = i32(q) & 3;
  if (n == 1) { return vec2<f32>(c, -s); }
  if (n == 2) { return vec2<f32>(-s, -c); }
  if (n == 3) { return vec2<f32>(-c, s); }
  return vec2<f32>(s, c);
}
fn erf_f(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 refined: max abs error ~1.2e-7 (Numerical Recipes erfc Chebyshev).
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn tanh_f(x: f32) -> f32 {
  let t = exp(-2.0 * abs(x));
  let r = (1.0 - t) / (1.0 + t);
  return select(select(-r, r, x >= 0.0), x, isnan_f(x));
}
fn pow_f(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (isnan_f(a) || isnan_f(b)) { return nan_f(); }
  let bi = floor(b) == b;
  if (bi && abs(b) <= 4.0) {
    var r = 1.0;
    let n = i32(abs(b));
    for (var i = 0; i < n; i = i + 1) { r = r * a; }
    return select(r, 1.0 / r, b < 0.0);
  }
  if (a == 0.0) { return select(0.0, pinf_f(), b < 0.0); }
  let r = exp2(b * log2(abs(a)));
  if (a < 0.0) {
    if (!bi) { return nan_f(); }
    if (fract(b * 0.5) != 0.0) { return -r; }
  }
  return r;
}
// sin and cos of 2*pi*t (t in turns), accurate to ~1e-7 whatever the driver's sin/cos precision.
fn sincos_turns(t0: f32) -> vec2<f32> {
  let t = t0 - round(t0);
  let q = round(t * 4.0);
  let f = (t - q * 0.25) * 6.283185307179586;
  let f2 = f * f;
  let s = f * (1.0 + f2 * (-1.0 / 6.0 + f2 * (1.0 / 120.0 + f2 * (-1.0 / 5040.0 + f2 * (1.0 / 362880.0)))));
  let c = 1.0 + f2 * (-0.5 + f2 * (1.0 / 24.0 + f2 * (-1.0 / 720.0 + f2 * (1.0 / 40320.0))));
  let qi = (i32(q) % 4 + 4) % 4;
  if (qi == 0) { return vec2(s, c); }
  if (qi == 1) { return vec2(c, -s); }
  if (qi == 2) { return vec2(-s, -c); }
  return vec2(-c, s);
}
`;

export const PHILOX = /* wgsl */ `
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
  let lolo = a0 * b0; let hilo = a1 * b0; let lohi = a0 * b1; let hihi = a1 * b1;
  let cross = (lolo >> 16u) + (hilo & 0xffffu) + (lohi & 0xffffu);
  return vec2<u32>(hihi + (hilo >> 16u) + (lohi >> 16u) + (cross >> 16u), a * b);
}
fn philox(c: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var x = c;
  var k = key;
  for (var r = 0u; r < 10u; r = r + 1u) {
    if (r > 0u) { k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u); }
    let p0 = mulhilo(0xd2511f53u, x.x);
    let p1 = mulhilo(0xcd9e8d57u, x.z);
    x = vec4<u32>(p1.x ^ x.y ^ k.x, p1.y, p0.x ^ x.w ^ k.y, p0.y);
  }
  return x;
}
`;

/** WGSL declaration of a storage binding. */
export function decl(b: Binding, index: number, caps: Caps): string {
  const access = b.access === 'read' ? 'read' : 'read_write';
  if (b.vec4) return `@group(0) @binding(${index}) var<storage, ${access}> ${b.name}: array<vec4<f32>>;`;
  let elem: string;
  switch (b.dtype) {
    case 'float32':
      elem = 'f32';
      break;
    case 'int32':
      elem = 'i32';
      break;
    case 'bool':
      elem = 'u32';
      break;
    case 'float16':
    case 'bfloat16':
      if (b.dtype === 'float16' && caps.f16) elem = 'f16';
      else elem = b.access === 'read' ? 'u32' : 'atomic<u32>';
      break;
    default:
      throw new Error(`no WGSL type for ${b.dtype}`);
  }
  return `@group(0) @binding(${index}) var<storage, ${access}> ${b.name}: array<${elem}>;`;
}

/** `fn ld_NAME(i: u32) -> f32` and `fn ldi_NAME(i: u32) -> i32`. */
export function loader(b: Binding, caps: Caps): string {
  const n = b.name;
  let f: string;
  let word = `${n}[i >> 1u]`;
  if (isPacked(b.dtype, caps) && b.access !== 'read') word = `atomicLoad(&${n}[i >> 1u])`;
  switch (b.dtype) {
    case 'float32':
      f = `return ${n}[i];`;
      break;
    case 'int32':
    case 'bool':
      f = `return f32(${n}[i]);`;
      break;
    case 'float16':
      f = caps.f16 ? `return f32(${n}[i]);` : `return h2f((${word} >> ((i & 1u) * 16u)) & 0xffffu);`;
      break;
    case 'bfloat16':
      f = `return bf2f((${word} >> ((i & 1u) * 16u)) & 0xffffu);`;
      break;
    default:
      throw new Error(`no loader for ${b.dtype}`);
  }
  const fi = b.dtype === 'int32' ? `return ${n}[i];` : b.dtype === 'bool' ? `return i32(${n}[i]);` : `return i32(ld_${n}(i));`;
  return `fn ld_${n}(i: u32) -> f32 { ${f} }\nfn ldi_${n}(i: u32) -> i32 { ${fi} }\n`;
}

/** `fn st_NAME(i: u32, v: f32)` and `fn sti_NAME(i: u32, v: i32)`. */
export function storer(b: Binding, caps: Caps): string {
  const n = b.name;
  let f: string;
  const packedStore = (bits: string) =>
    `let sh = (i & 1u) * 16u; atomicAnd(&${n}[i >> 1u], ~(0xffffu << sh)); atomicOr(&${n}[i >> 1u], ${bits} << sh);`;
  switch (b.dtype) {
    case 'float32':
      f = `${n}[i] = v;`;
      break;
    case 'int32':
      f = `${n}[i] = i32(v);`;
      break;
    case 'bool':
      f = `${n}[i] = select(0u, 1u, v != 0.0 || isnan_f(v));`;
      break;
    case 'float16':
      f = caps.f16 ? `${n}[i] = bitcast<vec2<f16>>(f2h(v))[0];` : packedStore('f2h(v)');
      break;
    case 'bfloat16':
      f = packedStore('f2bf(v)');
      break;
    default:
      throw new Error(`no storer for ${b.dtype}`);
  }
  const fi = b.dtype === 'int32' ? `${n}[i] = v;` : b.dtype === 'bool' ? `${n}[i] = select(0u, 1u, v != 0);` : `st_${n}(i, f32(v));`;
  return `fn st_${n}(i: u32, v: f32) { ${f} }\nfn sti_${n}(i: u32, v: i32) { ${fi} }\n`;
}

/** Strided index of logical element `i` for the view whose metadata starts at word `base`. */
export function indexer(name: string, base: number, contiguous: boolean): string {
  if (contiguous) return `fn idx_${name}(i: u32) -> u32 { return md[${base}u] + i; }\n`;
  return `fn idx_${name}(i: u32) -> u32 {
  var r = i;
  var o = md[${base}u];
  let rank = i32(md[${base + 1}u]);
  for (var d = rank - 1; d >= 0; d = d - 1) {
    let s = md[${base + 2}u + u32(d)];
    o = o + (r % s) * md[${base + 2 + MAX_RANK}u + u32(d)];
    r = r / s;
  }
  return o;
}\n`;
}

export function header(caps: Caps, bindings: Binding[], extra = ''): string {
  const lines: string[] = [];
  if (caps.f16 && bindings.some((b) => b.dtype === 'float16')) lines.push('enable f16;');
  lines.push('@group(0) @binding(0) var<storage, read> md: array<u32>;');
  bindings.forEach((b, i) => lines.push(decl(b, i + 1, caps)));
  lines.push(COMMON);
  for (const b of bindings) {
    if (b.access !== 'write' && !b.vec4) lines.push(loader(b, caps));
    if (b.access !== 'read') lines.push(storer(b, caps));
  }
  lines.push(extra);
  return lines.join('\n');
}

/** Entry point that gives one invocation per linear id over a 2-D grid of 1-D workgroups. */
export function linearMain(wg: number, body: string): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let gid = (wid.x + wid.y * nwg.x) * ${wg}u + li;
${body}
}`;
}
