/**
 * GPU memory for the webgpu backend: storage buffers pooled by size class (reused as soon as they
 * are freed; queue order makes that safe for GPU writes) and mappable staging buffers for reads.
 */
import type {} from 'webgpu';
import type { DType } from '../../dtype.js';
import { BackendError, DTypeError } from '../../errors.js';
import { roundUp } from './meta.js';
import { gpuItemSize } from './wgsl.js';

// GPUBufferUsage bits (numbers, so Node needs no globals).
const MAP_READ = 0x1;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const STORAGE = 0x80;

/** Freed buffers beyond this many bytes are destroyed instead of pooled. */
const POOL_CAP_BYTES = 512 * 1024 * 1024;
/** Staging buffers kept per size (reads of one size tend to repeat: losses, metrics). */
const STAGING_PER_SIZE = 4;

export interface Slot {
  buffer: GPUBuffer;
  bytes: number;
  /** The batch (submit count) that last bound it, for the upload hazard check. */
  lastUse: number;
}

/** A webgpu storage: a pooled buffer slot plus what it holds. */
export interface GpuStorage {
  slot: Slot;
  dtype: DType;
  size: number;
  freed: boolean;
}

/** Size classes: 256-byte steps up to 4 KiB, then eight steps per power of two (≤ 12.5% waste). */
function bucket(bytes: number): number {
  if (bytes <= 4096) return roundUp(Math.max(bytes, 4), 256);
  const p = 2 ** Math.floor(Math.log2(bytes));
  return roundUp(bytes, p / 8);
}

export class BufferPool {
  private free_ = new Map<number, Slot[]>();
  private staging = new Map<number, GPUBuffer[]>();
  pooledBytes = 0;
  allocatedBytes = 0;
  buffersLive = 0;
  /** Set once the device is lost: freed buffers are destroyed, not pooled. */
  lost = false;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBinding: number,
    private readonly adapterName: string,
  ) {}

  /** Uninitialised storage for `size` elements of `dtype`. */
  storage(dtype: DType, size: number): GpuStorage {
    if (dtype === 'float64') {
      throw new DTypeError('webgpu: float64 is not supported (WGSL has no f64); cast to float32 or use the cpu backend');
    }
    const bytes = roundUp(Math.max(size, 1) * gpuItemSize(dtype), 4);
    return { slot: this.slot(bytes, `a ${dtype} tensor of ${size} elements`), dtype, size, freed: false };
  }

  private slot(bytes: number, what: string): Slot {
    if (bytes > this.maxBinding) {
      throw new BackendError(
        `webgpu: ${what} needs ${bytes} bytes, more than this device's maxStorageBufferBindingSize of ${this.maxBinding} bytes (${this.adapterName}); split the tensor or use the cpu/wasm backend`,
      );
    }
    const size = bucket(bytes);
    const reused = this.free_.get(size)?.pop();
    if (reused) {
      this.pooledBytes -= size;
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST });
    this.allocatedBytes += size;
    this.buffersLive++;
    return { buffer, bytes: size, lastUse: 0 };
  }

  release(storage: GpuStorage): void {
    if (!storage || storage.freed) return;
    storage.freed = true;
    const slot = storage.slot;
    if (this.lost || this.pooledBytes + slot.bytes > POOL_CAP_BYTES) {
      slot.buffer.destroy();
      this.allocatedBytes -= slot.bytes;
      this.buffersLive--;
      return;
    }
    const list = this.free_.get(slot.bytes) ?? [];
    list.push(slot);
    this.free_.set(slot.bytes, list);
    this.pooledBytes += slot.bytes;
  }

  /** A mappable buffer of exactly `bytes` bytes to copy results into. */
  takeStaging(bytes: number): GPUBuffer {
    return this.staging.get(bytes)?.pop() ?? this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  }

  returnStaging(buf: GPUBuffer, bytes: number): void {
    const list = this.staging.get(bytes) ?? [];
    if (list.length < STAGING_PER_SIZE) {
      list.push(buf);
      this.staging.set(bytes, list);
    } else buf.destroy();
  }

  dispose(): void {
    for (const list of this.free_.values()) for (const s of list) s.buffer.destroy();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.free_.clear();
    this.staging.clear();
    this.pooledBytes = 0;
  }
}
