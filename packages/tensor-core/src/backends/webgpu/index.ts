/**
 * The `webgpu` backend: WGSL compute kernels on a GPUDevice, in browsers through `navigator.gpu`
 * and in Node through Dawn (the `webgpu` npm package, imported dynamically and only in Node so
 * that browser bundles never pull it in).
 *
 * Layout: `context.ts` is the runtime (device, command stream, metadata arena) over
 * `pipelines.ts` (compiled kernels) and `pool.ts` (buffers and staging); `meta.ts` names each
 * kernel's metadata; `wgsl.ts` generates typed loads and stores; `kernels/` holds one file per
 * kernel family as free functions. This class only adapts the `Backend` interface to them.
 */
import type {} from 'webgpu';
import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp, View } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { BackendError } from '../../errors.js';
import { numel } from '../../shape.js';
import type { GpuLimits, GpuTuning } from './context.js';
import { GpuContext } from './context.js';
import { coalesce, isContig, roundUp } from './meta.js';
import type { GpuStorage } from './pool.js';
import type { Caps } from './wgsl.js';
import { gpuItemSize } from './wgsl.js';
import { adamw } from './kernels/adamw.js';
import { attention } from './kernels/attention.js';
import { attentionBackward } from './kernels/attention-backward.js';
import { conv2d, conv2dInputGrad, conv2dWeightGrad } from './kernels/conv.js';
import { binary, copyInto, fill, unary, where } from './kernels/elementwise.js';
import { matmul } from './kernels/gemm.js';
import { groupNorm, layerNorm, softmax } from './kernels/norm.js';
import { groupNormBackward, layerNormBackward } from './kernels/norm-backward.js';
import { random } from './kernels/random.js';
import { reduce } from './kernels/reduce.js';
import { gatherRows, scatterAddRows } from './kernels/rows.js';

export type { GpuStorage } from './pool.js';

type GV = View<GpuStorage>;

export interface WebGPUBackendOptions {
  /** Use `shader-f16` when the adapter has it (default true; `KILN_WEBGPU_F16=0` turns it off). */
  f16?: boolean;
  powerPreference?: 'low-power' | 'high-performance';
}

/** The first `n` elements of `raw` (GPU storage layout) as the host array of `dtype` (half types as u16 bits). */
function hostArray(dtype: DType, raw: ArrayBuffer, n: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(raw, 0, n);
    case 'int32':
      return new Int32Array(raw, 0, n);
    case 'bool':
      return Uint8Array.from(new Uint32Array(raw, 0, n));
    default:
      return new Uint16Array(raw, 0, n);
  }
}

export class WebGPUBackend implements Backend<GpuStorage> {
  readonly name = 'webgpu';
  readonly adapterName: string;
  readonly ctx: GpuContext;

  constructor(
    readonly device: GPUDevice,
    adapterInfo: { vendor?: string; architecture?: string; device?: string; description?: string },
    private keepAlive: unknown,
  ) {
    this.adapterName =
      [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description || adapterInfo.device].filter(Boolean).join(' ') ||
      'unknown adapter';
    this.ctx = new GpuContext(device, this.adapterName);
  }

  get caps(): Caps {
    return this.ctx.caps;
  }

  get limits(): GpuLimits {
    return this.ctx.limits;
  }

  get tuning(): GpuTuning {
    return this.ctx.tuning;
  }

