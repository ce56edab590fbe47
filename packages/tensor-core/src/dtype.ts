import { DTypeError } from './errors.js';

/**
 * Element types. `float16` and `bfloat16` are storage types: values are computed in f32 and
 * rounded when stored. `float64` exists for gradient checks on the `cpu` backend.
 *
 * @example
 * ```ts
 * const dtype: k.DType = 'bfloat16';
 * k.zeros([2], { dtype });
 * ```
 */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int32' | 'bool';

/** Every dtype name Kiln knows. @example k.DTYPES.includes('bfloat16'); // true */
export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'float64', 'int32', 'bool'];

/** The flat array type a tensor's data is read back as. @example const raw: k.TypedArray = await x.data(); */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/** What `Tensor.data()` returns for each dtype (half types are widened to f32). @example const f: k.DataFor<'int32'> = new Int32Array(4); // what data() gives for int32 */
export type DataFor<D extends DType> = D extends 'float64'
  ? Float64Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'bool'
      ? Uint8Array
      : Float32Array;

/** Bytes per element of a dtype. @example k.itemSize('float16'); // 2 */
export function itemSize(dtype: DType): number {
  switch (dtype) {
    case 'float64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'bool':
      return 1;
  }
}

/** Whether a dtype is a floating-point type (gradients need one). @example k.isFloat('bfloat16'); // true; k.isFloat('int32') is false */
export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64';
}

/**
 * `dtype` as a `DType`, or a `DTypeError` naming `what` and the known dtypes: the check for a
 * dtype read from a file or a config.
 *
 * @example
 * ```ts
 * k.assertDType('float16'); // 'float16'
 * k.assertDType('int64', 'config.dtype'); // throws DTypeError: config.dtype: unknown dtype "int64"; …
 * ```
 */
export function assertDType(dtype: unknown, what = 'dtype'): DType {
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw new DTypeError(`${what}: unknown dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(', ')}`);
  }
  return dtype as DType;
}

const RANK: Record<DType, number> = { bool: 0, int32: 1, bfloat16: 2, float16: 2, float32: 3, float64: 4 };

/** PyTorch's promotion for two tensors: float beats int beats bool; f16 with bf16 gives f32. @example k.promoteTypes('float16', 'bfloat16'); // 'float32' */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if ((a === 'float16' && b === 'bfloat16') || (a === 'bfloat16' && b === 'float16')) return 'float32';
  return RANK[a] >= RANK[b] ? a : b;
}

/** A JS number joins a tensor like a PyTorch Python scalar: it never widens a float tensor. */
export function promoteWithScalar(t: DType, value: number | boolean): DType {
  if (typeof value === 'boolean') return t;
  if (isFloat(t)) return t;
  return Number.isInteger(value) ? (t === 'bool' ? 'int32' : t) : 'float32';
}

// Half-precision conversions, shared by every backend that stores halves as u16 bits.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → IEEE binary16 bits, round to nearest even (what PyTorch's `.half()` does). @example k.f32ToF16Bits(1); // 0x3c00 */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** The value of IEEE half-precision bits. @example k.f16BitsToF32(0x3c00); // 1 */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** f32 → bfloat16 bits, round to nearest even; NaN stays NaN. @example k.f32ToBf16Bits(1); // 0x3f80 */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** The value of bfloat16 bits. @example k.bf16BitsToF32(0x3f80); // 1 */
export function bf16BitsToF32(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}
