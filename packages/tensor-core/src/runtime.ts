import type { Backend } from './backend.js';
import { backendByName, getBackend } from './backend.js';

const tryBackend = (name: string): Backend | undefined => {
  try {
    return backendByName(name);
  } catch {
    return undefined;
  }
};
import type { DType } from './dtype.js';
import { itemSize } from './dtype.js';
import { DisposedError } from './errors.js';

/**
 * A reference-counted backend storage. Views share one; the storage goes back to its backend
 * when the last tensor that uses it is disposed.
 */
export class Buffer {
  refs = 1;
  readonly bytes: number;
  constructor(
    readonly backend: Backend,
    public data: unknown,
    readonly dtype: DType,
    readonly size: number,
  ) {
    this.bytes = size * itemSize(dtype);
    const m = stats(backend.name);
    m.liveBytes += this.bytes;
    if (m.liveBytes > m.peakBytes) m.peakBytes = m.liveBytes;
  }

  retain(): this {
    if (this.refs <= 0) throw new DisposedError('storage was already freed');
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) {
      stats(this.backend.name).liveBytes -= this.bytes;
      this.backend.free(this.data);
      this.data = undefined;
    }
  }
}

/** What `k.memory()` reports for a backend. @example const { liveTensors, liveBytes, peakBytes } = k.memory(); */
export interface MemoryStats {
  /** Tensors created and not yet disposed (views count). */
  liveTensors: number;
  /** Bytes of storage held by live tensors (a storage shared by views counts once). */
  liveBytes: number;
  /** The most `liveBytes` has been since start or since `resetPeakMemory()`. */
  peakBytes: number;
}

const memoryStats = new Map<string, MemoryStats>();

export function stats(backend: string): MemoryStats {
  let m = memoryStats.get(backend);
  if (!m) {
    m = { liveTensors: 0, liveBytes: 0, peakBytes: 0 };
    memoryStats.set(backend, m);
  }
  return m;
}

/**
 * Live and peak memory of a backend (the selected one by default).
 *
 * @example
 * ```ts
 * const before = k.memory().liveTensors;
 * k.tidy(() => k.ones([1000]).mul(2).sum());
 * k.memory().liveTensors === before; // true: tidy disposed everything
 * ```
 */
export function memory(backend?: string): MemoryStats & { backend: string } & Record<string, number | string> {
  const b = backend === undefined ? getBackend() : tryBackend(backend);
  const name = backend ?? b!.name;
  return { backend: name, ...(b?.memoryInfo?.() ?? {}), ...stats(name) };
}

/**
 * Starts a new peak measurement at the current live bytes.
 *
 * @example
 * ```ts
 * k.resetPeakMemory();
 * step();
 * console.log(k.memory().peakBytes);
 * ```
 */
export function resetPeakMemory(backend?: string): void {
  const m = stats(backend ?? getBackend().name);
  m.peakBytes = m.liveBytes;
}

// Gradient mode -----------------------------------------------------------------------------

let gradEnabled = true;

/** Whether ops record gradients here (false inside `noGrad`). @example k.noGrad(() => k.isGradEnabled()); // false */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording the autograd graph (like `torch.no_grad()`).
 *
 * @example
 * ```ts
 * const y = k.noGrad(() => w.mul(2)); // y.requiresGrad === false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` with gradient recording on, even inside `noGrad` (gradient checkpointing needs it). @example k.noGrad(() => k.enableGrad(() => loss.backward())); // gradients inside a no-grad region */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// Tidy scopes -------------------------------------------------------------------------------

/** Anything `tidy` can track and free. @example { using t = k.ones([2]); } // freed at the end of the block */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];

export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Removes a tensor from every open `tidy` scope, so it outlives them. Returns it. @example const kept = k.tidy(() => { const a = k.keep(k.ones([2])); return a.add(1); }); // a outlives the tidy */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ('dispose' in value && 'isDisposed' in value) {
    out.add(value);
    return;
  }
  const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const v of items) collect(v, out, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor it created, except those in its result (a tensor, or
 * tensors inside an array or plain object). Scopes nest; kept tensors join the enclosing scope.
 *
 * @example
 * ```ts
 * const loss = k.tidy(() => model(x).sub(y).square().mean()); // intermediates are freed
 * ```
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('tidy expects a function');
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new TypeError('tidy cannot wrap an async function: reads happen outside tidy');
  }
  const kept = new Set<unknown>();
  collect(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}
