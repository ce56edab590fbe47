import type { Backend } from '../backend.js';
import { backendByName, getBackend } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';
import { assertDType, f32ToBf16Bits, f32ToF16Bits, isFloat } from '../dtype.js';
import { ArgumentError, BackendError, DTypeError, ShapeError } from '../errors.js';
import type { Generator } from '../random.js';
import { draw, philoxFill, philoxIntegers } from '../random.js';
import { assertShape, fmt, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { make } from './dispatch.js';

/** Options of every tensor factory: dtype, backend, and whether it is a leaf that needs gradients. @example k.zeros([2, 2], { dtype: 'float16', device: 'wasm', requiresGrad: false }); */
export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  /** A backend name (initialised with `useBackend`/`initBackend`); the selected one by default. */
  device?: string;
}

/** Options of the random factories: a `seed` (block 0 of it, every call) or a `generator` (advances). @example k.randn([4], { seed: 1 }); k.rand([4], { generator: g, dtype: 'bfloat16' }); */
export interface RandomOptions extends CreateOptions {
  /** Draw from this seed, starting at block 0 every call (so equal seeds give equal numbers). */
  seed?: number;
  /** Draw from this generator, which advances (`k.defaultGenerator` when neither is given). */
  generator?: Generator;
}

/** Nested arrays (or a scalar) that `k.tensor` accepts. @example k.tensor([[1, 2], [3, 4]]); // shape [2, 2], float32 */
export type NestedData = number | boolean | readonly NestedData[];

function target(options: CreateOptions): Backend {
  return options.device ? backendByName(options.device) : getBackend();
}

/** Checks a shape argument: non-negative integers, with a safe element count. */
function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new ShapeError(`${op}: shape must be an array of sizes, got ${String(shape)}`);
  assertShape(shape, `${op}: shape`);
  if (!Number.isSafeInteger(numel(shape))) throw new ShapeError(`${op}: shape ${fmt(shape)} has more than 2^53 elements`);
}

/**
 * Runs a backend allocation for `op`; a size the backend cannot hold (the typed-array length
 * limit, a wasm or GPU buffer limit) becomes a `BackendError` naming the op, shape and dtype.
 */
