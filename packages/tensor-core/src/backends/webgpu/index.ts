/**
 * The `webgpu` backend: WGSL compute kernels on a GPUDevice, in browsers through
 * `navigator.gpu` and in Node through Dawn (the `webgpu` npm package, imported dynamically and
 * only in Node so that browser bundles never pull it in).
 *
 * Execution model: every op encodes a dispatch into one pending command encoder (one compute
 * pass); the encoder is submitted when a read needs it, when `FLUSH_EVERY` dispatches have
 * piled up, or when the metadata arena is full. Shape/stride/offset metadata goes into a small
 * storage-buffer arena (one aligned slot per dispatch), so a pipeline is compiled once per
 * kernel variant (op, dtypes, contiguity), never per shape. Buffers are pooled by size class and
 * reused as soon as they are freed: queue order makes that safe for GPU writes, and an upload into
 * a buffer that the pending encoder still uses submits the encoder first.
 */
import type {} from 'webgpu';
import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp, View } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { BackendError, DTypeError } from '../../errors.js';
import { numel } from '../../shape.js';
import type { Binding, Caps } from './wgsl.js';
import { MATH, MAX_RANK, PHILOX, VIEW_WORDS, gpuItemSize, header, indexer, linearMain } from './wgsl.js';

// GPUBufferUsage / GPUMapMode bits (numbers, so Node needs no globals).
const MAP_READ = 0x1;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const STORAGE = 0x80;
const MODE_READ = 0x1;

const WG = 256;
const FLUSH_EVERY = 128;
const META_WORDS = 1 << 16;
const POOL_CAP_BYTES = 512 * 1024 * 1024;

interface Slot {
  buffer: GPUBuffer;
  bytes: number;
  /** The batch that last bound it (hazard check for uploads). */
  lastUse: number;
}

/** A webgpu storage: a pooled buffer slot plus what it holds. */
export interface GpuStorage {
  slot: Slot;
  dtype: DType;
  size: number;
  freed: boolean;
}

type GV = View<GpuStorage>;

export interface WebGPUBackendOptions {
  /** Use `shader-f16` when the adapter has it (default true; `KILN_WEBGPU_F16=0` turns it off). */
  f16?: boolean;
  powerPreference?: 'low-power' | 'high-performance';
}

const UNARY_F: Record<UnaryOp, string> = {
  copy: 'x',
  neg: '-x',
  abs: 'abs(x)',
  sign: 'select(select(select(nan_f(), 0.0, x == 0.0), -1.0, x < 0.0), 1.0, x > 0.0)',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  reciprocal: '1.0 / x',
  square: 'x * x',
  sin: 'sin(x)',
  cos: 'cos(x)',
  tanh: 'tanh_f(x)',
  sigmoid: '1.0 / (1.0 + exp(-x))',
  relu: 'select(0.0, x, x > 0.0)',
  silu: 'x / (1.0 + exp(-x))',
  gelu: '0.5 * x * (1.0 + erf_f(x * 0.7071067811865476))',
  geluTanh: '0.5 * x * (1.0 + tanh_f(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
  erf: 'erf_f(x)',
  floor: 'floor(x)',
  logicalNot: 'select(0.0, 1.0, x == 0.0)',
};
const UNARY_I: Partial<Record<UnaryOp, string>> = {
  copy: 'x',
  neg: '-x',
  abs: 'abs(x)',
  sign: 'sign(x)',
  square: 'x * x',
  logicalNot: 'select(0, 1, x == 0)',
  relu: 'max(x, 0)',
  floor: 'x',
};
const BINARY_F: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'pow_f(a, b)',
  maximum: 'select(max(a, b), nan_f(), isnan_f(a) || isnan_f(b))',
  minimum: 'select(min(a, b), nan_f(), isnan_f(a) || isnan_f(b))',
  eq: 'select(0.0, 1.0, a == b)',
  ne: 'select(0.0, 1.0, a != b)',
  lt: 'select(0.0, 1.0, a < b)',
  le: 'select(0.0, 1.0, a <= b)',
  gt: 'select(0.0, 1.0, a > b)',
  ge: 'select(0.0, 1.0, a >= b)',
};
const BINARY_I: Partial<Record<BinaryOp, string>> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  maximum: 'max(a, b)',
  minimum: 'min(a, b)',
  eq: 'select(0, 1, a == b)',
  ne: 'select(0, 1, a != b)',
  lt: 'select(0, 1, a < b)',
  le: 'select(0, 1, a <= b)',
  gt: 'select(0, 1, a > b)',
  ge: 'select(0, 1, a >= b)',
};

const isIntish = (d: DType) => d === 'int32' || d === 'bool';
const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const f32bits = (() => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return (v: number) => {
    f[0] = v;
    return u[0];
  };
})();
const i32bits = (v: number) => v >>> 0;

/** Merges dims that are contiguous in every stride list and drops size-1 dims. */
function coalesce(shape: readonly number[], stridesList: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const st: number[][] = stridesList.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && stridesList.every((s, v) => st[v][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      stridesList.forEach((s, v) => (st[v][last] = s[d]));
    } else {
      dims.push(shape[d]);
      stridesList.forEach((s, v) => st[v].push(s[d]));
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    st.forEach((s) => s.push(1));
  }
  return { shape: dims, strides: st };
}

function viewWords(offset: number, shape: readonly number[], strides: readonly number[]): number[] {
  if (shape.length > MAX_RANK) throw new BackendError(`webgpu: views of rank ${shape.length} (after merging contiguous dims) exceed the supported ${MAX_RANK}`);
  const w = new Array<number>(VIEW_WORDS).fill(0);
  w[0] = offset;
  w[1] = shape.length;
  shape.forEach((s, i) => (w[2 + i] = s));
  strides.forEach((s, i) => (w[2 + MAX_RANK + i] = s));
  return w;
}
const isContig = (shape: readonly number[], strides: readonly number[]) => shape.length === 1 && strides[0] === 1;

function bucket(bytes: number): number {
  if (bytes <= 4096) return roundUp(Math.max(bytes, 4), 256);
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = p / 8;
  return roundUp(bytes, step);
}

function grid(groups: number, maxDim: number): [number, number] {
  if (groups <= maxDim) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxDim);
  return [Math.ceil(groups / y), y];
}

export class WebGPUBackend implements Backend<GpuStorage> {
  readonly name = 'webgpu';
  readonly caps: Caps;
  readonly adapterName: string;
  readonly limits: { maxStorageBufferBindingSize: number; maxBufferSize: number; maxWorkgroupStorage: number; maxGroups: number; metaAlign: number };

  private pool = new Map<number, Slot[]>();
  private pooledBytes = 0;
  private allocatedBytes = 0;
  private buffersLive = 0;
  private stagingPool = new Map<number, GPUBuffer[]>();
  private pipelines = new Map<string, GPUComputePipeline>();
  private layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batch = 1;
  private pending = 0;
  private submits = 0;
  private dispatches = 0;
  private meta = new Uint32Array(META_WORDS);
  private metaUsed = 0;
  private metaBuf: GPUBuffer;
  private lost: string | null = null;
  /** Outputs per invocation along each tile side (4: 256 invocations of 4×4; 8: 64 of 8×8). */
  gemmRegs = 8;
  /** Split-K kicks in below this many output tiles (GPUs need many workgroups; CPU drivers few). */
  splitKBelowTiles = 32;
  private gpuError: string | null = null;

