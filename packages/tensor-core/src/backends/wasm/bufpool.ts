/**
 * A size-keyed pool of freed tensor buffers (decision 4: backends pool buffers by size). Fresh
 * large ArrayBuffers cost a page fault per 4 KiB on first touch, which dominates memory-bound
 * kernels; reusing freed ones avoids it. Only whole, large buffers are pooled, up to a byte cap.
 */
const MIN_BYTES = 1 << 16;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  bytes = 0;
  constructor(public capBytes = 1 << 30) {}

  /** A Float32Array of n elements with unspecified contents. */
  f32(n: number): Float32Array {
    const bytes = n * 4;
    if (bytes >= MIN_BYTES) {
      const list = this.free.get(bytes);
      const buf = list?.pop();
      if (buf) {
        this.bytes -= bytes;
        return new Float32Array(buf);
      }
    }
    return new Float32Array(n);
  }

  /** Takes back a typed array that nothing references any more. */
  put(a: ArrayBufferView): void {
    const buf = a.buffer;
    const bytes = a.byteLength;
    if (bytes < MIN_BYTES || a.byteOffset !== 0 || buf.byteLength !== bytes || !(buf instanceof ArrayBuffer)) return;
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