export function allocating<T>(op: string, b: Backend, shape: readonly number[], dtype: DType, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const n = numel(shape);
    throw new BackendError(`${op}: backend '${b.name}' cannot hold shape ${fmt(shape)} (${n} elements of ${dtype}): ${err.message}`, {
      cause: err,
    });
  }
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
    if (fmt(s) !== fmt(inner))
      throw new ShapeError(`tensor: ragged nested array: ${path}[${i}] has shape ${fmt(s)}, ${path}[0] has ${fmt(inner)}`);
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
  const dtype = options.dtype !== undefined ? assertDType(options.dtype, 'tensor: dtype') : naturalDType(data);
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
  checkShape('tensor', shape);
  if (numel(shape) !== flat.length) {
    throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmt(shape)} (${numel(shape)} elements)`);
  }
  const b = target(options);
  return finish(
    make(
      b,
      allocating('tensor', b, shape, dtype, () => b.upload(dtype, encode(dtype, flat))),
      dtype,
      shape,
    ),
    options,
  );
}

/**
 * A tensor of `shape` filled with `value`.
 *
 * @example
 * ```ts
 * k.full([2, 2], 0.5); // [[0.5, 0.5], [0.5, 0.5]]
 * ```
 */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  const dtype = options.dtype !== undefined ? assertDType(options.dtype, 'full: dtype') : typeof value === 'boolean' ? 'bool' : 'float32';
  const b = target(options);
  return finish(
    make(
      b,
      allocating('full', b, shape, dtype, () => b.fill(dtype, numel(shape), value)),
      dtype,
      shape,
    ),
    options,
  );
}

/** A tensor of zeros (`torch.zeros`). @example k.zeros([2, 3], { dtype: 'float16' }); */
export const zeros = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 0, options);
/** A tensor of ones (`torch.ones`). @example k.ones([4]); */
export const ones = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 1, options);

const likeOpts = <O extends CreateOptions>(x: Tensor, options: O): O => ({ dtype: x.dtype, device: x.device, ...options });
/** Zeros with the shape, dtype and backend of `x`. @example const g = k.zerosLike(param); */
export const zerosLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape, 0, likeOpts(x, options));
/** Ones with the shape, dtype and backend of `x`. @example const w = k.onesLike(mask); */
export const onesLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape, 1, likeOpts(x, options));

/** `[start, start + step, …)` below `end`, like `torch.arange`; float32 unless all arguments are integers. @example k.arange(5); // [0, 1, 2, 3, 4] */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const [name, v] of [
    ['start', start],
    ['end', end],
    ['step', step],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`arange: ${name} must be a finite number, got ${String(v)}`);
  }
  if (step === 0) throw new ArgumentError('arange: step must not be 0');
  const n = Math.max(Math.ceil((end - start) / step), 0);
  if (!Number.isSafeInteger(n)) throw new ArgumentError(`arange: [${start}, ${end}) in steps of ${step} has too many elements (${n})`);
  const ints = [start, end, step].every(Number.isInteger);
  const dtype = options.dtype !== undefined ? assertDType(options.dtype, 'arange: dtype') : ints ? 'int32' : 'float32';
  const values = allocating('arange', target(options), [n], dtype, () => new Float64Array(n));
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  return tensor(values, { ...options, dtype, shape: [n] });
}

/** `steps` evenly spaced values from `start` to `end` inclusive. @example k.linspace(0, 1, 5); // [0, 0.25, 0.5, 0.75, 1] */
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  if (!Number.isSafeInteger(steps) || steps < 0) throw new ArgumentError(`linspace: steps must be a non-negative integer, got ${steps}`);
  const values = allocating('linspace', target(options), [steps], options.dtype ?? 'float32', () => new Float64Array(steps));
  for (let i = 0; i < steps; i++) values[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return tensor(values, { dtype: 'float32', ...options, shape: [steps] });
}

function random(op: string, dist: 'uniform' | 'normal', shape: readonly number[], options: RandomOptions): Tensor {
  checkShape(op, shape);
  const dtype = options.dtype !== undefined ? assertDType(options.dtype, `${op}: dtype`) : 'float32';
  if (!isFloat(dtype)) throw new DTypeError(`${op}: dtype must be a float type, got ${dtype}`);
  const b = target(options);
  const n = numel(shape);
  const storage = draw(n, options.seed, options.generator, (key, counter) =>
    allocating(op, b, shape, dtype, () =>
      b.random
        ? b.random(dist, dtype, n, key, counter)
        : b.upload(dtype, encode(dtype, philoxFill(dist, new Float64Array(n), key, counter))),
    ),
  );
  return finish(make(b, storage, dtype, shape), options);
}

/**
 * Standard normal samples from the Philox generator: the same numbers for the same seed (or
 * generator state) on every backend.
 *
 * @example
 * ```ts
 * const noise = k.randn([1, 4, 64, 64], { seed: 42 });
 * const g = new k.Generator(42);
 * const n1 = k.randn([2], { generator: g }); // g advances: the next draw differs
 * ```
 */
export const randn = (shape: readonly number[], options: RandomOptions = {}): Tensor => random('randn', 'normal', shape, options);

/**
 * Uniform samples in [0, 1).
 *
 * @example
 * ```ts
 * const flip = k.rand([batch], { generator: g }).lt(0.5); // a random horizontal flip mask
 * ```
 */
export const rand = (shape: readonly number[], options: RandomOptions = {}): Tensor => random('rand', 'uniform', shape, options);

/**
 * Standard normal samples shaped like `x` (its dtype and backend unless `options` says otherwise), `torch.randn_like`.
 *
 * @example
 * ```ts
 * const noise = k.randnLike(latents, { generator: g });
 * ```
 */
export const randnLike = (x: Tensor, options: RandomOptions = {}): Tensor => randn(x.shape, likeOpts(x, options));

/**
 * Uniform samples in [0, 1) shaped like `x`, `torch.rand_like`.
 *
 * @example
 * ```ts
 * const u = k.randLike(x, { seed: 1 });
 * ```
 */
export const randLike = (x: Tensor, options: RandomOptions = {}): Tensor => rand(x.shape, likeOpts(x, options));

/** Inclusive bounds of the integers each dtype holds exactly. */
const INT_RANGE: Record<DType, readonly [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  bool: [0, 1],
  float16: [-2048, 2048],
  bfloat16: [-256, 256],
  float32: [-(2 ** 24), 2 ** 24],
  float64: [-(2 ** 53), 2 ** 53],
};

/**
 * Integers uniform in [low, high), int32 by default (e.g. diffusion timesteps), `torch.randint`.
 * `high - 1` and `low` must fit the dtype; the range may span up to 2^32 integers.
 *
 * @example
 * ```ts
 * const t = k.randint(0, 1000, [batch], { generator: g });
 * ```
 */
export function randint(low: number, high: number, shape: readonly number[], options: RandomOptions = {}): Tensor {
  if (!Number.isSafeInteger(low)) throw new ArgumentError(`randint: low must be an integer, got ${low}`);
  if (!Number.isSafeInteger(high)) throw new ArgumentError(`randint: high must be an integer, got ${high}`);
  if (high <= low) throw new ArgumentError(`randint: needs low < high, got [${low}, ${high})`);
  checkShape('randint', shape);
  const dtype = options.dtype !== undefined ? assertDType(options.dtype, 'randint: dtype') : 'int32';
  const [lo, hi] = INT_RANGE[dtype];
  if (low < lo) throw new ArgumentError(`randint: low ${low} is below the smallest ${dtype} (${lo})`);
  if (high - 1 > hi) throw new ArgumentError(`randint: high ${high} is above the largest ${dtype} + 1 (${hi + 1}); high is exclusive`);
  if (high - low > 2 ** 32) throw new ArgumentError(`randint: the range [${low}, ${high}) spans more than 2^32 integers`);
  const n = numel(shape);
  const values = allocating('randint', target(options), shape, dtype, () => new Float64Array(n));
  return draw(n, options.seed, options.generator, (key, counter) =>
    tensor(philoxIntegers(values, key, counter, low, high - low), { ...options, dtype, shape }),
  );
}

/**
 * Integers uniform in [low, high) shaped like `x`, with its dtype and backend unless `options` says otherwise (`torch.randint_like`).
 *
 * @example
 * ```ts
 * const t = k.randintLike(ids, 0, 1000, { seed: 3 });
 * ```
 */
export const randintLike = (x: Tensor, low: number, high: number, options: RandomOptions = {}): Tensor =>
  randint(low, high, x.shape, likeOpts(x, options));