  // Memory -------------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): GpuStorage {
    this.ctx.check();
    return this.ctx.alloc(dtype, size);
  }

  upload(dtype: DType, data: TypedArray): GpuStorage {
    this.ctx.check();
    const s = this.ctx.alloc(dtype, data.length);
    if (data.length === 0) return s;
    let src: ArrayBufferView = data;
    if (dtype === 'bool') src = Uint32Array.from(data as Uint8Array);
    else if ((dtype === 'float16' || dtype === 'bfloat16') && data.length % 2 === 1) {
      // writeBuffer takes whole words: pad the last half.
      const p = new Uint16Array(data.length + 1);
      p.set(data);
      src = p;
    }
    this.ctx.write(s, src);
    return s;
  }

  async download(x: GV): Promise<TypedArray> {
    this.ctx.check();
    const n = numel(x.shape);
    if (n === 0) return hostArray(x.dtype, new ArrayBuffer(0), 0);
    const isz = gpuItemSize(x.dtype);
    const c = coalesce(x.shape, [x.strides]);
    let src = x.storage;
    let offBytes = x.offset * isz;
    let temp: GpuStorage | null = null;
    if (!isContig(c.shape, c.strides[0]) || offBytes % 4 !== 0) {
      temp = unary(this.ctx, 'copy', x, x.dtype);
      src = temp;
      offBytes = 0;
    }
    const bytes = roundUp(n * isz, 4);
    const pending = this.ctx.read(src, offBytes, bytes, `${n} ${x.dtype} elements`);
    if (temp) this.ctx.free(temp);
    return hostArray(x.dtype, await pending, n);
  }

  free(storage: GpuStorage): void {
    this.ctx.free(storage);
  }

  memoryInfo(): Record<string, number> {
    const { pool } = this.ctx;
    return {
      gpuAllocatedBytes: pool.allocatedBytes,
      gpuPoolBytes: pool.pooledBytes,
      gpuBuffers: pool.buffersLive,
      gpuPipelines: this.ctx.pipelineCount,
      gpuSubmits: this.ctx.submits,
      gpuDispatches: this.ctx.dispatches,
    };
  }

  /** Submits the pending command encoder. */
  flush(): void {
    this.ctx.flush();
  }

  sync(): Promise<void> {
    return this.ctx.sync();
  }

  dispose(): void {
    this.ctx.dispose();
    this.keepAlive = null;
  }

  // Kernels ------------------------------------------------------------------------------------
  // Each checks for device loss or an earlier GPU error first, then encodes.

  fill(dtype: DType, size: number, value: number): GpuStorage {
    this.ctx.check();
    return fill(this.ctx, dtype, size, value);
  }

  unary(op: UnaryOp, x: GV, outDtype: DType): GpuStorage {
    this.ctx.check();
    return unary(this.ctx, op, x, outDtype);
  }

  binary(op: BinaryOp, a: GV, b: GV, outDtype: DType): GpuStorage {
    this.ctx.check();
    return binary(this.ctx, op, a, b, outDtype);
  }

  where(cond: GV, a: GV, b: GV, outDtype: DType): GpuStorage {
    this.ctx.check();
    return where(this.ctx, cond, a, b, outDtype);
  }

  copyInto(dst: GV, src: GV): void {
    this.ctx.check();
    copyInto(this.ctx, dst, src);
  }

  random(dist: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], counter: number): GpuStorage {
    this.ctx.check();
    return random(this.ctx, dist, dtype, size, key, counter);
  }

  reduce(op: ReduceOp, x: GV, axes: readonly number[]): GpuStorage {
    this.ctx.check();
    return reduce(this.ctx, op, x, axes);
  }

  matmul(a: GV, b: GV): GpuStorage {
    this.ctx.check();
    return matmul(this.ctx, a, b);
  }

  conv2d(x: GV, w: GV, p: Conv2dParams): GpuStorage {
    this.ctx.check();
    return conv2d(this.ctx, x, w, p);
  }

  conv2dInputGrad(gy: GV, w: GV, inputShape: readonly number[], p: Conv2dParams): GpuStorage {
    this.ctx.check();
    return conv2dInputGrad(this.ctx, gy, w, inputShape, p);
  }

  conv2dWeightGrad(x: GV, gy: GV, weightShape: readonly number[], p: Conv2dParams): GpuStorage {
    this.ctx.check();
    return conv2dWeightGrad(this.ctx, x, gy, weightShape, p);
  }

  gatherRows(table: GV, index: GV): GpuStorage {
    this.ctx.check();
    return gatherRows(this.ctx, table, index);
  }

  scatterAddRows(src: GV, index: GV, rows: number): GpuStorage {
    this.ctx.check();
    return scatterAddRows(this.ctx, src, index, rows);
  }

  softmax(x: GV, log: boolean): GpuStorage {
    this.ctx.check();
    return softmax(this.ctx, x, log);
  }

  layerNorm(x: GV, weight: GV | null, bias: GV | null, normSize: number, eps: number): GpuStorage {
    this.ctx.check();
    return layerNorm(this.ctx, x, weight, bias, normSize, eps);
  }

  layerNormBackward(
    x: GV,
    weight: GV | null,
    bias: GV | null,
    normSize: number,
    eps: number,
    gy: GV,
  ): [GpuStorage, GpuStorage | null, GpuStorage | null] {
    this.ctx.check();
    return layerNormBackward(this.ctx, x, weight, bias, normSize, eps, gy);
  }

  groupNorm(x: GV, groups: number, weight: GV | null, bias: GV | null, eps: number, silu: boolean): GpuStorage {
    this.ctx.check();
    return groupNorm(this.ctx, x, groups, weight, bias, eps, silu);
  }

  groupNormBackward(
    x: GV,
    groups: number,
    weight: GV | null,
    bias: GV | null,
    eps: number,
    silu: boolean,
    gy: GV,
  ): [GpuStorage, GpuStorage | null, GpuStorage | null] {
    this.ctx.check();
    return groupNormBackward(this.ctx, x, groups, weight, bias, eps, silu, gy);
  }

  attention(q: GV, k: GV, v: GV, mask: GV | null, causal: boolean, scale: number): GpuStorage {
    this.ctx.check();
    return attention(this.ctx, q, k, v, mask, causal, scale);
  }

  attentionBackward(q: GV, k: GV, v: GV, mask: GV | null, causal: boolean, scale: number, gy: GV): [GpuStorage, GpuStorage, GpuStorage] {
    this.ctx.check();
    return attentionBackward(this.ctx, q, k, v, mask, causal, scale, gy);
  }

  adamw(param: GpuStorage, grad: GV, m: GpuStorage, v: GpuStorage, size: number, dtype: DType, hp: AdamWHyper): void {
    this.ctx.check();
    adamw(this.ctx, param, grad, m, v, size, dtype, hp);
  }
}

