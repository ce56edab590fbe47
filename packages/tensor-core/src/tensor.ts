import type { Backend, View } from './backend.js';
import type { DataFor, DType } from './dtype.js';
import { DisposedError, KilnError } from './errors.js';
import { Buffer, stats, track } from './runtime.js';
import { contiguousStrides, isContiguous, normDim, numel } from './shape.js';
import * as ops from './ops/index.js';
import type { Scalar } from './ops/index.js';
import { backward } from './autograd.js';

/** How a tensor was made, for reverse-mode autograd: its inputs and the vector-Jacobian product. @example const y = k.recordGrad(out, 'double', [x], (g) => [k.mul(g, 2)]); // becomes y's GradNode */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input (null where an input gets none), written with tensor ops. */
  readonly backward: (grad: Tensor) => readonly (Tensor | null)[];
  /**
   * Frees what the rule saved beyond its inputs (e.g. a norm's statistics), once the graph through
   * this node is freed: after a `backward()` that does not retain it, or when the output is disposed.
   */
  readonly release?: () => void;
}

/** What `toArray()` returns: nested arrays of numbers (booleans for bool tensors). @example await k.tensor([[1, 2], [3, 4]]).toArray(); // [[1, 2], [3, 4]] */
export type NestedArray = number | boolean | NestedArray[];

/**
 * An n-dimensional array on a backend, with PyTorch's methods (camel-cased). Ops run at once and
 * return new tensors; only reads (`data`, `toArray`, `item`) are async. Views (`reshape`,
 * `transpose`, `slice`, `expand`, …) share storage with their source.
 *
 * @example
 * ```ts
 * const w = k.tensor([[1], [2], [3]], { requiresGrad: true });
 * const loss = k.randn([2, 3], { seed: 42 }).matmul(w).square().mean();
 * loss.backward();
 * await w.grad!.data(); // Float32Array(3)
 * ```
 */
export class Tensor {
  /** @internal */ _buf: Buffer;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Offset of element 0 in the storage, in elements. */
  readonly offset: number;
  /** Whether autograd tracks this tensor; set it on leaves with `requiresGrad_()`. */
  requiresGrad = false;
  /** The gradient accumulated by `backward()` (leaves only). */
  grad: Tensor | null = null;
  /** @internal */ _node: GradNode | null = null;
  private disposed = false;

  /** @internal Use `k.tensor`, `k.zeros`, … to make tensors. */
  constructor(buf: Buffer, shape: readonly number[], strides?: readonly number[], offset = 0) {
    this._buf = buf;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    stats(buf.backend.name).liveTensors++;
    track(this);
  }

