/**
 * The compute engine of the wasm backend: one WebAssembly memory (shared when threads are
 * available), the emitted kernel module instantiated on the main thread and on every worker, and
 * a dispatcher that runs a `task_*` export on all threads and blocks until they are done.
 *
 * Synchronisation is a few i32 slots at address 0 of the shared memory: the main thread writes the
 * task and its descriptor, bumps a generation counter and notifies; each worker runs its share and
 * bumps a done counter. Ops are synchronous, so the main thread waits (Atomics.wait in Node and in
 * workers; a spin on Atomics.load on a browser main thread, where waiting is not allowed).
 */
import { DEFAULT_CONFIG, TASKS, buildModule } from './kernels.js';
import type { KernelConfig, TaskName } from './kernels.js';
import { hasRelaxedSimd, hasSimd } from './emit.js';
import { ArgumentError } from '../../errors.js';
import { Heap } from './heap.js';
import { streamChunks } from './stream-chunks.js';

const PAGE = 65536;
/** Bytes below this are the control block and descriptors. */
export const SCRATCH_BASE = 65536;
/** 2 GiB: the kernels compare byte addresses as signed i32, so everything stays below 2^31. */
const MAX_PAGES = 32768;
/** The top of the usable memory: one page short of 2^31, so that end addresses stay positive. */
const TOP = MAX_PAGES * PAGE - PAGE;
/** Default `heapBytes`. */
export const HEAP_BYTES = 1 << 30;
/** Scratch a heap always leaves a kernel. */
const MIN_SCRATCH = 256 << 20;
const CTRL = { gen: 0, done: 1, task: 2, desc: 3, threads: 4, error: 5, spin: 6 } as const;

/** Threads and SIMD of the wasm engine. @example k.registerWasmBackend({ threads: 1, relaxedSimd: false }); // single-threaded, plain SIMD */
export interface EngineOptions {
  /** Worker threads including the main thread; default: all cores. 1 disables workers. */
  threads?: number;
  /** Use relaxed-SIMD FMA when the engine has it (default true). */
  relaxedSimd?: boolean;
  /** Kernel blocking overrides (for tuning). */
  kernel?: Partial<Omit<KernelConfig, 'relaxed'>>;
  /**
   * Work estimated below this many microseconds on one thread runs on the calling thread alone:
   * waking a worker and waiting for it costs ~20–30 µs on a 2-vCPU VM (measured with a SiLU and a
   * GEMM sweep, `benchmarks/README.md`). Default 60, or env KILN_WASM_PARALLEL_MIN_US; 0 always
   * uses every thread.
   */
  parallelMinUs?: number;
  /**
   * Microseconds a thread spins on the shared counters before it sleeps in `Atomics.wait` (workers
   * between tasks, the calling thread while its workers finish). Default 0, sleep at once: on a
   * loaded 2-vCPU VM a 50 µs spin halved small ops' time in some runs and added ~100 µs in others
   * (a spinning thread loses its vCPU to other processes), so it is a tuning knob for quiet machines.
   */
  spinUs?: number;
  /**
   * Bytes of the engine's 2 GiB memory that hold tensors (large f32 ones, from 64 KiB), which the
   * kernels then read and write in place; the rest is the kernels' scratch. Default 1 GiB; at most
   * 2 GiB − 256 MiB. Tensors that do not fit are stored outside and copied in per op, as with 0.
   */
  heapBytes?: number;
}

/** Default of `parallelMinUs` (see there). */
export const PARALLEL_MIN_US = 60;
/** Default of `spinUs`. */
export const SPIN_US = 0;

const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

/** Imports a Node builtin without letting browser bundlers try to resolve it. */
function nodeImport<T>(specifier: string): Promise<T> {
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}

/** The task index (one past the kernels) that runs `streamChunks` on every thread. */
const STREAM_TASK = TASKS.length;

/**
 * Worker body, shared by Node and browsers: instantiate, then serve tasks forever. Before each
 * task, \`drain\` takes the tensor buffers the main thread handed over (or dropped) since the last.
 */
