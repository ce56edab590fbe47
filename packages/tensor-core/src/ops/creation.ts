import type { Backend } from '../backend.js';
import { backendByName, getBackend } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';
import { assertDType, f32ToBf16Bits, f32ToF16Bits, isFloat } from '../dtype.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { nextDraw, philoxFill } from '../random.js';
import { assertShape, fmt, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { make } from './dispatch.js';

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  /** A backend name (initialised with `useBackend`/`initBackend`); the selected one by default. */
  device?: string;
}

export interface RandomOptions extends CreateOptions {
  /** Draw from this seed (counter 0) instead of the global generator. */
  seed?: number;
}

/** Nested arrays (or a scalar) that `k.tensor` accepts. */
export type NestedData = number | boolean | readonly NestedData[];

function target(options: CreateOptions): Backend {
  return options.device ? backendByName(options.device) : getBackend();
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** Encodes f64 numbers into a dtype's storage layout (halves as u16 bits). */
export function encode(dtype: DType, values: ArrayLike<number>): TypedArray {
  const n = values.length;
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int32':
      return Int32Array.from(values);
    case 'bool':
      return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]);
      return out;
    }
    case 'bfloat16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(values[i]);
      return out;
    }
  }
}

function inferShape(data: NestedData, path = 'data'): number[] {
  if (!Array.isArray(data)) return [];
  if (data.length === 0) return [0];
  const inner = inferShape(data[0] as NestedData, `${path}[0]`);
  for (let i = 1; i < data.length; i++) {
    const s = inferShape(data[i] as NestedData, `${path}[${i}]`);
    if (fmt(s) !== fmt(inner)) throw new ShapeError(`tensor: ragged nested array: ${path}[${i}] has shape ${fmt(s)}, ${path}[0] has ${fmt(inner)}`);
  }
  return [data.length, ...inner];
}

function naturalDType(data: unknown): DType {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'bool';
  let v: unknown = data;
  while (Array.isArray(v)) v = v[0];
  return typeof v === 'boolean' ? 'bool' : 'float32';
}

/**
 * A tensor from nested arrays, a flat array or typed array (with `shape`), or a scalar.
 * Numbers default to float32; typed arrays keep their type (Float64Array → float64, …).
 *
 * @example
 * ```ts
 * const w = k.tensor([[1], [2], [3]], { requiresGrad: true });
 * const m = k.tensor(new Float32Array(6), { shape: [2, 3] });
 * ```
 */
export function tensor(
  data: NestedData | ArrayLike<number> | TypedArray,
  options: CreateOptions & { shape?: readonly number[] } = {},
): Tensor {
  const dtype = options.dtype ? assertDType(options.dtype) : naturalDType(data);
  let flat: ArrayLike<number>;
  let shape: readonly number[];
  if (typeof data === 'number' || typeof data === 'boolean') {
    flat = [Number(data)];
    shape = [];
  } else if (ArrayBuffer.isView(data)) {
    flat = data as TypedArray;
    shape = options.shape ?? [flat.length];
  } else {
    const nested = data as readonly NestedData[];
    const inferred = inferShape(nested as NestedData);
    flat = (nested as unknown[]).flat(Infinity).map(Number);
    shape = options.shape ?? inferred;
  }
  assertShape(shape);
  if (numel(shape) !== flat.length) {
    throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmt(shape)} (${numel(shape)} elements)`);
  }
  const b = target(options);
  return finish(make(b, b.upload(dtype, encode(dtype, flat)), dtype, shape), options);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  assertShape(shape);
  const dtype = options.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32');
  const b = target(options);
  return finish(make(b, b.fill(dtype, numel(shape), value), dtype, shape), options);
}

export const zeros = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 0, options);
export const ones = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 1, options);

const likeOpts = (x: Tensor, options: CreateOptions): CreateOptions => ({ dtype: x.dtype, device: x.device, ...options });
export const zerosLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape, 0, likeOpts(x, options));
export const onesLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape, 1, likeOpts(x, options));

/** `[start, start + step, …)` below `end`, like `torch.arange`; float32 unless all arguments are integers. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new ArgumentError('arange: step must not be 0');
  const n = Math.max(Math.ceil((end - start) / step), 0);
  const values = Array.from({ length: n }, (_, i) => start + i * step);
  const ints = [start, end, step].every(Number.isInteger);
  return tensor(values, { dtype: ints ? 'int32' : 'float32', ...options, shape: [n] });
}

/** `steps` evenly spaced values from `start` to `end` inclusive. */
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  const values = Array.from({ length: steps }, (_, i) => (steps === 1 ? start : start + ((end - start) * i) / (steps - 1)));
  return tensor(values, { ...options, shape: [steps] });
}

function random(dist: 'uniform' | 'normal', shape: readonly number[], options: RandomOptions): Tensor {
  assertShape(shape);
  const dtype = options.dtype ?? 'float32';
  if (!isFloat(dtype)) throw new ArgumentError(`${dist === 'normal' ? 'randn' : 'rand'}: dtype must be a float type, got ${dtype}`);
  const n = numel(shape);
  const { key, counter } = nextDraw(n, options.seed);
  const b = target(options);
  const storage = b.random
    ? b.random(dist, dtype, n, key, counter)
    : b.upload(dtype, encode(dtype, philoxFill(dist, new Float64Array(n), key, counter)));
  return finish(make(b, storage, dtype, shape), options);
}

/**
 * Standard normal samples from the Philox generator: the same numbers for the same seed on every backend.
 *
 * @example
 * ```ts
 * const noise = k.randn([1, 4, 64, 64], { seed: 42 });
 * ```
 */
export const randn = (shape: readonly number[], options: RandomOptions = {}): Tensor => random('normal', shape, options);

/** Uniform samples in [0, 1). */
export const rand = (shape: readonly number[], options: RandomOptions = {}): Tensor => random('uniform', shape, options);

/** Integers uniform in [low, high), int32 (e.g. diffusion timesteps). */
export function randint(low: number, high: number, shape: readonly number[], options: RandomOptions = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new ArgumentError(`randint: needs integers low < high, got [${low}, ${high})`);
  }
  const n = numel(shape);
  const { key, counter } = nextDraw(n, options.seed);
  const u = philoxFill('uniform', new Float64Array(n), key, counter);
  const values = u.map((x) => low + Math.floor(x * (high - low)));
  return tensor(values, { ...options, dtype: options.dtype ?? 'int32', shape });
}