  constructor(
    readonly device: GPUDevice,
    adapterInfo: { vendor?: string; architecture?: string; device?: string; description?: string },
    private keepAlive: unknown,
  ) {
    this.caps = { f16: device.features.has('shader-f16') };
    this.adapterName = [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description || adapterInfo.device].filter(Boolean).join(' ') || 'unknown adapter';
    const l = device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize,
      maxGroups: l.maxComputeWorkgroupsPerDimension,
      metaAlign: Math.max(16, l.minStorageBufferOffsetAlignment) / 4,
    };
    // Software Vulkan drivers run a handful of workgroups in parallel: split-K only for tiny outputs.
    if (/llvmpipe|lavapipe|swiftshader/i.test(this.adapterName)) this.splitKBelowTiles = 4;
    this.metaBuf = device.createBuffer({ size: META_WORDS * 4, usage: STORAGE | COPY_DST });
    void device.lost.then((info) => {
      this.lost = `${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''}`;
    });
    const onError = (e: { error?: { message?: string } }) => {
      this.gpuError ??= e.error?.message ?? 'unknown GPU error';
    };
    if ('addEventListener' in device) device.addEventListener('uncapturederror', onError as never);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
  }

  // Housekeeping -------------------------------------------------------------------------------

  private check(): void {
    if (this.lost !== null) {
      throw new BackendError(`webgpu: the GPU device was lost (${this.lost}); tensors on it are gone — re-create the backend`);
    }
    if (this.gpuError !== null) {
      const msg = this.gpuError;
      this.gpuError = null;
      throw new BackendError(`webgpu: a GPU command failed: ${msg}`);
    }
  }

  private newSlot(bytes: number, what: string): Slot {
    if (bytes > this.limits.maxStorageBufferBindingSize || bytes > this.limits.maxBufferSize) {
      const limit = Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
      throw new BackendError(
        `webgpu: ${what} needs ${bytes} bytes, more than this device's maxStorageBufferBindingSize of ${limit} bytes (${this.adapterName}); split the tensor or use the cpu/wasm backend`,
      );
    }
    const size = bucket(bytes);
    const list = this.pool.get(size);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST });
    this.allocatedBytes += size;
    this.buffersLive++;
    return { buffer, bytes: size, lastUse: 0 };
  }

  private make(dtype: DType, size: number): GpuStorage {
    if (dtype === 'float64') {
      throw new DTypeError('webgpu: float64 is not supported (WGSL has no f64); cast to float32 or use the cpu backend');
    }
    const bytes = roundUp(Math.max(size, 1) * gpuItemSize(dtype), 4);
    return { slot: this.newSlot(bytes, `a ${dtype} tensor of ${size} elements`), dtype, size, freed: false };
  }

  private f32temp(size: number): GpuStorage {
    return this.make('float32', size);
  }

  private layout(accesses: string): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(accesses);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [...accesses].map((a, i) => ({
        binding: i,
        visibility: 4, // GPUShaderStage.COMPUTE
        buffer: { type: a === 'r' ? 'read-only-storage' : 'storage' },
      }));
      const bgl = this.device.createBindGroupLayout({ entries });
      l = { bgl, pl: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }) };
      this.layouts.set(accesses, l);
    }
    return l;
  }

  private pipeline(key: string, accesses: string, source: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const code = source();
      const module = this.device.createShaderModule({ code, label: key });
      if (typeof module.getCompilationInfo === 'function') {
        void module.getCompilationInfo().then((info) => {
          const errors = info.messages.filter((m) => m.type === 'error');
          if (errors.length) {
            const text = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
            this.gpuError ??= `WGSL compile error in kernel ${key}:\n${text}`;
            if (typeof process !== 'undefined' && process.env?.KILN_WEBGPU_DEBUG) console.error(code, text);
          }
        });
      }
      p = this.device.createComputePipeline({ layout: this.layout(accesses).pl, compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Encodes one dispatch. `bufs` are bindings 1.. in order; `accesses` has one char per binding incl. meta ('r' or 'w'). */
  private dispatch(key: string, source: () => string, bufs: GpuStorage[], accesses: string, meta: readonly number[], groups: readonly [number, number?, number?]): void {
    this.check();
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const pipe = this.pipeline(key, 'r' + accesses, source);
    const words = roundUp(Math.max(meta.length, 4), this.limits.metaAlign);
    if (this.metaUsed + words > META_WORDS) this.flush();
    const at = this.metaUsed;
    for (let i = 0; i < meta.length; i++) this.meta[at + i] = meta[i];
    this.metaUsed += words;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.metaBuf, offset: at * 4, size: words * 4 } }];
    bufs.forEach((b, i) => {
      b.slot.lastUse = this.batch;
      entries.push({ binding: i + 1, resource: { buffer: b.slot.buffer } });
    });
    const bg = this.device.createBindGroup({ layout: this.layout('r' + accesses).bgl, entries });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(pipe);
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

  private linear(n: number): [number, number] {
    return grid(Math.ceil(n / WG), this.limits.maxGroups);
  }

  // Memory -------------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): GpuStorage {
    this.check();
    return this.make(dtype, size);
  }

  upload(dtype: DType, data: TypedArray): GpuStorage {
    this.check();
    const s = this.make(dtype, data.length);
    if (data.length === 0) return s;
    let src: ArrayBufferView;
    if (dtype === 'bool') src = Uint32Array.from(data as Uint8Array);
    else if (dtype === 'float16' || dtype === 'bfloat16') {
      src = data.length % 2 === 0 ? data : (() => {
        const p = new Uint16Array(data.length + 1);
        p.set(data);
        return p;
      })();
    } else src = data;
    if (s.slot.lastUse === this.batch) this.flush();
    this.device.queue.writeBuffer(s.slot.buffer, 0, src.buffer, src.byteOffset, src.byteLength);
    return s;
  }

  async download(x: GV): Promise<TypedArray> {
    this.check();
    const n = numel(x.shape);
    const isz = gpuItemSize(x.dtype);
    const out = (): TypedArray => {
      switch (x.dtype) {
        case 'float32':
          return new Float32Array(n);
        case 'int32':
          return new Int32Array(n);
        case 'bool':
          return new Uint8Array(n);
        default:
          return new Uint16Array(n);
      }
    };
    if (n === 0) return out();
    const c = coalesce(x.shape, [x.strides]);
    let src = x.storage;
    let offBytes = x.offset * isz;
    let temp: GpuStorage | null = null;
    if (!isContig(c.shape, c.strides[0]) || offBytes % 4 !== 0) {
      temp = this.unary('copy', x, x.dtype);
      src = temp;
      offBytes = 0;
    }
    const bytes = roundUp(n * isz, 4);
    const staging = this.stagingPool.get(bytes)?.pop() ?? this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(src.slot.buffer, offBytes, staging, 0, bytes);
    src.slot.lastUse = this.batch;
    this.flush();
    if (temp) this.free(temp);
    try {
      await staging.mapAsync(MODE_READ, 0, bytes);
    } catch (err) {
      this.check();
      throw new BackendError(`webgpu: reading back ${n} ${x.dtype} elements failed: ${(err as Error).message}`, { cause: err });
    }
    this.check();
    const raw = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    const list = this.stagingPool.get(bytes) ?? [];
    if (list.length < 4) {
      list.push(staging);
      this.stagingPool.set(bytes, list);
    } else staging.destroy();
    switch (x.dtype) {
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

  free(storage: GpuStorage): void {
    if (!storage || storage.freed) return;
    storage.freed = true;
    const slot = storage.slot;
    if (this.lost !== null || this.pooledBytes + slot.bytes > POOL_CAP_BYTES) {
      slot.buffer.destroy();
      this.allocatedBytes -= slot.bytes;
      this.buffersLive--;
      return;
    }
    const list = this.pool.get(slot.bytes) ?? [];
    list.push(slot);
    this.pool.set(slot.bytes, list);
    this.pooledBytes += slot.bytes;
  }

  memoryInfo(): Record<string, number> {
    return {
      gpuAllocatedBytes: this.allocatedBytes,
      gpuPoolBytes: this.pooledBytes,
      gpuBuffers: this.buffersLive,
      gpuPipelines: this.pipelines.size,
      gpuSubmits: this.submits,
      gpuDispatches: this.dispatches,
    };
  }

  async sync(): Promise<void> {
    this.check();
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  dispose(): void {
    this.flush();
    for (const list of this.pool.values()) for (const s of list) s.buffer.destroy();
    for (const list of this.stagingPool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.stagingPool.clear();
    this.pooledBytes = 0;
    this.device.destroy();
    this.keepAlive = null;
  }

  // Elementwise --------------------------------------------------------------------------------

  /**
   * One invocation per output element: loads each input through its (coalesced) strides, applies
   * `expr` (in f32, or i32 when `int`), stores into `out` (a fresh storage or a strided window).
   */
  private elementwise(tag: string, inputs: GV[], names: string[], out: GV, expr: string, int: boolean, extraMeta: number[] = []): void {
    const n = numel(out.shape);
    if (n === 0) return;
    const c = coalesce(out.shape, [...inputs.map((v) => v.strides), out.strides]);
    const views = [...inputs, out];
    const contig = views.map((_, i) => isContig(c.shape, c.strides[i]));
    const meta: number[] = [n, 0];
    views.forEach((v, i) => meta.push(...viewWords(v.offset, c.shape, c.strides[i])));
    const extraBase = meta.length;
    meta.push(...extraMeta);
    const bindings: Binding[] = inputs.map((v, i) => ({ name: names[i], dtype: v.dtype, access: 'read' }));
    bindings.push({ name: 'out', dtype: out.dtype, access: 'write' });
    const key = `ew:${tag}:${int ? 'i' : 'f'}:${views.map((v, i) => v.dtype + (contig[i] ? 'c' : 's')).join(',')}`;
    const source = () => {
      const idx = views.map((_, i) => indexer(bindings[i].name, 2 + i * VIEW_WORDS, contig[i])).join('');
      const p = int ? 'ldi_' : 'ld_';
      const loads = names.map((nm) => `  let ${nm} = ${p}${nm}(idx_${nm}(gid));`).join('\n');
      return (
        header(this.caps, bindings, MATH + idx + `const EXTRA = ${extraBase}u;\n`) +
        linearMain(WG, `  if (gid >= md[0]) { return; }\n${loads}\n  ${int ? 'sti_' : 'st_'}out(idx_out(gid), ${expr});`)
      );
    };
    this.dispatch(key, source, [...inputs.map((v) => v.storage), out.storage], 'r'.repeat(inputs.length) + 'w', meta, this.linear(n));
  }

  private fresh(dtype: DType, shape: readonly number[]): GV {
    const n = numel(shape);
    return { storage: this.make(dtype, n), dtype, shape: [n], strides: [1], offset: 0 };
  }

  fill(dtype: DType, size: number, value: number): GpuStorage {
    this.check();
    const out = this.fresh(dtype, [size]);
    const int = isIntish(dtype);
    const bits = int ? i32bits(dtype === 'bool' ? (value !== 0 ? 1 : 0) : Math.trunc(value)) : f32bits(value);
    this.elementwise('fill', [], [], out, int ? 'bitcast<i32>(md[EXTRA])' : 'bitcast<f32>(md[EXTRA])', int, [bits]);
    return out.storage;
  }

  unary(op: UnaryOp, x: GV, outDtype: DType): GpuStorage {
    this.check();
    const int = isIntish(x.dtype) && isIntish(outDtype) && UNARY_I[op] !== undefined;
    const out: GV = { ...this.fresh(outDtype, x.shape), shape: x.shape, strides: contiguous(x.shape) };
    this.elementwise(`u.${op}`, [x], ['x'], out, int ? UNARY_I[op]! : UNARY_F[op], int);
    return out.storage;
  }

  binary(op: BinaryOp, a: GV, b: GV, outDtype: DType): GpuStorage {
    this.check();
    const int = isIntish(a.dtype) && isIntish(b.dtype) && isIntish(outDtype) && BINARY_I[op] !== undefined;
    const out: GV = { ...this.fresh(outDtype, a.shape), shape: a.shape, strides: contiguous(a.shape) };
    this.elementwise(`b.${op}`, [a, b], ['a', 'b'], out, int ? BINARY_I[op]! : BINARY_F[op], int);
    return out.storage;
  }

  where(cond: GV, a: GV, b: GV, outDtype: DType): GpuStorage {
    this.check();
    const int = isIntish(a.dtype) && isIntish(b.dtype) && isIntish(outDtype);
    const out: GV = { ...this.fresh(outDtype, a.shape), shape: a.shape, strides: contiguous(a.shape) };
    this.elementwise('where', [cond, a, b], ['c', 'a', 'b'], out, int ? 'select(b, a, c != 0)' : 'select(b, a, c != 0.0)', int);
    return out.storage;
  }

  copyInto(dst: GV, src: GV): void {
    this.check();
    let s = src;
    let temp: GpuStorage | null = null;
    if (src.storage === dst.storage) {
      temp = this.unary('copy', src, src.dtype);
      s = { storage: temp, dtype: src.dtype, shape: src.shape, strides: contiguous(src.shape), offset: 0 };
    }
    const int = isIntish(s.dtype) && isIntish(dst.dtype);
    this.elementwise('copyInto', [s], ['x'], dst, 'x', int);
    if (temp) this.free(temp);
  }

  random(dist: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], counter: number): GpuStorage {
    this.check();
    const out = this.make(dtype, size);
    const blocks = Math.ceil(size / 4);
    const meta = [size, blocks, key[0] >>> 0, key[1] >>> 0, counter >>> 0, Math.floor(counter / 2 ** 32) >>> 0];
    const bindings: Binding[] = [{ name: 'out', dtype, access: 'write' }];
    const normal = dist === 'normal';
    const source = () =>
      header(this.caps, bindings, MATH + PHILOX) +
      linearMain(
        WG,
        `  if (gid >= md[1]) { return; }
  let lo = md[4] + gid;
  let hi = md[5] + select(0u, 1u, lo < md[4]);
  let x = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(md[2], md[3]));
  var v: vec4<f32>;
  ${
    normal
      ? `for (var l = 0u; l < 4u; l = l + 2u) {
    let k1 = (x[l] >> 8u) + 1u;
    let u1 = f32(k1) * 5.9604644775390625e-8;
    let t = f32(16777216u - k1) * 5.9604644775390625e-8;
    var lg: f32;
    if (t < 0.01) { lg = -(t + t * t * (0.5 + t * (0.3333333333 + t * (0.25 + t * 0.2)))); } else { lg = log(u1); }
    let r = sqrt(-2.0 * lg);
    let u2 = f32(x[l + 1u] >> 8u) * 5.9604644775390625e-8;
    let sc = sincos_turns(u2);
    v[l] = r * sc.y;
    v[l + 1u] = r * sc.x;
  }`
      : `v = vec4<f32>(x >> vec4<u32>(8u)) * 5.9604644775390625e-8;`
  }
  for (var l = 0u; l < 4u; l = l + 1u) {
    let i = gid * 4u + l;
    if (i < md[0]) { st_out(i, v[l]); }
  }`,
      );
    this.dispatch(`random:${dist}:${dtype}`, source, [out], 'w', meta, this.linear(blocks));
    return out;
  }

  // Reductions ---------------------------------------------------------------------------------

  reduce(op: ReduceOp, x: GV, axes: readonly number[]): GpuStorage {
    this.check();
    const keptShape: number[] = [];
    const keptStrides: number[] = [];
    const redShape: number[] = [];
    const redStrides: number[] = [];
    x.shape.forEach((d, i) => {
      if (axes.includes(i)) {
        redShape.push(d);
        redStrides.push(x.strides[i]);
      } else {
        keptShape.push(d);
        keptStrides.push(x.strides[i]);
      }
    });
    const nOut = numel(keptShape);
    const R = numel(redShape);
    const int = x.dtype === 'int32' || x.dtype === 'bool';
    const perThread = R <= 64 || nOut >= 4096;
    // Long reductions into few outputs: first pass over P chunks per output (many workgroups),
    // then a second reduction over the [nOut, P] partials.
    const P = !perThread && nOut < 256 && R > 16384 ? Math.min(Math.ceil(R / 8192), 1024, Math.floor(this.limits.maxGroups / nOut)) : 1;
    const C = Math.ceil(R / P);
    const outDtype: DType = P > 1 ? (int ? 'int32' : 'float32') : x.dtype;
    const out = this.make(outDtype, nOut * P);
    if (nOut === 0) return out;
    const k = coalesce(keptShape, [keptStrides]);
    const r = coalesce(redShape, [redStrides]);
    const T = int ? 'i32' : 'f32';
    const meta = [nOut, R, ...viewWords(x.offset, k.shape, k.strides[0]), ...viewWords(0, r.shape, r.strides[0]), P, C];
    const PW = 2 + 2 * VIEW_WORDS;
    const bindings: Binding[] = [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'out', dtype: outDtype, access: 'write' },
    ];
    const kc = isContig(k.shape, k.strides[0]);
    const rc = isContig(r.shape, r.strides[0]);
    const init = op === 'sum' ? `${T}(0)` : int ? (op === 'max' ? 'i32(-2147483647 - 1)' : 'i32(2147483647)') : op === 'max' ? 'ninf_f()' : 'pinf_f()';
    const comb = op === 'sum' ? 'a + b' : op === 'max' ? 'max(a, b)' : 'min(a, b)';
    const nanFix = !int && op !== 'sum';
    const RW = 128;
    const ld = int ? 'ldi_x' : 'ld_x';
    const st = int ? 'sti_out' : 'st_out';
    const common = () =>
      header(this.caps, bindings) +
      indexer('k', 2, kc) +
      indexer('r', 2 + VIEW_WORDS, rc) +
      `fn comb(a: ${T}, b: ${T}) -> ${T} { return ${comb}; }\n`;
    const key = `reduce:${op}:${x.dtype}:${outDtype}:${perThread ? 't' : 'w'}:${kc}${rc}`;
    if (perThread) {
      const source = () =>
        common() +
        linearMain(
          WG,
          `  if (gid >= md[0]) { return; }
  let base = idx_k(gid);
  var acc = ${init};
  var nan = false;
  for (var j = 0u; j < md[1]; j = j + 1u) {
    let v = ${ld}(base + idx_r(j));
    ${nanFix ? 'nan = nan || isnan_f(v);' : ''}
    acc = comb(acc, v);
  }
  ${nanFix ? 'if (nan) { acc = nan_f(); }' : ''}
  ${st}(gid, acc);`,
        );
      this.dispatch(key, source, [x.storage, out], 'rw', meta, this.linear(nOut));
    } else {
      const source = () =>
        common() +
        `var<workgroup> red: array<${T}, ${RW}>;
var<workgroup> rnan: array<u32, ${RW}>;
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let id = wid.x + wid.y * nwg.x;
  let P = md[${PW}u];
  let o = id / P;
  if (o >= md[0]) { return; }
  let jb = (id % P) * md[${PW + 1}u];
  let je = min(md[1], jb + md[${PW + 1}u]);
  let base = idx_k(o);
  var acc = ${init};
  var nan = 0u;
  for (var j = jb + li; j < je; j = j + ${RW}u) {
    let v = ${ld}(base + idx_r(j));
    ${nanFix ? 'if (isnan_f(v)) { nan = 1u; }' : ''}
    acc = comb(acc, v);
  }
  red[li] = acc;
  rnan[li] = nan;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = comb(red[li], red[li + s]); rnan[li] = rnan[li] | rnan[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    var r = red[0];
    ${nanFix ? 'if (rnan[0] != 0u) { r = nan_f(); }' : ''}
    ${st}(id, r);
  }
}`;
      this.dispatch(key, source, [x.storage, out], 'rw', meta, grid(nOut * P, this.limits.maxGroups));
    }
    if (P === 1) return out;
    const res = this.reduce(op, { storage: out, dtype: outDtype, shape: [nOut, P], strides: [P, 1], offset: 0 }, [1]);
    this.free(out);
    if (outDtype === x.dtype) return res;
    const cast = this.unary('copy', { storage: res, dtype: outDtype, shape: [nOut], strides: [1], offset: 0 }, x.dtype);
    this.free(res);
    return cast;
  }

  // GEMM family --------------------------------------------------------------------------------

  /**
   * A 64×64-tiled GEMM over `Z` independent problems (workgroup z = problem × split). `loads` defines
   * `loadA(z, m, k)`, `loadB(z, k, n)` and `outIndex(z, m, n)`; split-K writes f32 partials that a
   * second kernel sums in a fixed order.
   */
  private gemm(
    tag: string,
    M: number,
    N: number,
    K: number,
    Z: number,
    inputs: { name: string; storage: GpuStorage; dtype: DType; vec4?: boolean }[],
    outDtype: DType,
    outSize: number,
    loads: string,
    extraMeta: number[],
    aMode: 'k' | 'm' | 'v',
    bMode: 'n' | 'k' | 'v',
  ): GpuStorage {
    const out = this.make(outDtype, outSize);
    if (outSize === 0) return out;
    if (K === 0) {
      this.free(out);
      return this.fill(outDtype, outSize, 0);
    }
    const tiles = Math.ceil(M / 64) * Math.ceil(N / 64) * Z;
    let splits = 1;
    if (tiles < this.splitKBelowTiles && K >= 512) splits = Math.max(1, Math.min(Math.floor((2 * this.splitKBelowTiles) / tiles), Math.ceil(K / 256), Math.floor(65535 / Z)));
    let kchunk = roundUp(Math.ceil(K / splits), 16);
    splits = Math.ceil(K / kchunk);
    if (splits === 1) kchunk = K;
    const split = splits > 1;
    const part = split ? this.f32temp(splits * outSize) : null;
    const meta = [M, N, K, splits, kchunk, outSize, ...extraMeta];
    const bindings: Binding[] = inputs.map((i) => ({ name: i.name, dtype: i.dtype, access: 'read', vec4: i.vec4 }));
    bindings.push(split ? { name: 'part', dtype: 'float32', access: 'write' } : { name: 'out', dtype: outDtype, access: 'write' });
    const key = `gemm${this.gemmRegs}:${tag}:${aMode}${bMode}:${inputs.map((i) => i.dtype).join(',')}:${split ? 'split' : outDtype}`;
    const R = this.gemmRegs;
    const V = R / 4;
    const T = (64 / R) ** 2;
    const aLoad =
      aMode === 'v'
        ? `for (var t = 0u; t < ${256 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let am = e / 4u;
      let aq = e % 4u;
      var va = vec4<f32>(0.0);
      if (m0 + am < M && kt + aq * 4u < ke) { va = loadA4(z, m0 + am, kt + aq * 4u); }
      for (var c = 0u; c < 4u; c = c + 1u) { As[(aq * 4u + c) * 16u + am / 4u][am % 4u] = va[c]; }
    }`
        : `for (var t = 0u; t < ${1024 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let am = ${aMode === 'k' ? 'e / TK' : 'e % TM'};
      let ak = ${aMode === 'k' ? 'e % TK' : 'e / TM'};
      var va = 0.0;
      if (m0 + am < M && kt + ak < ke) { va = loadA(z, m0 + am, kt + ak); }
      As[ak * 16u + am / 4u][am % 4u] = va;
    }`;
    const bLoad =
      bMode === 'v'
        ? `for (var t = 0u; t < ${256 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let bk = e / 16u;
      let bq = e % 16u;
      var vb = vec4<f32>(0.0);
      if (n0 + bq * 4u < N && kt + bk < ke) { vb = loadB4(z, kt + bk, n0 + bq * 4u); }
      Bs[bk * 16u + bq] = vb;
    }`
        : `for (var t = 0u; t < ${1024 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let bn = ${bMode === 'n' ? 'e % TN' : 'e / TK'};
      let bk = ${bMode === 'n' ? 'e / TN' : 'e % TK'};
      var vb = 0.0;
      if (n0 + bn < N && kt + bk < ke) { vb = loadB(z, kt + bk, n0 + bn); }
      Bs[bk * 16u + bn / 4u][bn % 4u] = vb;
    }`;
    const accs: string[] = [];
    const fmas: string[] = [];
    const stores: string[] = [];
    for (let u = 0; u < V; u++) fmas.push(`let a${u} = As[kk * 16u + ty * ${V}u + ${u}u];`, `let b${u} = Bs[kk * 16u + tx * ${V}u + ${u}u];`);
    for (let i = 0; i < R; i++)
      for (let v = 0; v < V; v++) {
        accs.push(`var c${i}_${v} = vec4<f32>(0.0);`);
        fmas.push(`c${i}_${v} = c${i}_${v} + a${i >> 2}[${i & 3}] * b${v};`);
      }
    const stOne = split ? 'st_part(sp * md[5] + outIndex(z, m, n), v);' : 'st_out(outIndex(z, m, n), v);';
    for (let i = 0; i < R; i++) {
      const body: string[] = [];
      for (let v = 0; v < V; v++)
        body.push(`for (var j = 0u; j < 4u; j = j + 1u) { let n = n0 + tx * ${R}u + ${v * 4}u + j; if (n < N) { let v = c${i}_${v}[j]; ${stOne} } }`);
      stores.push(`{ let m = m0 + ty * ${R}u + ${i}u; if (m < M) { ${body.join(' ')} } }`);
    }
    const source = () =>
      header(this.caps, bindings, loads) +
      `const TM = 64u;
const TN = 64u;
const TK = 16u;
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = md[0]; let N = md[1]; let K = md[2]; let splits = md[3]; let kchunk = md[4];
  let z = wid.z / splits;
  let sp = wid.z % splits;
  let kb = sp * kchunk;
  let ke = min(K, kb + kchunk);
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let tx = li % ${64 / R}u;
  let ty = li / ${64 / R}u;
  ${accs.join('\n  ')}
  for (var kt = kb; kt < ke; kt = kt + TK) {
    ${aLoad}
    ${bLoad}
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk = kk + 1u) {
      ${fmas.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}`;
    this.dispatch(key, source, [...inputs.map((i) => i.storage), split ? part! : out], 'r'.repeat(inputs.length) + 'w', meta, [
      Math.ceil(N / 64),
      Math.ceil(M / 64),
      Z * splits,
    ]);
    if (part) {
      const sb: Binding[] = [
        { name: 'p', dtype: 'float32', access: 'read' },
        { name: 'out', dtype: outDtype, access: 'write' },
      ];
      const src = () =>
        header(this.caps, sb) +
        linearMain(
          WG,
          `  if (gid >= md[0]) { return; }
  var s = 0.0;
  for (var j = 0u; j < md[1]; j = j + 1u) { s = s + ld_p(j * md[0] + gid); }
  st_out(gid, s);`,
        );
      this.dispatch(`splitsum:${outDtype}`, src, [part, out], 'rw', [outSize, splits], this.linear(outSize));
      this.free(part);
    }
    return out;
  }

  matmul(a: GV, b: GV): GpuStorage {
    this.check();
    const [B, M, K] = a.shape;
    const N = b.shape[2];
    const al4 = (x: number) => x % 4 === 0;
    // vec4 loads along the contiguous dim when everything stays 16-byte aligned.
    const aVec = a.dtype === 'float32' && a.strides[2] === 1 && al4(K) && al4(a.offset) && al4(a.strides[1]) && al4(a.strides[0]);
    const bVec = b.dtype === 'float32' && b.strides[2] === 1 && al4(N) && al4(b.offset) && al4(b.strides[1]) && al4(b.strides[0]);
    const loads = `
${aVec ? 'fn loadA4(z: u32, m: u32, k: u32) -> vec4<f32> { return a[(md[6] + z * md[7] + m * md[8] + k) / 4u]; }' : 'fn loadA(z: u32, m: u32, k: u32) -> f32 { return ld_a(md[6] + z * md[7] + m * md[8] + k * md[9]); }'}
${bVec ? 'fn loadB4(z: u32, k: u32, n: u32) -> vec4<f32> { return b[(md[10] + z * md[11] + k * md[12] + n) / 4u]; }' : 'fn loadB(z: u32, k: u32, n: u32) -> f32 { return ld_b(md[10] + z * md[11] + k * md[12] + n * md[13]); }'}
fn outIndex(z: u32, m: u32, n: u32) -> u32 { return (z * md[0] + m) * md[1] + n; }
`;
    const aMode = aVec ? 'v' : a.strides[2] === 1 || a.strides[1] !== 1 ? 'k' : 'm';
    const bMode = bVec ? 'v' : b.strides[2] === 1 || b.strides[1] !== 1 ? 'n' : 'k';
    return this.gemm(
      'mm',
      M,
      N,
      K,
      B,
      [
        { name: 'a', storage: a.storage, dtype: a.dtype, vec4: aVec },
        { name: 'b', storage: b.storage, dtype: b.dtype, vec4: bVec },
      ],
      a.dtype,
      B * M * N,
      loads,
      [a.offset, a.strides[0], a.strides[1], a.strides[2], b.offset, b.strides[0], b.strides[1], b.strides[2]],
      aMode,
      bMode,
    );
  }

  /** Conv metadata (after the 6 GEMM words) and the WGSL names for it. */
  private convMeta(xs: readonly number[], ws: readonly number[], ys: readonly number[], p: Conv2dParams, x: GV, w: GV, gy: GV | null): number[] {
    const [N, C, H, W] = xs;
    const [O, , kh, kw] = ws;
    const [, , Ho, Wo] = ys;
    const g = p.groups;
    const vw = (v: GV | null) => (v ? [v.offset, ...v.strides] : [0, 0, 0, 0, 0]);
    return [N, C, H, W, O, kh, kw, Ho, Wo, p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1], C / g, O / g, ...vw(x), ...vw(w), ...vw(gy)];
  }

  /** Conv index helpers; the kernel size is a compile-time constant so its divisions become multiplies. */
  private static convWgsl(kh: number, kw: number): string {
    return WebGPUBackend.CONV_WGSL.replace('fn cKH() -> u32 { return md[11]; }', `fn cKH() -> u32 { return ${kh}u; }`).replace(
      'fn cKW() -> u32 { return md[12]; }',
      `fn cKW() -> u32 { return ${kw}u; }`,
    );
  }

  private static CONV_WGSL = `
fn cN() -> u32 { return md[6]; }
fn cC() -> u32 { return md[7]; }
fn cH() -> u32 { return md[8]; }
fn cW() -> u32 { return md[9]; }
fn cO() -> u32 { return md[10]; }
fn cKH() -> u32 { return md[11]; }
fn cKW() -> u32 { return md[12]; }
fn cHo() -> u32 { return md[13]; }
fn cWo() -> u32 { return md[14]; }
fn cSH() -> i32 { return i32(md[15]); }
fn cSW() -> i32 { return i32(md[16]); }
fn cPH() -> i32 { return i32(md[17]); }
fn cPW() -> i32 { return i32(md[18]); }
fn cDH() -> i32 { return i32(md[19]); }
fn cDW() -> i32 { return i32(md[20]); }
fn cCG() -> u32 { return md[21]; }
fn cOG() -> u32 { return md[22]; }
fn xAt(n: u32, c: u32, h: u32, w: u32) -> u32 { return md[23] + n * md[24] + c * md[25] + h * md[26] + w * md[27]; }
fn wAt(o: u32, c: u32, i: u32, j: u32) -> u32 { return md[28] + o * md[29] + c * md[30] + i * md[31] + j * md[32]; }
fn gAt(n: u32, o: u32, h: u32, w: u32) -> u32 { return md[33] + n * md[34] + o * md[35] + h * md[36] + w * md[37]; }
// Input pixel read by output (oh, ow) through tap (i, j); -1 when it falls in the padding.
fn tapX(oh: u32, ow: u32, i: u32, j: u32) -> vec2<i32> {
  let ih = i32(oh) * cSH() - cPH() + i32(i) * cDH();
  let iw = i32(ow) * cSW() - cPW() + i32(j) * cDW();
  if (ih < 0 || ih >= i32(cH()) || iw < 0 || iw >= i32(cW())) { return vec2<i32>(-1, -1); }
  return vec2<i32>(ih, iw);
}
`;

  conv2d(x: GV, w: GV, p: Conv2dParams): GpuStorage {
    this.check();
    const [N, C, H, W] = x.shape;
    const [O, , kh, kw] = w.shape;
    const Ho = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
    const Wo = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
    const og = O / p.groups;
    const cg = C / p.groups;
    const loads =
      WebGPUBackend.convWgsl(kh, kw) +
      `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let khw = cKH() * cKW();
  let c = k / khw; let r = k % khw;
  return ld_w(wAt(z * cOG() + m, c, r / cKW(), r % cKW()));
}
fn loadB(z: u32, k: u32, p: u32) -> f32 {
  let khw = cKH() * cKW();
  let c = k / khw; let r = k % khw;
  let hw = cHo() * cWo();
  let n = p / hw; let q = p % hw;
  let t = tapX(q / cWo(), q % cWo(), r / cKW(), r % cKW());
  if (t.x < 0) { return 0.0; }
  return ld_x(xAt(n, z * cCG() + c, u32(t.x), u32(t.y)));
}
fn outIndex(z: u32, m: u32, p: u32) -> u32 {
  let hw = cHo() * cWo();
  return ((p / hw) * cO() + z * cOG() + m) * hw + p % hw;
}
`;
    return this.gemm(
      `conv${kh}x${kw}`,
      og,
      N * Ho * Wo,
      cg * kh * kw,
      p.groups,
      [
        { name: 'x', storage: x.storage, dtype: x.dtype },
        { name: 'w', storage: w.storage, dtype: w.dtype },
      ],
      x.dtype,
      N * O * Ho * Wo,
      loads,
      this.convMeta(x.shape, w.shape, [N, O, Ho, Wo], p, x, w, null),
      'k',
      'n',
    );
  }

  conv2dInputGrad(gy: GV, w: GV, inputShape: readonly number[], p: Conv2dParams): GpuStorage {
    this.check();
    const [N, C, H, W] = inputShape;
    const [O, , kh, kw] = w.shape;
    const og = O / p.groups;
    const cg = C / p.groups;
    const loads =
      WebGPUBackend.convWgsl(kh, kw) +
      `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let khw = cKH() * cKW();
  let o = k / khw; let r = k % khw;
  return ld_w(wAt(z * cOG() + o, m, r / cKW(), r % cKW()));
}
fn loadB(z: u32, k: u32, p: u32) -> f32 {
  let khw = cKH() * cKW();
  let o = k / khw; let r = k % khw;
  let i = r / cKW(); let j = r % cKW();
  let hw = cH() * cW();
  let n = p / hw; let q = p % hw;
  let th = i32(q / cW()) + cPH() - i32(i) * cDH();
  let tw = i32(q % cW()) + cPW() - i32(j) * cDW();
  if (th < 0 || tw < 0 || th % cSH() != 0 || tw % cSW() != 0) { return 0.0; }
  let oh = u32(th / cSH()); let ow = u32(tw / cSW());
  if (oh >= cHo() || ow >= cWo()) { return 0.0; }
  return ld_g(gAt(n, z * cOG() + o, oh, ow));
}
fn outIndex(z: u32, m: u32, p: u32) -> u32 {
  let hw = cH() * cW();
  return ((p / hw) * cC() + z * cCG() + m) * hw + p % hw;
}
`;
    return this.gemm(
      `dgrad${kh}x${kw}`,
      cg,
      N * H * W,
      og * kh * kw,
      p.groups,
      [
        { name: 'g', storage: gy.storage, dtype: gy.dtype },
        { name: 'w', storage: w.storage, dtype: w.dtype },
      ],
      gy.dtype,
      N * C * H * W,
      loads,
      this.convMeta(inputShape, w.shape, gy.shape, p, { ...gy, offset: 0, strides: [0, 0, 0, 0] }, w, gy),
      'm',
      'n',
    );
  }

  conv2dWeightGrad(x: GV, gy: GV, weightShape: readonly number[], p: Conv2dParams): GpuStorage {
    this.check();
    const [N, C] = x.shape;
    const [O, , kh, kw] = weightShape;
    const [, , Ho, Wo] = gy.shape;
    const og = O / p.groups;
    const cg = C / p.groups;
    const loads =
      WebGPUBackend.convWgsl(kh, kw) +
      `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let hw = cHo() * cWo();
  let n = k / hw; let q = k % hw;
  return ld_g(gAt(n, z * cOG() + m, q / cWo(), q % cWo()));
}
fn loadB(z: u32, k: u32, col: u32) -> f32 {
  let khw = cKH() * cKW();
  let c = col / khw; let r = col % khw;
  let hw = cHo() * cWo();
  let n = k / hw; let q = k % hw;
  let t = tapX(q / cWo(), q % cWo(), r / cKW(), r % cKW());
  if (t.x < 0) { return 0.0; }
  return ld_x(xAt(n, z * cCG() + c, u32(t.x), u32(t.y)));
}
fn outIndex(z: u32, m: u32, col: u32) -> u32 {
  return (z * cOG() + m) * cCG() * cKH() * cKW() + col;
}
`;
    return this.gemm(
      `wgrad${kh}x${kw}`,
      og,
      cg * kh * kw,
      N * Ho * Wo,
      p.groups,
      [
        { name: 'x', storage: x.storage, dtype: x.dtype },
        { name: 'g', storage: gy.storage, dtype: gy.dtype },
      ],
      x.dtype,
      O * cg * kh * kw,
      loads,
      this.convMeta(x.shape, weightShape, gy.shape, p, x, { ...x, offset: 0, strides: [0, 0, 0, 0] }, gy),
      'k',
      'k',
    );
  }

  // Rows: gather / scatter ---------------------------------------------------------------------

  gatherRows(table: GV, index: GV): GpuStorage {
    this.check();
    const [R, C] = table.shape;
    const Nn = index.shape[0];
    const out = this.make(table.dtype, Nn * C);
    const int = isIntish(table.dtype);
    const bindings: Binding[] = [
      { name: 't', dtype: table.dtype, access: 'read' },
      { name: 'ix', dtype: index.dtype, access: 'read' },
      { name: 'out', dtype: table.dtype, access: 'write' },
    ];
    const meta = [Nn * C, C, R, table.offset, table.strides[0], table.strides[1], index.offset, index.strides[0]];
    const source = () =>
      header(this.caps, bindings) +
      linearMain(
        WG,
        `  if (gid >= md[0]) { return; }
  let n = gid / md[1]; let c = gid % md[1];
  let r = ldi_ix(md[6] + n * md[7]);
  if (r < 0 || u32(r) >= md[2]) { ${int ? 'sti_out(gid, 0)' : 'st_out(gid, 0.0)'}; return; }
  ${int ? 'sti_out(gid, ldi_t' : 'st_out(gid, ld_t'}(md[3] + u32(r) * md[4] + c * md[5]));`,
      );
    this.dispatch(`gather:${table.dtype}:${index.dtype}`, source, [table.storage, index.storage, out], 'rrw', meta, this.linear(Nn * C));
    return out;
  }

  scatterAddRows(src: GV, index: GV, rows: number): GpuStorage {
    this.check();
    const [Nn, C] = src.shape;
    const out = this.fill(src.dtype, rows * C, 0);
    const bindings: Binding[] = [
      { name: 's', dtype: src.dtype, access: 'read' },
      { name: 'ix', dtype: index.dtype, access: 'read' },
      { name: 'out', dtype: src.dtype, access: 'write' },
    ];
    const meta = [Nn * C, C, rows, src.offset, src.strides[0], src.strides[1], index.offset, index.strides[0], Nn];
    // One invocation per (first occurrence of a row id, column): it sums every source row with
    // that id in order, so no two invocations write the same element and no atomics are needed.
    const source = () =>
      header(this.caps, bindings) +
      linearMain(
        WG,
        `  if (gid >= md[0]) { return; }
  let n = gid / md[1]; let c = gid % md[1];
  let r = ldi_ix(md[6] + n * md[7]);
  if (r < 0 || u32(r) >= md[2]) { return; }
  for (var j = 0u; j < n; j = j + 1u) { if (ldi_ix(md[6] + j * md[7]) == r) { return; } }
  var acc = 0.0;
  for (var j = n; j < md[8]; j = j + 1u) {
    if (ldi_ix(md[6] + j * md[7]) == r) { acc = acc + ld_s(md[3] + j * md[4] + c * md[5]); }
  }
  st_out(u32(r) * md[1] + c, acc);`,
      );
    this.dispatch(`scatter:${src.dtype}:${index.dtype}`, source, [src.storage, index.storage, out], 'rrw', meta, this.linear(Nn * C));
    return out;
  }

  // Fused row kernels --------------------------------------------------------------------------

  /** Shared workgroup reduction helpers (RW threads) for the row kernels. */
  private static rowReduce(RW: number): string {
    return `
var<workgroup> red: array<f32, ${RW}>;
fn wg_sum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
  }

  private rowKernel(
    tag: string,
    x: GV,
    rows: number,
    extra: { name: string; view: GV }[],
    meta: number[],
    body: string,
  ): GpuStorage {
    const n = numel(x.shape);
    const out = this.make(x.dtype, n);
    if (rows === 0 || n === 0) return out;
    const RW = 128;
    const views = [x, ...extra.map((e) => e.view)];
    const names = ['x', ...extra.map((e) => e.name)];
    const cs = views.map((v) => coalesce(v.shape, [v.strides]));
    const contig = cs.map((c) => isContig(c.shape, c.strides[0]));
    const base = 8;
    const words = [...meta];
    while (words.length < base) words.push(0);
    views.forEach((v, i) => words.push(...viewWords(v.offset, cs[i].shape, cs[i].strides[0])));
    const bindings: Binding[] = views.map((v, i) => ({ name: names[i], dtype: v.dtype, access: 'read' }));
    bindings.push({ name: 'out', dtype: x.dtype, access: 'write' });
    const key = `row:${tag}:${views.map((v, i) => v.dtype + (contig[i] ? 'c' : 's')).join(',')}`;
    const source = () =>
      header(this.caps, bindings) +
      names.map((nm, i) => indexer(nm, base + i * VIEW_WORDS, contig[i])).join('') +
      WebGPUBackend.rowReduce(RW) +
      `@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= md[0]) { return; }
  let RW = ${RW}u;
${body}
}`;
    this.dispatch(key, source, [...views.map((v) => v.storage), out], 'r'.repeat(views.length) + 'w', words, grid(rows, this.limits.maxGroups));
    return out;
  }

  softmax(x: GV, log: boolean): GpuStorage {
    this.check();
    const D = x.shape.length ? x.shape[x.shape.length - 1] : 1;
    const rows = D === 0 ? 0 : numel(x.shape) / D;
    return this.rowKernel(`softmax:${log}`, x, rows, [], [rows, D], `
  let D = md[1];
  let base = row * D;
  var m = ninf_f();
  for (var c = li; c < D; c = c + RW) { m = max(m, ld_x(idx_x(base + c))); }
  m = wg_max(m, li);
  var s = 0.0;
  for (var c = li; c < D; c = c + RW) { s = s + exp(ld_x(idx_x(base + c)) - m); }
  s = wg_sum(s, li);
  for (var c = li; c < D; c = c + RW) {
    let v = ld_x(idx_x(base + c));
    st_out(base + c, ${log ? 'v - m - log(s)' : 'exp(v - m) / s'});
  }`);
  }

  layerNorm(x: GV, weight: GV | null, bias: GV | null, normSize: number, eps: number): GpuStorage {
    this.check();
    const rows = normSize === 0 ? 0 : numel(x.shape) / normSize;
    const extra = [...(weight ? [{ name: 'w', view: weight }] : []), ...(bias ? [{ name: 'b', view: bias }] : [])];
    return this.rowKernel(`layerNorm:${!!weight}${!!bias}`, x, rows, extra, [rows, normSize, f32bits(eps)], `
  let D = md[1];
  let eps = bitcast<f32>(md[2]);
  let base = row * D;
  var s = 0.0;
  for (var c = li; c < D; c = c + RW) { s = s + ld_x(idx_x(base + c)); }
  let mean = wg_sum(s, li) / f32(D);
  var q = 0.0;
  for (var c = li; c < D; c = c + RW) { let d = ld_x(idx_x(base + c)) - mean; q = q + d * d; }
  let rstd = 1.0 / sqrt(wg_sum(q, li) / f32(D) + eps);
  for (var c = li; c < D; c = c + RW) {
    var y = (ld_x(idx_x(base + c)) - mean) * rstd;
    ${weight ? 'y = y * ld_w(idx_w(c));' : ''}
    ${bias ? 'y = y + ld_b(idx_b(c));' : ''}
    st_out(base + c, y);
  }`);
  }

  groupNorm(x: GV, groups: number, weight: GV | null, bias: GV | null, eps: number, silu: boolean): GpuStorage {
    this.check();
    const [N, C] = x.shape;
    const spatial = numel(x.shape.slice(2));
    const cg = C / groups;
    const extra = [...(weight ? [{ name: 'w', view: weight }] : []), ...(bias ? [{ name: 'b', view: bias }] : [])];
    return this.rowKernel(`groupNorm:${!!weight}${!!bias}${silu}`, x, N * groups, extra, [N * groups, cg * spatial, f32bits(eps), spatial, cg, groups], `
  let S = md[1];
  let eps = bitcast<f32>(md[2]);
  let spatial = md[3];
  let g = row % md[5];
  let base = row * S;
  var s = 0.0;
  for (var i = li; i < S; i = i + RW) { s = s + ld_x(idx_x(base + i)); }
  let mean = wg_sum(s, li) / f32(S);
  var q = 0.0;
  for (var i = li; i < S; i = i + RW) { let d = ld_x(idx_x(base + i)) - mean; q = q + d * d; }
  let rstd = 1.0 / sqrt(wg_sum(q, li) / f32(S) + eps);
  for (var i = li; i < S; i = i + RW) {
    let c = g * md[4] + i / spatial;
    var y = (ld_x(idx_x(base + i)) - mean) * rstd;
    ${weight ? 'y = y * ld_w(idx_w(c));' : ''}
    ${bias ? 'y = y + ld_b(idx_b(c));' : ''}
    ${silu ? 'y = y / (1.0 + exp(-y));' : ''}
    st_out(base + i, y);
  }`);
  }

  /**
   * Flash-attention style: one invocation per query row, key/value tiles staged in workgroup
   * memory, online softmax (running max and sum) so memory never grows with Lq × Lk.
   */
  attention(q: GV, k: GV, v: GV, mask: GV | null, causal: boolean, scale: number): GpuStorage {
    this.check();
    const [B, Lq, E] = q.shape;
    const Lk = k.shape[1];
    const Ev = v.shape[2];
    const out = this.make(q.dtype, B * Lq * Ev);
    if (B * Lq * Ev === 0) return out;
    const TQ = 64;
    const budget = Math.min(this.limits.maxWorkgroupStorage, 16384) - 1024;
    if ((E + Ev) * 4 > budget) {
      throw new BackendError(
        `webgpu: attention head dims E=${E}, Ev=${Ev} need ${(E + Ev) * 4} bytes of workgroup memory per key, more than the ${budget} this kernel budgets; use head dims up to ${Math.floor(budget / 8)} or the cpu/wasm backend`,
      );
    }
    const TK = Math.max(1, Math.min(32, Math.floor(budget / ((E + Ev) * 4))));
    const views = [q, k, v, ...(mask ? [mask] : [])];
    const names = ['q', 'k', 'v', ...(mask ? ['mk'] : [])];
    const cs = views.map((x) => coalesce(x.shape, [x.strides]));
    const contig = cs.map((c) => isContig(c.shape, c.strides[0]));
    const meta = [B, Lq, Lk, f32bits(scale), causal ? 1 : 0, 0, 0, 0];
    views.forEach((x, i) => meta.push(...viewWords(x.offset, cs[i].shape, cs[i].strides[0])));
    const bindings: Binding[] = views.map((x, i) => ({ name: names[i], dtype: x.dtype, access: 'read' }));
    bindings.push({ name: 'out', dtype: q.dtype, access: 'write' });
    // vec4 registers and tiles when both head dims allow it.
    const W = E % 4 === 0 && Ev % 4 === 0 ? 4 : 1;
    const T = W === 4 ? 'vec4<f32>' : 'f32';
    const [EW, EVW] = [E / W, Ev / W];
    const comp = (arr: string, i: string) => (W === 4 ? `${arr}[${i} / 4u][${i} % 4u]` : `${arr}[${i}]`);
    const key = `attn${W}:${E}:${Ev}:${TK}:${views.map((x, i) => x.dtype + (contig[i] ? 'c' : 's')).join(',')}`;
    const source = () =>
      header(this.caps, bindings) +
      names.map((nm, i) => indexer(nm, 8 + i * VIEW_WORDS, contig[i])).join('') +
      `const E = ${E}u;