const WORKER_LOOP = `
const streamChunks = (${streamChunks.toString()}); // bound to this name: a minifier renames the declaration
function serve(module, memory, t, tasks, post, drain) {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  const ctrl = new Int32Array(memory.buffer, 0, 16);
  const bufs = new Map();
  const buf = (id) => bufs.get(id);
  let gen = Atomics.load(ctrl, 0);
  post('ready');
  for (;;) {
    // Spin briefly before sleeping: back-to-back ops then skip the futex wake-up (tens of µs on a VM).
    const spin = Atomics.load(ctrl, 6);
    if (spin > 0) {
      const end = performance.now() + spin / 1000;
      while (Atomics.load(ctrl, 0) === gen && performance.now() < end);
    }
    Atomics.wait(ctrl, 0, gen);
    gen = Atomics.load(ctrl, 0);
    const task = Atomics.load(ctrl, 2);
    if (task < 0) break;
    const T = Atomics.load(ctrl, 4);
    if (t < T) {
      try {
        drain(bufs);
        const desc = Atomics.load(ctrl, 3);
        if (task === tasks.length) streamChunks(memory, desc, t, buf, (k, d) => inst.exports[tasks[k]](d, t, T));
        else inst.exports[tasks[task]](desc, t, T);
      } catch (e) { Atomics.store(ctrl, 5, 1); }
    }
    Atomics.add(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
  }
}
`;

// Node workers take buffers synchronously from their port while they serve tasks.
const NODE_WORKER = `${WORKER_LOOP}
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const port = workerData.port;
const drain = (bufs) => {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    if (m.message.drop !== undefined) bufs.delete(m.message.drop);
    else bufs.set(m.message.id, new Float32Array(m.message.buf));
  }
};
serve(workerData.module, workerData.memory, workerData.t, workerData.tasks, (m) => parentPort.postMessage(m), drain);
`;

// A browser worker blocked in Atomics.wait cannot take messages: it is never handed buffers.
const BROWSER_WORKER = `${WORKER_LOOP}
onmessage = (e) => { const d = e.data; serve(d.module, d.memory, d.t, d.tasks, (m) => postMessage(m), () => {}); };
`;

/**
 * Compiles with the optimizing tier straight away where the engine lets us (Node: V8's dynamic
 * tiering is switched off around this one compile, so the kernels never run as baseline code).
 */
async function compileOptimized(bytes: Uint8Array): Promise<WebAssembly.Module> {
  let v8: { setFlagsFromString(flags: string): void } | undefined;
  if (isNode) {
    try {
      v8 = await nodeImport<typeof import('node:v8')>('node:v8');
      v8.setFlagsFromString('--no-wasm-dynamic-tiering');
    } catch {
      v8 = undefined;
    }
  }
  try {
    return await WebAssembly.compile(bytes as BufferSource);
  } finally {
    v8?.setFlagsFromString('--wasm-dynamic-tiering');
  }
}

interface WorkerLike {
  terminate(): unknown;
}

/** The main thread's end of a Node worker's buffer channel. */
interface PortLike {
  postMessage(message: unknown): void;
  close(): void;
}

