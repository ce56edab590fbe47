import type { View } from '@kiln/tensor-core';

/** A contiguous float32 view of `shape` filled with a seeded LCG in [-1, 1): backend-level kernel inputs. */
export function seededView(shape: number[], seed: number): View<Float32Array> {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed * 7919 + 1;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2 ** 32) * 2 - 1;
  }
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  return { storage: data, dtype: 'float32', shape, strides, offset: 0 };
}