/** The WebGPU entry point: `navigator.gpu` in browsers, Dawn (`webgpu` npm package) in Node. */
async function getGPU(): Promise<{ gpu: GPU; keepAlive: unknown }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, keepAlive: null };
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node) {
    const name = 'webgpu';
    let mod: { create: (flags: string[]) => GPU };
    try {
      mod = (await import(/* @vite-ignore */ name)) as typeof mod;
    } catch (err) {
      throw new BackendError(`webgpu: the 'webgpu' package (Dawn for Node) could not be loaded: ${(err as Error).message}`, { cause: err });
    }
    const gpu = mod.create([]);
    return { gpu, keepAlive: gpu };
  }
  throw new BackendError('webgpu: this environment has no WebGPU (navigator.gpu is missing)');
}

/** Limits requested at the adapter's maximum (the defaults are far below what SD needs). */
const LIMIT_NAMES = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxBindGroups',
] as const;

/** Asks for an adapter and a device with the largest limits the adapter supports. */
export async function createWebGPUBackend(options: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const { gpu, keepAlive } = await getGPU();
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new BackendError(
      'webgpu: no GPU adapter found (in Node, Dawn needs a Vulkan driver: set VK_ICD_FILENAMES to lavapipe or SwiftShader on machines without a GPU)',
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const envF16 = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KILN_WEBGPU_F16;
  const wantF16 = (options.f16 ?? envF16 !== '0') && adapter.features.has('shader-f16');
  const device = await adapter.requestDevice({
    requiredFeatures: wantF16 ? ['shader-f16'] : [],
    requiredLimits,
  });
  const info = (adapter as { info?: GPUAdapterInfo }).info ?? {};
  return new WebGPUBackend(device, info as never, keepAlive);
}
