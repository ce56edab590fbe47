import type { Backend } from '../backend.js';
import { backendByName } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';
import { bf16BitsToF32, f16BitsToF32, isFloat } from '../dtype.js';
import { BackendError, KilnError, ShapeError } from '../errors.js';
import { Buffer, isGradEnabled } from '../runtime.js';
import { fmt, numel, sameShape } from '../shape.js';
import type { GradNode, Tensor } from '../tensor.js';

/** A JS number or boolean standing in for a 0-d tensor, as Python scalars do in PyTorch. @example x.mul(0.5).add(true); // numbers and booleans mix with tensors */
export type Scalar = number | boolean;

type TensorConstructor = new (buf: Buffer, shape: readonly number[], strides?: readonly number[], offset?: number) => Tensor;
let TensorClass: TensorConstructor | null = null;

/**
 * Called once by `tensor.ts` as it loads. The ops make tensors through this instead of importing
 * the class, because the class's methods import the ops: tensor.ts → ops → tensor.ts would be an
 * import cycle, and a module in a cycle can run before the other half has initialised.
 */
export function provideTensorClass(cls: TensorConstructor): void {
  TensorClass = cls;
}

function newTensor(buf: Buffer, shape: readonly number[], strides?: readonly number[], offset?: number): Tensor {
  if (!TensorClass) throw new KilnError("the Tensor class was not loaded; import ops through '@kiln/tensor-core'");
  return new TensorClass(buf, shape, strides, offset);
}

/** Wraps a fresh contiguous storage that a kernel returned. */
export function make(backend: Backend, storage: unknown, dtype: DType, shape: readonly number[]): Tensor {
  return newTensor(new Buffer(backend, storage, dtype, numel(shape)), shape);
}

/** A new handle on `x`'s storage with other shape/strides/offset (no copy). */
export function viewOf(x: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  x._view(); // throws if disposed
  return newTensor(x._buf.retain(), shape, strides, offset);
}

/** Whether `record` will attach a gradient rule for these inputs: autograd is on and one is tracked. */
export function willRecord(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

/**
 * Attaches a gradient rule to `out` when autograd is on and an input is tracked; `release` frees
 * what the rule saved (see `GradNode.release`), at once when no rule is attached.
 *
 * @example const y = k.recordGrad(out, 'myOp', [x], (g) => [k.mul(g, 2)]); // a custom op's gradient rule
 */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward'], release?: () => void): Tensor {
  if (willRecord(inputs)) {
    out.requiresGrad = true;
    out._node = { op, inputs, backward, release };
  } else release?.();
  return out;
}

/** The backend all `tensors` live on; a clear error when they differ or one was disposed. */
export function backendOf(op: string, ...tensors: Tensor[]): Backend {
  const b = tensors[0]._backend();
  for (const t of tensors) {
    if (t._backend() !== b) {
      throw new BackendError(`${op}: tensors are on different backends (${b.name} and ${t.device}); move one with toBackend()`);
    }
  }
  return b;
}

export function isFloatTensor(x: Tensor): boolean {
  return isFloat(x.dtype);
}

export function assertRank(op: string, x: Tensor, rank: number, what = 'input'): void {
  if (x.ndim !== rank) throw new ShapeError(`${op}: ${what} must be ${rank}-D, got shape ${fmt(x.shape)}`);
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) throw new ShapeError(`${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} must match`);
}

export function assertFloat(op: string, x: Tensor): void {
  if (!isFloat(x.dtype)) throw new KilnError(`${op}: needs a float tensor, got ${x.dtype}`);
}

/** A 0-d tensor on `backend`. */
export function scalarTensor(backend: Backend, value: number, dtype: DType): Tensor {
  return make(backend, backend.fill(dtype, 1, value), dtype, []);
}

/** The elements of `x` in row-major order; half types widened to f32. */
export async function readData(x: Tensor): Promise<TypedArray> {
  const raw = await x._backend().download(x._view());
  if (x.dtype === 'float16' || x.dtype === 'bfloat16') {
    const dec = x.dtype === 'float16' ? f16BitsToF32 : bf16BitsToF32;
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = dec(raw[i]);
    return out;
  }
  return raw;
}

/**
 * A copy of `x` on another initialised backend, keeping dtype, shape and requiresGrad.
 *
 * @example
 * ```ts
 * await k.initBackend('cpu');
 * const onCpu = await k.toBackend(x, 'cpu');
 * ```
 */
export async function toBackend(x: Tensor, name: string): Promise<Tensor> {
  const target = backendByName(name);
  const raw = await x._backend().download(x._view());
  const out = make(target, target.upload(x.dtype, raw), x.dtype, x.shape);
  out.requiresGrad = x.requiresGrad;
  return out;
}

/** A handle on the same data without graph history. @example const target = k.detach(prediction); // no gradient flows into target */
export function detach(x: Tensor): Tensor {
  return viewOf(x, x.shape, x.strides, x.offset);
}

/** Moves `value`'s storage into `target` (same shape and dtype), as optimizers need. */
export function assign(target: Tensor, value: Tensor): void {
  assertSameShape('assign_', target, value);
  if (target.dtype !== value.dtype) throw new KilnError(`assign_: dtype ${value.dtype} does not match ${target.dtype}`);
  const b = backendOf('assign_', target, value);
  let src = value;
  if (!value.isContiguous() || value.offset !== 0 || value._buf.size !== numel(value.shape)) {
    src = make(b, b.unary('copy', value._view(), value.dtype), value.dtype, value.shape);
  } else src = viewOf(value, value.shape, value.strides, 0);
  const old = target._buf;
  target._buf = src._buf.retain();
  (target as { strides: readonly number[] }).strides = src.strides;
  (target as { offset: number }).offset = 0;
  src.dispose();
  old.release();
}
