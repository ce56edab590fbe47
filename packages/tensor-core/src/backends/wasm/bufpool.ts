/**
 * A size-keyed pool of freed tensor buffers (decision 4: backends pool buffers by size). Fresh
 * large ArrayBuffers cost a page fault per 4 KiB on first touch, which dominates memory-bound
 * kernels; reusing freed ones avoids it. Only whole, large buffers are pooled, up to a byte cap.
 *
 * Large buffers come first from the heap of the latest engine that has one (`heap.ts`: inside its
 * memory, where its kernels use them in place). Beyond it, while a Node engine with workers is
 * alive (`share`), they are SharedArrayBuffers, so that the workers can copy their own parts of a
 * tensor in and out of the engine's memory.
 */
import type { Heap } from './heap.js';

const MIN_BYTES = 1 << 16;

export class BufferPool {
  private readonly free = new Map<number, ArrayBufferLike[]>();
  bytes = 0;
  /** Live engines that want large buffers on SharedArrayBuffers (see `share`). */
  private sharers = 0;
  private heaps: Heap[] = [];
  constructor(public capBytes = 1 << 30) {}

  /** A Float32Array of n elements with unspecified contents. */
  f32(n: number): Float32Array {
    const bytes = n * 4;
    if (bytes >= MIN_BYTES) {
      const h = this.heaps.at(-1)?.f32(n);
      if (h) return h;
      const list = this.free.get(bytes);
      const buf = list?.pop();
      if (buf) {
        this.bytes -= bytes;
        return new Float32Array(buf);
      }
      if (this.sharers > 0) return new Float32Array(new SharedArrayBuffer(bytes));
    }
    return new Float32Array(n);
  }

  /** An engine whose workers take tensor buffers starts (true) or stops (false) wanting shared ones. */
  share(on: boolean): void {
    this.sharers = Math.max(0, this.sharers + (on ? 1 : -1));
  }

  /** An engine's heap starts (true) or stops (false) taking large buffers. */
  useHeap(heap: Heap, on: boolean): void {
    this.heaps = this.heaps.filter((h) => h !== heap);
    if (on) this.heaps.push(heap);
  }

  /** Takes back a typed array that nothing references any more. */
  put(a: ArrayBufferView): void {
    if (a instanceof Float32Array && this.heaps.some((h) => h.free(a))) return;
    const buf = a.buffer;
    const bytes = a.byteLength;
    const whole = buf instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && buf instanceof SharedArrayBuffer);
    if (bytes < MIN_BYTES || a.byteOffset !== 0 || buf.byteLength !== bytes || !whole) return;
    if (this.bytes + bytes > this.capBytes) return;
    let list = this.free.get(bytes);
    if (!list) this.free.set(bytes, (list = []));
    list.push(buf);
    this.bytes += bytes;
  }

  clear(): void {
    this.free.clear();
    this.bytes = 0;
  }
}

/** The pool shared by the wasm backend's kernels. */
export const pool = new BufferPool();
