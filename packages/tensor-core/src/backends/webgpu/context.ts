/**
 * The runtime of the webgpu backend: a GPUDevice, its limits, the pipeline cache, the buffer pool
 * and the command stream. Kernels (in `kernels/`) are free functions that describe a dispatch as
 * data (`Kernel`); this class compiles, binds and encodes it.
 *
 * Execution model: every dispatch goes into one pending command encoder (one compute pass); the
 * encoder is submitted when a read needs it, when `FLUSH_EVERY` dispatches have piled up, or when
 * the metadata arena is full. Each dispatch's metadata takes one aligned slot of a small storage
 * buffer. An upload into a buffer that the pending encoder still uses submits the encoder first.
 */
import type {} from 'webgpu';
import type { DType } from '../../dtype.js';
import { BackendError } from '../../errors.js';
import type { Meta } from './meta.js';
import { grid, roundUp } from './meta.js';
import { PipelineCache } from './pipelines.js';
import type { GpuStorage } from './pool.js';
import { BufferPool } from './pool.js';
import type { Access, Caps } from './wgsl.js';
import { header } from './wgsl.js';

const COPY_DST = 0x8;
const STORAGE = 0x80;
const MODE_READ = 0x1;

/** Invocations per workgroup of the one-invocation-per-element kernels. */
export const WG = 256;
/** Dispatches per submit: enough to amortise a submit, few enough to keep the GPU busy early. */
const FLUSH_EVERY = 128;
/** Metadata arena size in u32 words (256 KiB). */
const META_WORDS = 1 << 16;

/** A storage bound to a kernel under a WGSL name. */
export interface Bound {
  name: string;
  storage: GpuStorage;
  /** The element type as the kernel reads it (the storage's unless a view says otherwise). */
  dtype: DType;
  access: Access;
  /** Bind float32 data as `array<vec4<f32>>`. */
  vec4?: boolean;
}

/** One compute dispatch, described as data. */
export interface Kernel {
  /** Names the WGSL variant; bindings and metadata layout are added to the cache key. */
  name: string;
  bindings: readonly Bound[];
  meta: Meta;
  /** WGSL after the bindings, loaders and metadata accessors: helpers and `fn main`. Called once per variant. */
  code: () => string;
  groups: readonly [number, number?, number?];
}

/** Adapter limits the kernels size themselves by. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxWorkgroupStorage: number;
  maxGroups: number;
  /** Metadata slot alignment in words (minStorageBufferOffsetAlignment / 4). */
  metaAlign: number;
}

/** Tuning knobs that depend on the adapter (tests and benchmarks may change them). */
export interface GpuTuning {
  /** GEMM outputs per invocation along each tile side (4: 256 invocations of 4×4; 8: 64 of 8×8). */
  gemmRegs: 4 | 8;
  /** Split-K kicks in below this many output tiles (GPUs need many workgroups; CPU drivers few). */
  splitKBelowTiles: number;
}

export class GpuContext {
  readonly caps: Caps;
  readonly limits: GpuLimits;
  readonly pool: BufferPool;
  readonly tuning: GpuTuning = { gemmRegs: 8, splitKBelowTiles: 32 };
  private readonly pipelines: PipelineCache;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Counts submits; a slot bound in the current batch is still in the pending encoder. */
  private batch = 1;
  private pending = 0;
  private meta = new Uint32Array(META_WORDS);
  private metaUsed = 0;
  private metaBuf: GPUBuffer;
  private lost: string | null = null;
  private gpuError: string | null = null;
  submits = 0;
  dispatches = 0;