  get dtype(): DType {
    return this._buf.dtype;
  }
  /** Name of the backend that holds the data. */
  get device(): string {
    return this._buf.backend.name;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.disposed;
  }
  /** True for tensors made by ops on tracked inputs (not leaves). */
  get isLeaf(): boolean {
    return this._node === null;
  }
  numel(): number {
    return numel(this.shape);
  }
  /** The shape, or one dim of it (negative dims count from the end). */
  size(): readonly number[];
  size(dim: number): number;
  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    return this.shape[normDim(dim, this.ndim, 'size')];
  }
  isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** @internal The backend view of this tensor; throws if disposed. */
  _view(): View {
    if (this.disposed) throw new DisposedError(`tensor of shape [${this.shape.join(', ')}] was used after dispose()`);
    return { storage: this._buf.data, dtype: this.dtype, shape: this.shape, strides: this.strides, offset: this.offset };
  }
  /** @internal */
  _backend(): Backend {
    if (this.disposed) throw new DisposedError(`tensor of shape [${this.shape.join(', ')}] was used after dispose()`);
    return this._buf.backend;
  }

  // Reads -----------------------------------------------------------------------------------

  /** The elements in row-major order (half types widened to Float32Array). */
  async data<D extends DType = DType>(): Promise<DataFor<D>> {
    return (await ops.readData(this)) as DataFor<D>;
  }
  /** The elements as nested arrays, like `torch.Tensor.tolist()`. */
  async toArray(): Promise<NestedArray> {
    const flat = await this.data();
    const isBool = this.dtype === 'bool';
    let i = 0;
    const build = (d: number): NestedArray =>
      d === this.ndim ? (isBool ? flat[i++] !== 0 : flat[i++]) : Array.from({ length: this.shape[d] }, () => build(d + 1));
    return build(0);
  }
  /** The single element of a one-element tensor. */
  async item(): Promise<number> {
    if (this.numel() !== 1) throw new KilnError(`item() needs a one-element tensor, got shape [${this.shape.join(', ')}]`);
    return (await this.data())[0];
  }

  // Memory ----------------------------------------------------------------------------------

  /** Frees this handle; the storage goes back when no view uses it. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this._node?.release?.();
    this._node = null;
    stats(this._buf.backend.name).liveTensors--;
    this._buf.release();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Replaces this tensor's contents with `value`'s (same shape and dtype), keeping the handle:
   * how optimizers update parameters that modules hold. Outside autograd.
   */
  assign_(value: Tensor): this {
    ops.assign(this, value);
    return this;
  }

  // Autograd --------------------------------------------------------------------------------

  /** Computes gradients of this tensor w.r.t. every leaf that requires grad, into their `.grad`. */
  backward(grad?: Tensor, options: { retainGraph?: boolean } = {}): void {
    backward(this, grad, options.retainGraph ?? false);
  }
  /** Marks a leaf as trainable (or frozen). Returns this. */
  requiresGrad_(requiresGrad = true): this {
    if (!this.isLeaf) throw new KilnError('requiresGrad_ can only be set on leaf tensors; use detach() first');
    if (requiresGrad && !ops.isFloatTensor(this)) throw new KilnError(`only float tensors can require grad, got ${this.dtype}`);
    this.requiresGrad = requiresGrad;
    return this;
  }
  /** A view of the same data, cut from the graph. */
  detach(): Tensor {
    return ops.detach(this);
  }

  // Elementwise -----------------------------------------------------------------------------

  add(other: Tensor | Scalar, alpha?: number): Tensor {
    return ops.add(this, other, alpha);
  }
  sub(other: Tensor | Scalar, alpha?: number): Tensor {
    return ops.sub(this, other, alpha);
  }
  mul(other: Tensor | Scalar): Tensor {
    return ops.mul(this, other);
  }
  div(other: Tensor | Scalar): Tensor {
    return ops.div(this, other);
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return ops.pow(this, exponent);
  }
  maximum(other: Tensor | Scalar): Tensor {
    return ops.maximum(this, other);
  }
  minimum(other: Tensor | Scalar): Tensor {
    return ops.minimum(this, other);
  }
  clamp(min?: number, max?: number): Tensor {
    return ops.clamp(this, min, max);
  }
  eq(other: Tensor | Scalar): Tensor {
    return ops.eq(this, other);
  }
  ne(other: Tensor | Scalar): Tensor {
    return ops.ne(this, other);
  }
  lt(other: Tensor | Scalar): Tensor {
    return ops.lt(this, other);
  }
  le(other: Tensor | Scalar): Tensor {
    return ops.le(this, other);
  }
  gt(other: Tensor | Scalar): Tensor {
    return ops.gt(this, other);
  }
  ge(other: Tensor | Scalar): Tensor {
    return ops.ge(this, other);
  }
  logicalNot(): Tensor {
    return ops.logicalNot(this);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  sign(): Tensor {
    return ops.sign(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  rsqrt(): Tensor {
    return ops.rsqrt(this);
  }
  reciprocal(): Tensor {
    return ops.reciprocal(this);
  }
  square(): Tensor {
    return ops.square(this);
  }
  sin(): Tensor {
    return ops.sin(this);
  }
  cos(): Tensor {
    return ops.cos(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  silu(): Tensor {
    return ops.silu(this);
  }
  gelu(options?: { approximate?: 'none' | 'tanh' }): Tensor {
    return ops.gelu(this, options);
  }
  erf(): Tensor {
    return ops.erf(this);
  }
  floor(): Tensor {
    return ops.floor(this);
  }
  /** True where NaN (bool). */
  isnan(): Tensor {
    return ops.isnan(this);
  }
  /** True where neither NaN nor ±Infinity (bool). */
  isfinite(): Tensor {
    return ops.isfinite(this);
  }
  /** True where ±Infinity (bool). */
  isinf(): Tensor {
    return ops.isinf(this);
  }

  // Reductions ------------------------------------------------------------------------------

  sum(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.sum(this, dim, keepdim);
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.mean(this, dim, keepdim);
  }
  /** Maximum over dims (values only, like `torch.amax`). */
  max(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.max(this, dim, keepdim);
  }
  min(dim?: number | readonly number[], keepdim = false): Tensor {
    return ops.min(this, dim, keepdim);
  }
  var(dim?: number | readonly number[], options?: { correction?: number; keepdim?: boolean }): Tensor {
    return ops.variance(this, dim, options);
  }
  std(dim?: number | readonly number[], options?: { correction?: number; keepdim?: boolean }): Tensor {
    return ops.variance(this, dim, options).sqrt();
  }
  /** The 2-norm of all elements (computed in f32 for half tensors). */
  norm(): Tensor {
    return ops.norm(this);
  }

  // Shapes and views ------------------------------------------------------------------------

  /** A view with a new shape (one dim may be -1); copies only when the strides do not allow a view. */
  reshape(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  view(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return ops.flatten(this, startDim, endDim);
  }
  permute(dims: readonly number[]): Tensor {
    return ops.permute(this, dims);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return ops.transpose(this, dim0, dim1);
  }
  /** Transpose of a 2-D tensor. */
  t(): Tensor {
    return ops.transpose(this, 0, 1);
  }
  expand(shape: readonly number[]): Tensor {
    return ops.expand(this, shape);
  }
  expandAs(other: Tensor): Tensor {
    return ops.expand(this, other.shape);
  }
  squeeze(dim?: number): Tensor {
    return ops.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  /** Elements `start` to `end` (exclusive) of `dim`, every `step`-th: `x[:, start:end:step]`. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    return ops.slice(this, dim, start, end, step);
  }
  /** `length` elements of `dim` from `start`; refuses a window that does not fit (`torch.narrow`). */
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.narrow(this, dim, start, length);
  }
  /** Index along dim 0 (or `dim`) and drop that dim: `x[i]`. */
  select(dim: number, index: number): Tensor {
    return ops.select(this, dim, index);
  }
  split(splitSize: number | readonly number[], dim = 0): Tensor[] {
    return ops.split(this, splitSize, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return ops.chunk(this, chunks, dim);
  }
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  /** Reverses the order along each of `dims` (a copy), `torch.flip`. */
  flip(dims: readonly number[]): Tensor {
    return ops.flip(this, dims);
  }
  /** Entries along `dim` at the int32 positions in `index` (`torch.gather`); see `k.gather`. */
  gather(dim: number, index: Tensor): Tensor {
    return ops.gather(this, dim, index);
  }
  /** Slices along `dim` at the int32 ids in 1-D `index` (`torch.index_select`); see `k.indexSelect`. */
  indexSelect(dim: number, index: Tensor): Tensor {
    return ops.indexSelect(this, dim, index);
  }
  clone(): Tensor {
    return ops.clone(this);
  }

  // Linear algebra and types ----------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }
  /** Casts to `dtype` (a differentiable copy; returns this when the dtype already matches). */
  to(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
  float(): Tensor {
    return ops.cast(this, 'float32');
  }
  half(): Tensor {
    return ops.cast(this, 'float16');
  }
  /** A copy on another (initialised) backend; async because it reads the data. */
  async toBackend(name: string): Promise<Tensor> {
    return ops.toBackend(this, name);
  }
  softmax(dim: number): Tensor {
    return ops.softmax(this, dim);
  }
  logSoftmax(dim: number): Tensor {
    return ops.logSoftmax(this, dim);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ', requiresGrad' : ''}${this.disposed ? ', disposed' : ''})`;
  }
}

ops.provideTensorClass(Tensor);
