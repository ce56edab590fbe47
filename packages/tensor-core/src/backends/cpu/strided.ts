import type { View } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../dtype.js';
import { isContiguous, numel } from '../../shape.js';

/** A `View` onto the cpu backend's storage (a typed array). @example function firstElement(x: k.CpuView): number { return Number(x.storage[x.offset]); } */
export type CpuView = View<TypedArray>;

/** Storage offset of every element of a strided view, in logical order (null when contiguous). */
export function offsets(shape: readonly number[], strides: readonly number[], offset: number): Int32Array | null {
  if (isContiguous(shape, strides)) return null;
  const n = numel(shape);
  const out = new Int32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = offset;
  const last = rank - 1;
  const lastSize = shape[last];
  const lastStride = strides[last];
  for (let i = 0; i < n;) {
    for (let j = 0; j < lastSize; j++) out[i++] = off + j * lastStride;
    // Odometer over the leading dims.
    let d = last - 1;
    while (d >= 0) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return out;
}

function decoder(dtype: DType): ((v: number) => number) | null {
  if (dtype === 'float16') return f16BitsToF32;
  if (dtype === 'bfloat16') return bf16BitsToF32;
  return null;
}

/** A view's elements in logical order, as f64 numbers (the cpu backend computes in f64). */
export function load(v: CpuView): Float64Array {
  const n = numel(v.shape);
  const src = v.storage;
  const out = new Float64Array(n);
  const dec = decoder(v.dtype);
  const idx = offsets(v.shape, v.strides, v.offset);
  if (idx === null) {
    const o = v.offset;
    if (dec) for (let i = 0; i < n; i++) out[i] = dec(src[o + i]);
    else for (let i = 0; i < n; i++) out[i] = src[o + i];
  } else if (dec) for (let i = 0; i < n; i++) out[i] = dec(src[idx[i]]);
  else for (let i = 0; i < n; i++) out[i] = src[idx[i]];
  return out;
}

export function allocTyped(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'bool':
      return new Uint8Array(size);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(size);
  }
}

/** Encodes one number for a dtype's storage (f32 rounding happens in Float32Array itself). */
export function encoder(dtype: DType): ((v: number) => number) | null {
  if (dtype === 'float16') return f32ToF16Bits;
  if (dtype === 'bfloat16') return f32ToBf16Bits;
  if (dtype === 'bool') return (v) => (v !== 0 ? 1 : 0);
  return null;
}

/** f64 values → fresh storage of `dtype`. */
export function store(dtype: DType, values: Float64Array): TypedArray {
  if (dtype === 'float64') return values;
  const out = allocTyped(dtype, values.length);
  const enc = encoder(dtype);
  if (enc) for (let i = 0; i < values.length; i++) out[i] = enc(values[i]);
  else out.set(values);
  return out;
}