  constructor(
    readonly device: GPUDevice,
    readonly adapterName: string,
  ) {
    this.caps = { f16: device.features.has('shader-f16') };
    const l = device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize,
      maxGroups: l.maxComputeWorkgroupsPerDimension,
      metaAlign: Math.max(16, l.minStorageBufferOffsetAlignment) / 4,
    };
    // Software Vulkan drivers run a handful of workgroups in parallel: split-K only for tiny outputs.
    if (/llvmpipe|lavapipe|swiftshader/i.test(adapterName)) this.tuning.splitKBelowTiles = 4;
    this.pool = new BufferPool(device, Math.min(l.maxStorageBufferBindingSize, l.maxBufferSize), adapterName);
    this.pipelines = new PipelineCache(device, (msg) => (this.gpuError ??= msg));
    this.metaBuf = device.createBuffer({ size: META_WORDS * 4, usage: STORAGE | COPY_DST });
    void device.lost.then((info) => {
      this.lost = `${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''}`;
      this.pool.lost = true;
    });
    const onError = (e: { error?: { message?: string } }) => {
      this.gpuError ??= e.error?.message ?? 'unknown GPU error';
    };
    if ('addEventListener' in device) device.addEventListener('uncapturederror', onError as never);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
  }

  /** Throws the device loss or the first GPU error reported since the last check. */
  check(): void {
    if (this.lost !== null) {
      throw new BackendError(`webgpu: the GPU device was lost (${this.lost}); tensors on it are gone — re-create the backend`);
    }
    if (this.gpuError !== null) {
      const msg = this.gpuError;
      this.gpuError = null;
      throw new BackendError(`webgpu: a GPU command failed: ${msg}`);
    }
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Fresh uninitialised storage. */
  alloc(dtype: DType, size: number): GpuStorage {
    return this.pool.storage(dtype, size);
  }

  free(storage: GpuStorage): void {
    this.pool.release(storage);
  }

  /** Workgroups for one invocation per element of `n`, in a 2-D grid when x alone is too small. */
  linear(n: number): [number, number] {
    return grid(Math.ceil(n / WG), this.limits.maxGroups);
  }

  /** Encodes one dispatch. */
  run(k: Kernel): void {
    this.check();
    const [gx, gy = 1, gz = 1] = k.groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const accesses = 'r' + k.bindings.map((b) => (b.access === 'read' ? 'r' : 'w')).join('');
    const key = `${k.name}|${k.bindings.map((b) => `${b.name}:${b.dtype}:${b.access}${b.vec4 ? '4' : ''}`).join(',')}|${k.meta.signature}`;
    const { pipeline, layout } = this.pipelines.get(
      key,
      accesses,
      () =>
        header(
          this.caps,
          k.bindings.map((b) => ({ name: b.name, dtype: b.dtype, access: b.access, vec4: b.vec4 })),
          k.meta.wgsl,
        ) + k.code(),
    );
    const data = k.meta.data;
    const words = roundUp(Math.max(data.length, 4), this.limits.metaAlign);
    if (words > META_WORDS)
      throw new BackendError(`webgpu: kernel ${k.name} has ${words} metadata words, more than the arena's ${META_WORDS}`);
    if (this.metaUsed + words > META_WORDS) this.flush();
    const at = this.metaUsed;
    for (let i = 0; i < data.length; i++) this.meta[at + i] = data[i];
    this.metaUsed += words;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.metaBuf, offset: at * 4, size: words * 4 } }];
    k.bindings.forEach((b, i) => {
      b.storage.slot.lastUse = this.batch;
      entries.push({ binding: i + 1, resource: { buffer: b.storage.slot.buffer } });
    });
    const bg = this.device.createBindGroup({ layout, entries });
    this.encoder ??= this.device.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bg);
    this.pass.dispatchWorkgroups(gx, gy, gz);
    this.dispatches++;
    if (++this.pending >= FLUSH_EVERY) this.flush();
  }

  /** Submits the pending encoder. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.metaUsed > 0) this.device.queue.writeBuffer(this.metaBuf, 0, this.meta.buffer, 0, this.metaUsed * 4);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.metaUsed = 0;
    this.pending = 0;
    this.submits++;
    this.batch++;
  }

  /** Writes host bytes at the start of `s` (after any pending work that still reads it). */
  write(s: GpuStorage, src: ArrayBufferView): void {
    if (s.slot.lastUse === this.batch) this.flush();
    this.device.queue.writeBuffer(s.slot.buffer, 0, src.buffer, src.byteOffset, src.byteLength);
  }

  /** Copies `bytes` bytes of `s` from `offBytes` (4-byte aligned) into host memory, after all pending work. */
  async read(s: GpuStorage, offBytes: number, bytes: number, what: string): Promise<ArrayBuffer> {
    const staging = this.pool.takeStaging(bytes);
    this.encoder ??= this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(s.slot.buffer, offBytes, staging, 0, bytes);
    s.slot.lastUse = this.batch;
    this.flush();
    try {
      await staging.mapAsync(MODE_READ, 0, bytes);
    } catch (err) {
      this.check();
      throw new BackendError(`webgpu: reading back ${what} failed: ${(err as Error).message}`, { cause: err });
    }
    this.check();
    const raw = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    this.pool.returnStaging(staging, bytes);
    return raw;
  }

  async sync(): Promise<void> {
    this.check();
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  dispose(): void {
    this.flush();
    this.pool.dispose();
    this.device.destroy();
  }
}