const EV = ${Ev}u;
const EW = ${EW}u;
const EVW = ${EVW}u;
const TK = ${TK}u;
const TQ = ${TQ}u;
var<workgroup> Ks: array<${T}, ${TK * EW}>;
var<workgroup> Vs: array<${T}, ${TK * EVW}>;
@compute @workgroup_size(${TQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let Lq = md[1]; let Lk = md[2];
  let scale = bitcast<f32>(md[3]);
  let causal = md[4] != 0u;
  let b = wid.y;
  let row = wid.x * TQ + li;
  let valid = row < Lq;
  var qr: array<${T}, ${EW}>;
  var acc: array<${T}, ${EVW}>;
  for (var e = 0u; e < E; e = e + 1u) {
    var qv = 0.0;
    if (valid) { qv = ld_q(idx_q((b * Lq + row) * E + e)) * scale; }
    ${comp('qr', 'e')} = qv;
  }
  for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = ${T}(0.0); }
  var m = ninf_f();
  var l = 0.0;
  var s: array<f32, ${TK}>;
  for (var j0 = 0u; j0 < Lk; j0 = j0 + TK) {
    for (var t = li; t < TK * E; t = t + TQ) {
      let jj = j0 + t / E;
      var kv = 0.0;
      if (jj < Lk) { kv = ld_k(idx_k((b * Lk + jj) * E + t % E)); }
      ${comp('Ks', 't')} = kv;
    }
    for (var t = li; t < TK * EV; t = t + TQ) {
      let jj = j0 + t / EV;
      var vv = 0.0;
      if (jj < Lk) { vv = ld_v(idx_v((b * Lk + jj) * EV + t % EV)); }
      ${comp('Vs', 't')} = vv;
    }
    workgroupBarrier();
    if (valid) {
      let jn = min(TK, Lk - j0);
      var tmax = ninf_f();
      for (var jj = 0u; jj < jn; jj = jj + 1u) {
        var d = ${T}(0.0);
        for (var e = 0u; e < EW; e = e + 1u) { d = d + qr[e] * Ks[jj * EW + e]; }
        var sc = ${W === 4 ? 'd.x + d.y + d.z + d.w' : 'd'};
        ${mask ? 'sc = sc + ld_mk(idx_mk((b * Lq + row) * Lk + j0 + jj));' : ''}
        if (causal && j0 + jj > row) { sc = ninf_f(); }
        s[jj] = sc;
        tmax = max(tmax, sc);
      }
      let mn = max(m, tmax);
      if (mn != ninf_f()) {
        let corr = select(exp(m - mn), 0.0, m == ninf_f());
        l = l * corr;
        for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = acc[e] * corr; }
        for (var jj = 0u; jj < jn; jj = jj + 1u) {
          let p = select(exp(s[jj] - mn), 0.0, s[jj] == ninf_f());
          l = l + p;
          for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = acc[e] + p * Vs[jj * EVW + e]; }
        }
        m = mn;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    for (var e = 0u; e < EV; e = e + 1u) {
      let o = select(${comp('acc', 'e')} / l, nan_f(), l == 0.0);
      st_out((b * Lq + row) * EV + e, o);
    }
  }
}`;
    this.dispatch(key, source, [...views.map((x) => x.storage), out], 'r'.repeat(views.length) + 'w', meta, [Math.ceil(Lq / TQ), B]);
    return out;
  }

  adamw(param: GpuStorage, grad: GV, m: GpuStorage, v: GpuStorage, size: number, dtype: DType, hp: AdamWHyper): void {
    this.check();
    const bc1 = 1 - hp.beta1 ** hp.step;
    const bc2 = 1 - hp.beta2 ** hp.step;
    const c = coalesce(grad.shape, [grad.strides]);
    const gc = isContig(c.shape, c.strides[0]);
    const meta = [
      size,
      f32bits(1 - hp.lr * hp.weightDecay),
      f32bits(hp.beta1),
      f32bits(1 - hp.beta1),
      f32bits(hp.beta2),
      f32bits(1 - hp.beta2),
      f32bits(hp.lr),
      f32bits(bc1),
      f32bits(bc2),
      f32bits(hp.eps),
      ...viewWords(grad.offset, c.shape, c.strides[0]),
    ];
    const bindings: Binding[] = [
      { name: 'p', dtype, access: 'rw' },
      { name: 'g', dtype: grad.dtype, access: 'read' },
      { name: 'm1', dtype, access: 'rw' },
      { name: 'm2', dtype, access: 'rw' },
    ];
    const source = () =>
      header(this.caps, bindings) +
      indexer('g', 10, gc) +
      linearMain(
        WG,
        `  if (gid >= md[0]) { return; }
  let g = ld_g(idx_g(gid));
  var p = ld_p(gid) * bitcast<f32>(md[1]);
  let mm = bitcast<f32>(md[2]) * ld_m1(gid) + bitcast<f32>(md[3]) * g;
  let vv = bitcast<f32>(md[4]) * ld_m2(gid) + bitcast<f32>(md[5]) * g * g;
  p = p - (bitcast<f32>(md[6]) * (mm / bitcast<f32>(md[7]))) / (sqrt(vv / bitcast<f32>(md[8])) + bitcast<f32>(md[9]));
  st_p(gid, p);
  st_m1(gid, mm);
  st_m2(gid, vv);`,
      );
    this.dispatch(`adamw:${dtype}:${grad.dtype}:${gc}`, source, [param, grad.storage, m, v], 'wrww', meta, this.linear(size));
  }
}

function contiguous(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
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
