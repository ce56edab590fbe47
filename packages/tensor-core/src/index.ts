/**
 * @kiln/tensor-core — tensors, the op set, autograd and backends.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * await k.useBackend('cpu');
 * const x = k.randn([2, 3], { seed: 42 });
 * const w = k.tensor([[1], [2], [3]], { requiresGrad: true });
 * const loss = x.matmul(w).square().mean();
 * loss.backward();
 * console.log(await w.grad!.data());
 * ```
 * @packageDocumentation
 */
import { installBackend, registerBackend } from './backend.js';
import { CpuBackend } from './backends/cpu/index.js';
import type { WasmBackendOptions } from './backends/wasm/index.js';

export { Tensor } from './tensor.js';
export type { GradNode, NestedArray } from './tensor.js';
export type { DType, TypedArray, DataFor } from './dtype.js';
export { DTYPES, assertDType, isFloat, itemSize, promoteTypes, f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32 } from './dtype.js';
export { KilnError, ShapeError, DTypeError, DisposedError, BackendError, ArgumentError } from './errors.js';
export type { BackendFactory } from './backend.js';
export type { Backend, View, UnaryOp, BinaryOp, ReduceOp, Conv2dParams, AdamWHyper } from './backend.js';
export { useBackend, initBackend, getBackend, registerBackend, listBackends } from './backend.js';
export type { MemoryStats, Disposable } from './runtime.js';
export { tidy, keep, noGrad, enableGrad, isGradEnabled, memory, resetPeakMemory } from './runtime.js';
export { manualSeed, philox4x32, philoxFill, Generator, defaultGenerator } from './random.js';
export type { GeneratorState } from './random.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckResult } from './gradcheck.js';
export { CpuBackend } from './backends/cpu/index.js';
export type { WasmBackendOptions, WasmBackend } from './backends/wasm/index.js';
export type {
  Calibration as WasmCalibration,
  CalibrationPoint as WasmCalibrationPoint,
  CalibrateOptions as WasmCalibrateOptions,
} from './backends/wasm/calibrate.js';
export type { Engine as WasmEngine, EngineOptions as WasmEngineOptions } from './backends/wasm/pool.js';
export type { Heap as WasmHeap } from './backends/wasm/heap.js';
export type { KernelConfig as WasmKernelConfig, TaskName as WasmTaskName } from './backends/wasm/kernels.js';
export { numel, broadcastShapes, contiguousStrides } from './shape.js';
export type { Shape } from './shape.js';
export type { CpuView } from './backends/cpu/strided.js';

export type { Scalar } from './ops/dispatch.js';
export { record as recordGrad, detach, toBackend } from './ops/dispatch.js';
export type { CreateOptions, RandomOptions, NestedData } from './ops/creation.js';
export type { Dims } from './ops/reduce.js';
export {
  tensor,
  full,
  zeros,
  ones,
  zerosLike,
  onesLike,
  arange,
  linspace,
  randn,
  rand,
  randint,
  randnLike,
  randLike,
  randintLike,
} from './ops/creation.js';
export {
  cast,
  clone,
  neg,
  abs,
  sign,
  floor,
  logicalNot,
  exp,
  log,
  sqrt,
  rsqrt,
  reciprocal,
  square,
  sin,
  cos,
  tanh,
  sigmoid,
  relu,
  erf,
  silu,
  gelu,
  quickGelu,
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  clamp,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  where,
  fullLike,
} from './ops/elementwise.js';
export { sum, mean, max, min, variance as var } from './ops/reduce.js';
export {
  reshape,
  flatten,
  permute,
  transpose,
  expand,
  squeeze,
  unsqueeze,
  slice,
  narrow,
  select,
  contiguous,
  split,
  chunk,
  sumTo,
} from './ops/view.js';
export { cat, stack, pad } from './ops/join.js';
export { matmul, linear } from './ops/matmul.js';
export { conv2d, convTranspose2d } from './ops/conv.js';
export type { Conv2dOptions, ConvTranspose2dOptions, Pair } from './ops/conv.js';
export { avgPool2d } from './ops/pool.js';
export { interpolate } from './ops/interpolate.js';
export type { InterpolateOptions } from './ops/interpolate.js';
export { gather, indexSelect, flip } from './ops/gather.js';
export { isnan, isfinite, isinf } from './ops/finite.js';
export { groupNorm, groupNormSilu, layerNorm } from './ops/norm.js';
export { softmax, logSoftmax } from './ops/softmax.js';
export { scaledDotProductAttention } from './ops/attention.js';
export type { AttentionOptions } from './ops/attention.js';
export { embedding, dropout, mseLoss } from './ops/functional.js';
export { adamwUpdate } from './ops/optim.js';

installBackend(new CpuBackend());
// Lazy: the module (and, in Node, Dawn's `webgpu` package) loads only on `useBackend('webgpu')`.
registerBackend('webgpu', async () => (await import('./backends/webgpu/index.js')).createWebGPUBackend());
registerWasmBackend();

/**
 * (Re)registers the `wasm` backend with options; the module loads lazily on `useBackend('wasm')`.
 *
 * @example
 * ```ts
 * k.registerWasmBackend({ threads: 4 });
 * await k.useBackend('wasm');
 * ```
 */
export function registerWasmBackend(options: WasmBackendOptions = {}): void {
  registerBackend('wasm', async () => (await import('./backends/wasm/index.js')).createWasmBackend(options));
}