async function defaultThreads(): Promise<number> {
  const env = isNode
    ? (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KILN_WASM_THREADS
    : undefined;
  if (env && Number(env) >= 1) return Math.floor(Number(env));
  if (isNode) {
    // Node 20 has no `navigator`; ask the os module.
    try {
      const os = await nodeImport<typeof import('node:os')>('node:os');
      return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    } catch {
      return 1;
    }
  }
  const hc = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return Math.max(1, hc ?? 1);
}

/** The wasm backend's module instance and its worker threads. @example const wasm = (await k.useBackend('wasm')) as k.WasmBackend; // runs kernels on its Engine's threads */
export class Engine {
  readonly memory: WebAssembly.Memory;
  readonly exports: Record<TaskName | string, (...args: number[]) => unknown>;
  readonly threads: number;
  readonly relaxed: boolean;
  readonly config: KernelConfig;
  /** Single-thread work estimates (µs) below this run on the calling thread only (may be changed at run time). */
  parallelMinUs: number;
  /** See `EngineOptions.spinUs`. */
  readonly spinUs: number;
  private workers: WorkerLike[] = [];
  /** Node only: one channel per worker for handing over tensor buffers (see `reach`). */
  private ports: PortLike[] = [];
  private bufferIds = new WeakMap<SharedArrayBuffer, number>();
  private nextBufferId = 1;
  private dropped: FinalizationRegistry<number> | null = null;
  private ctrl: Int32Array;
  private f32Cache: Float32Array;
  private i32Cache: Int32Array;
  private top = SCRATCH_BASE;
  /** Where tensors live in this memory (`heap.ts`); null: all outside. */
  readonly heap: Heap | null;
  private broken: string | null = null;
  peakScratch = 0;

  private constructor(
    memory: WebAssembly.Memory,
    instance: WebAssembly.Instance,
    threads: number,
    config: KernelConfig,
    parallelMinUs: number,
    spinUs: number,
    heapBytes: number,
  ) {
    this.memory = memory;
    this.heap = null;
    if (heapBytes > 0) {
      try {
        // All at once (address space, not resident memory), so that the buffer never changes and
        // tensor views into it never detach.
        memory.grow(MAX_PAGES - memory.buffer.byteLength / PAGE);
        this.heap = new Heap(memory.buffer, TOP - heapBytes, TOP);
      } catch {
        this.heap = null; // an engine that cannot reserve 2 GiB keeps its tensors outside
      }
    }
    this.exports = instance.exports as unknown as Engine['exports'];
    this.threads = threads;
    this.relaxed = config.relaxed;
    this.config = config;
    this.parallelMinUs = parallelMinUs;
    this.spinUs = spinUs;
    this.ctrl = new Int32Array(memory.buffer, 0, 16);
    this.f32Cache = new Float32Array(memory.buffer);
    this.i32Cache = new Int32Array(memory.buffer);
  }

  static async create(options: EngineOptions = {}): Promise<Engine> {
    if (!hasSimd()) throw new Error('this WebAssembly engine lacks 128-bit SIMD');
    let relaxed = false;
    if (options.relaxedSimd !== false) {
      relaxed = hasRelaxedSimd();
      if (!relaxed && isNode) {
        // Node 20's V8 ships relaxed SIMD behind a flag; it can be switched on at run time.
        try {
          const v8 = await nodeImport<typeof import('node:v8')>('node:v8');
          v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
          relaxed = hasRelaxedSimd();
        } catch {
          relaxed = false;
        }
      }
    }
    const canShare =
      typeof SharedArrayBuffer !== 'undefined' &&
      (isNode || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true);
    let threads = Math.max(1, Math.floor(options.threads ?? (await defaultThreads())));
    if (!canShare) threads = 1;
    const config: KernelConfig = { ...DEFAULT_CONFIG, ...options.kernel, relaxed };
    const shared = threads > 1;
    const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
    const bytes = buildModule(config, { initial: 64, maximum: MAX_PAGES, shared });
    const module = await compileOptimized(bytes);
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    const envMin = isNode
      ? (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KILN_WASM_PARALLEL_MIN_US
      : undefined;
    const parallelMinUs = Math.max(
      0,
      options.parallelMinUs ?? (envMin !== undefined && envMin !== '' ? Number(envMin) || 0 : PARALLEL_MIN_US),
    );
    const heapBytes = Math.floor((options.heapBytes ?? HEAP_BYTES) / 64) * 64;
    if (!(heapBytes >= 0 && heapBytes <= TOP - SCRATCH_BASE - MIN_SCRATCH))
      throw new ArgumentError(`wasm backend: heapBytes must be 0 … ${TOP - SCRATCH_BASE - MIN_SCRATCH}, got ${options.heapBytes}`);
    const engine = new Engine(memory, instance, threads, config, parallelMinUs, Math.max(0, options.spinUs ?? SPIN_US), heapBytes);
    Atomics.store(engine.ctrl, CTRL.spin, Math.round(engine.spinUs));
    if (threads > 1) await engine.startWorkers(module, threads - 1);
    return engine;
  }

  private async startWorkers(module: WebAssembly.Module, count: number): Promise<void> {
    const tasks = [...TASKS];
    const ready: Promise<void>[] = [];
    if (isNode) {
      const { MessageChannel, Worker } = await nodeImport<typeof import('node:worker_threads')>('node:worker_threads');
      for (let i = 0; i < count; i++) {
        const { port1, port2 } = new MessageChannel();
        port1.unref();
        this.ports.push(port1);
        // execArgv: [] so the parent's flags (--input-type=module, loaders) don't turn the CommonJS body into ESM.
        const w = new Worker(NODE_WORKER, {
          eval: true,
          execArgv: [],
          workerData: { module, memory: this.memory, t: i + 1, tasks, port: port2 },
          transferList: [port2],
        });
        w.unref();
        ready.push(
          new Promise((resolve, reject) => {
            w.once('message', () => resolve());
            w.once('error', reject);
          }),
        );
        w.on('exit', (code: number) => {
          if (this.workers.length) this.broken ??= `wasm backend: worker thread ${i + 1} exited (code ${code})`;
        });
        this.workers.push(w);
      }
      // A buffer the main thread no longer holds is dropped by the workers too.
      this.dropped = new FinalizationRegistry((id: number) => {
        for (const p of this.ports) p.postMessage({ drop: id });
      });
    } else {
      const url = URL.createObjectURL(new Blob([BROWSER_WORKER], { type: 'text/javascript' }));
      for (let i = 0; i < count; i++) {
        const w = new Worker(url);
        ready.push(
          new Promise((resolve, reject) => {
            w.onmessage = () => resolve();
            w.onerror = (e) => {
              this.broken ??= `wasm backend: worker thread ${i + 1} failed: ${String(e.message)}`;
              reject(new Error(String(e.message)));
            };
          }),
        );
        w.postMessage({ module, memory: this.memory, t: i + 1, tasks });
        this.workers.push(w);
      }
    }
    await Promise.all(ready);
  }

  get f32(): Float32Array {
    if (this.f32Cache.buffer.byteLength !== this.memory.buffer.byteLength || this.f32Cache.length === 0) this.refresh();
    return this.f32Cache;
  }
  get i32(): Int32Array {
    if (this.i32Cache.buffer.byteLength !== this.memory.buffer.byteLength || this.i32Cache.length === 0) this.refresh();
    return this.i32Cache;
  }
  private refresh(): void {
    this.f32Cache = new Float32Array(this.memory.buffer);
    this.i32Cache = new Int32Array(this.memory.buffer);
  }

  /** Starts a kernel's scratch allocations from the bottom again. */
  reset(): void {
    this.top = SCRATCH_BASE;
  }
  /** Byte address of an f32 array in this engine's heap, else −1 (then a kernel copies it through scratch). */
  heapAddr(a: Float32Array): number {
    return this.heap?.addr(a) ?? -1;
  }
  /** Largest scratch a single kernel may use (bytes): up to the heap. */
  get maxScratch(): number {
    return (this.heap?.lo ?? TOP) - SCRATCH_BASE;
  }
  /** Scratch bytes (64-byte aligned); grows the memory as needed. */
  alloc(bytes: number): number {
    const p = this.top;
    this.top = p + Math.ceil(bytes / 64) * 64;
    if (this.top > this.maxScratch + SCRATCH_BASE)
      throw new RangeError(
        `wasm backend: one kernel needs ${this.top} bytes of scratch, over the ${this.maxScratch + SCRATCH_BASE}-byte limit of its working memory (tensors themselves are not limited; a smaller heapBytes leaves more)`,
      );
    const need = Math.ceil(this.top / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (need > 0) this.memory.grow(need);
    if (this.top > this.peakScratch) this.peakScratch = this.top;
    return p;
  }
  /** The scratch allocation point, for `release`. */
  mark(): number {
    return this.top;
  }
  /** Gives back every allocation made since `mark` returned `at` (their contents are dead). */
  release(at: number): void {
    this.top = at;
  }
  /** Bytes still allocatable in this kernel's scratch. */
  get free(): number {
    return this.maxScratch + SCRATCH_BASE - this.top;
  }
  /** Writes a descriptor of i32 fields (f32 fields already as bits) and returns its address. */
  desc(fields: number[]): number {
    const p = 1024;
    this.i32.set(fields, p / 4);
    return p;
  }

  /**
   * Threads for a task estimated at `us` microseconds on one thread: 1 below `parallelMinUs`
   * (the calling thread alone, no worker woken), else all.
   */
  threadsFor(us: number): number {
    return us < this.parallelMinUs ? 1 : this.threads;
  }

  /**
   * Runs `task` with descriptor `desc` on `threads` threads (default: all) and waits for them.
   * With one thread the calling thread runs it alone and the workers are not woken at all.
   * `meanwhile` runs on the calling thread while the workers start, before it joins the task (the
   * task's threads must claim their work, so that a late thread takes less); with one thread, after.
   */
  run(task: TaskName, desc: number, threads = this.threads, meanwhile?: () => void): void {
    this.dispatch(
      TASKS.indexOf(task),
      desc,
      threads,
      (T) => {
        if (T > 1) meanwhile?.();
        this.exports[task](desc, 0, T);
        if (T === 1) meanwhile?.();
      },
      task,
    );
  }

  /** Whether the workers can be handed tensor buffers (`reach`): Node with workers. */
  get sharesStorage(): boolean {
    return this.ports.length > 0;
  }

  /**
   * A number by which the workers know `a`'s buffer, handing it to them the first time; −1 where
   * they cannot reach it (not on a SharedArrayBuffer, or no Node workers: browser workers cannot
   * take messages while they wait for tasks).
   */
  reach(a: Float32Array): number {
    const buf = a.buffer;
    if (!this.ports.length || !(buf instanceof SharedArrayBuffer)) return -1;
    let id = this.bufferIds.get(buf);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buf, id);
      for (const p of this.ports) p.postMessage({ id, buf });
      this.dropped?.register(buf, id);
    }
    return id;
  }

  /**
   * Runs the shared stream of kernel `task` described at `sd` (`stream-chunks.ts`) on `threads`
   * threads; `bufs` maps the ids `reach` gave to Float32Arrays over the whole buffers.
   */
  runStream(task: TaskName, sd: number, threads: number, bufs: (id: number) => Float32Array): void {
    this.dispatch(STREAM_TASK, sd, threads, (T) => streamChunks(this.memory, sd, 0, bufs, (k, d) => this.exports[TASKS[k]](d, 0, T)), task);
  }

  /** Wakes the workers on task index `k` (unless one thread), runs `local(T)` here, then joins them. */
  private dispatch(k: number, desc: number, threads: number, local: (T: number) => void, name: TaskName): void {
    if (this.broken) throw new Error(this.broken);
    const T = Math.max(1, Math.min(this.threads, Math.floor(threads)));
    const ctrl = this.ctrl;
    if (T > 1) {
      Atomics.store(ctrl, CTRL.done, 0);
      Atomics.store(ctrl, CTRL.task, k);
      Atomics.store(ctrl, CTRL.desc, desc);
      Atomics.store(ctrl, CTRL.threads, T);
      Atomics.add(ctrl, CTRL.gen, 1);
      Atomics.notify(ctrl, CTRL.gen);
    }
    let error: unknown;
    try {
      local(T);
    } catch (e) {
      error = e;
    }
    if (T > 1) {
      const want = this.workers.length;
      if (this.spinUs > 0) {
        const end = performance.now() + this.spinUs / 1000;
        while (Atomics.load(ctrl, CTRL.done) < want && performance.now() < end);
      }
      for (;;) {
        const d = Atomics.load(ctrl, CTRL.done);
        if (d >= want) break;
        if (this.broken) throw new Error(this.broken);
        if (isNode) Atomics.wait(ctrl, CTRL.done, d, 1000);
      }
      if (Atomics.load(ctrl, CTRL.error)) {
        Atomics.store(ctrl, CTRL.error, 0);
        error ??= new Error(`wasm backend: ${name} failed on a worker thread`);
      }
    }
    if (error) throw error;
  }

  dispose(): void {
    this.broken ??= 'wasm backend: used after dispose()';
    if (this.workers.length) {
      Atomics.store(this.ctrl, CTRL.task, -1);
      Atomics.add(this.ctrl, CTRL.gen, 1);
      Atomics.notify(this.ctrl, CTRL.gen);
      for (const w of this.workers) void w.terminate();
      for (const p of this.ports) p.close();
      this.workers = [];
      this.ports = [];
    }
  }
}
