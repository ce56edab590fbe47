import type { DType, TypedArray } from './dtype.js';
import { BackendError } from './errors.js';

/**
 * A strided window onto a backend storage. Offsets and strides count elements, not bytes.
 * Strides may be 0 (broadcast) or permuted; a kernel that wants contiguous input asks for
 * `unary('copy', view)` first.
 *
 * @example
 * ```ts
 * const contiguous = backend.unary('copy', view, view.dtype); // a kernel reading a strided View
 * ```
 */
export interface View<S = unknown> {
  readonly storage: S;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** The elementwise ops of `Backend.unary` (`copy` doubles as cast and contiguous copy). @example const op: k.UnaryOp = 'silu'; // backend.unary(op, view, dtype) */
export type UnaryOp =
  | 'copy'
  | 'neg'
  | 'abs'
  | 'sign'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'reciprocal'
  | 'square'
  | 'sin'
  | 'cos'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'silu'
  | 'gelu'
  | 'geluTanh'
  | 'erf'
  | 'floor'
  | 'logicalNot';

/** The ops of `Backend.binary`, on operands already broadcast to one shape. @example const op: k.BinaryOp = 'maximum'; // backend.binary(op, a, b, dtype) */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/** The reductions of `Backend.reduce`. @example const op: k.ReduceOp = 'sum'; // backend.reduce(op, view, [1]) */
export type ReduceOp = 'sum' | 'max' | 'min';

/** Stride, padding and dilation per dim, and groups, as conv kernels receive them. @example const p: k.Conv2dParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }; */
export interface Conv2dParams {
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
  readonly groups: number;
}

/** One AdamW step's hyperparameters, as the fused `adamw` kernel receives them. @example const hp: k.AdamWHyper = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step: 1 }; */
export interface AdamWHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** 1-based step count, for bias correction. */
  readonly step: number;
}

/**
 * What a backend implements: memory, a dozen primitive kernels, and optional fused kernels.
 * Autograd, shape rules and dtype promotion live above this line, so a new backend writes kernels
 * only. Every kernel returns a fresh contiguous storage of `numel(outShape)` elements unless it
 * says otherwise. Inputs have already been validated and broadcast by the op layer.
 *
 * @example
 * ```ts
 * class MyBackend extends k.CpuBackend {} // implement or override kernels; see the "Writing a backend kernel" guide
 * ```
 */
export interface Backend<S = unknown> {
  readonly name: string;

  /** Uninitialised storage for `size` elements. */
  alloc(dtype: DType, size: number): S;
  /** Storage holding `data` (half types as u16 bits, bool as u8). */
  upload(dtype: DType, data: TypedArray): S;
  /** The elements of a view in logical (row-major) order, in storage layout. */
  download(x: View<S>): Promise<TypedArray>;
  free(storage: S): void;

  fill(dtype: DType, size: number, value: number): S;
  /** Elementwise op; `outDtype` is the result type (bool for `logicalNot`, else the input's or a cast). */
  unary(op: UnaryOp, x: View<S>, outDtype: DType): S;
  /** `a` and `b` come expanded to the output shape (0 strides where broadcast); both have `inDtype`. */
  binary(op: BinaryOp, a: View<S>, b: View<S>, outDtype: DType): S;
  /** All three views come expanded to one shape; `cond` is bool. */
  where(cond: View<S>, a: View<S>, b: View<S>, outDtype: DType): S;
  /** Reduces over `axes` (sorted, unique); the result has those axes removed. */
  reduce(op: ReduceOp, x: View<S>, axes: readonly number[]): S;
  /** a: [B, M, K], b: [B, K, N] (any strides, batch stride may be 0) → [B, M, N]. Same dtype. */
  matmul(a: View<S>, b: View<S>): S;
  /** x: [N, C, H, W], w: [O, C/groups, kh, kw] → [N, O, Ho, Wo]. No bias. */
  conv2d(x: View<S>, w: View<S>, p: Conv2dParams): S;
  /** The gradient of conv2d with respect to its input (also convTranspose2d's forward). */
  conv2dInputGrad(gy: View<S>, w: View<S>, inputShape: readonly number[], p: Conv2dParams): S;
  /** The gradient of conv2d with respect to its weight. */
  conv2dWeightGrad(x: View<S>, gy: View<S>, weightShape: readonly number[], p: Conv2dParams): S;
  /** Writes `src` into the (possibly strided) window `dst` of an existing storage. Same shape and dtype. */
  copyInto(dst: View<S>, src: View<S>): void;
  /** table: [R, C], index: int32 [N] → [N, C]. */
  gatherRows(table: View<S>, index: View<S>): S;
  /** src: [N, C], index: int32 [N] → [rows, C], zero except the sums of src rows at their index. */
  scatterAddRows(src: View<S>, index: View<S>, rows: number): S;

  /** Philox 4×32-10 numbers (see `random.ts`); without it the core generates them and uploads. */
  random?(dist: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], counter: number): S;

  // Fused kernels (decision 6). Each has a composite fallback in the op layer and a reference
  // implementation on the cpu backend that the fast backends are tested against.
  /** Softmax (or log-softmax) over the last dim. */
  softmax?(x: View<S>, log: boolean): S;
  /** Normalises over the trailing `normSize` elements; weight/bias have `normSize` elements. */
  layerNorm?(x: View<S>, weight: View<S> | null, bias: View<S> | null, normSize: number, eps: number): S;
  /**
   * `layerNorm` for a forward that a backward will follow: [y, stats], stats each row's mean and
   * 1/std (f32, 2 per row) for `layerNormBackward`, as PyTorch's `native_layer_norm` keeps them; null
   * where the backend keeps none for this input. The caller frees stats with `free`.
   */
  layerNormWithStats?(x: View<S>, weight: View<S> | null, bias: View<S> | null, normSize: number, eps: number): [S, S | null];
  /** x: [N, C, *]; optional SiLU applied after the affine transform. */
  groupNorm?(x: View<S>, groups: number, weight: View<S> | null, bias: View<S> | null, eps: number, silu: boolean): S;
  /** q: [B, Lq, E], k: [B, Lk, E], v: [B, Lk, Ev], mask: additive, expanded to [B, Lq, Lk]. */
  attention?(q: View<S>, k: View<S>, v: View<S>, mask: View<S> | null, causal: boolean, scale: number): S;
  /**
   * Gradients of `attention` (same arguments) given `gy`: [B, Lq, Ev]. Returns [dq, dk, dv] in the
   * input dtype, contiguous [B, Lq, E], [B, Lk, E], [B, Lk, Ev]. Flash-style: recomputes the
   * probabilities per tile and never holds the Lq×Lk scores; accumulates in f32.
   */
  attentionBackward?(q: View<S>, k: View<S>, v: View<S>, mask: View<S> | null, causal: boolean, scale: number, gy: View<S>): [S, S, S];
  /**
   * Gradients of `layerNorm` given `gy` (x's shape). Returns [dx, dweight | null, dbias | null]:
   * dweight when `weight` is given, dbias when `bias` is given, each with `normSize` elements.
   * `stats`, from `layerNormWithStats` on the same x, spare computing the statistics again.
   */
  layerNormBackward?(
    x: View<S>,
    weight: View<S> | null,
    bias: View<S> | null,
    normSize: number,
    eps: number,
    gy: View<S>,
    stats?: S | null,
  ): [S, S | null, S | null];
  /**
   * Gradients of `groupNorm` (with its optional SiLU, recomputed from x, weight and bias) given `gy`.
   * Returns [dx, dweight | null, dbias | null], dweight/dbias with C elements.
   */
  groupNormBackward?(
    x: View<S>,
    groups: number,
    weight: View<S> | null,
    bias: View<S> | null,
    eps: number,
    silu: boolean,
    gy: View<S>,
  ): [S, S | null, S | null];
  /** One AdamW step, in place on contiguous param, m and v storages. */
  adamw?(param: S, grad: View<S>, m: S, v: S, size: number, dtype: DType, hp: AdamWHyper): void;

  /** Resolves when all submitted work is done (GPU backends). */
  sync?(): Promise<void>;
  /** Backend-specific numbers merged into `k.memory()` (pool sizes and the like). */
  memoryInfo?(): Record<string, number>;
  /** Releases everything the backend holds. */
  dispose?(): void;
}

/**
 * Creates a backend on first use (may fail where it is unavailable).
 *
 * @example
 * ```ts
 * const factory: k.BackendFactory = async () => new k.CpuBackend();
 * k.registerBackend('mine', factory);
 * ```
 */
export type BackendFactory = () => Backend | Promise<Backend>;

const factories = new Map<string, BackendFactory>();
const ready = new Map<string, Backend>();
let current: Backend | undefined;

/**
 * Makes a backend available to `useBackend(name)`. Later registrations replace earlier ones.
 *
 * @example
 * ```ts
 * k.registerBackend('my-cpu', () => new k.CpuBackend());
 * await k.useBackend('my-cpu');
 * ```
 */
export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
  ready.delete(name);
}

/**
 * Initialises (once) and selects the backend that new tensors are created on.
 *
 * @example
 * ```ts
 * await k.useBackend('cpu');
 * const x = k.randn([2, 3], { seed: 1 }); // lives on cpu
 * ```
 */
export async function useBackend(name: string): Promise<Backend> {
  const backend = await initBackend(name);
  current = backend;
  return backend;
}

/**
 * Initialises a backend without selecting it (for `tensor.to(name)`).
 *
 * @example
 * ```ts
 * await k.initBackend('cpu');
 * const onCpu = await x.toBackend('cpu'); // x stays where it was
 * ```
 */
export async function initBackend(name: string): Promise<Backend> {
  const existing = ready.get(name);
  if (existing) return existing;
  const factory = factories.get(name);
  if (!factory) {
    throw new BackendError(`unknown backend '${name}'; registered: ${[...factories.keys()].join(', ') || 'none'}`);
  }
  let backend: Backend;
  try {
    backend = await factory();
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new BackendError(`backend '${name}' is not available here: ${(err as Error).message}`, { cause: err });
  }
  ready.set(name, backend);
  return backend;
}

/** The selected backend; `cpu` until `useBackend` picks another. @example k.getBackend().name; // 'cpu' until useBackend picks another */
export function getBackend(): Backend {
  if (!current) {
    const cpu = ready.get('cpu');
    if (!cpu) throw new BackendError('no backend selected; call `await k.useBackend(name)` first');
    current = cpu;
  }
  return current;
}

/** A backend that was already initialised, by name. */
export function backendByName(name: string): Backend {
  const b = ready.get(name);
  if (!b) throw new BackendError(`backend '${name}' has not been initialised; call \`await k.useBackend('${name}')\``);
  return b;
}

/** Names of all registered backends (whether or not they work on this machine). @example k.listBackends(); // ['cpu', 'webgpu', 'wasm'] */
export function listBackends(): string[] {
  return [...factories.keys()];
}

/** Registers an already-constructed backend synchronously (the cpu backend uses this at import). */
export function installBackend(backend: Backend): void {
  factories.set(backend.name, () => backend);
  ready.set(backend.name, backend);
}
