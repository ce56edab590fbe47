/**
 * Tensor storage inside the engine's WebAssembly memory. A tensor stored here is read and written
 * by the kernels where it lies: no copy into scratch and back, which on memory-bound ops (the
 * norms, AdamW) cost more than the kernels themselves.
 *
 * The region is a fixed part of the memory (the engine grows its memory to the full 2 GiB once, so
 * views into it never detach), allocated from the top down in 64-byte-aligned blocks: freed blocks
 * are reused by size, and merged with their neighbours when the region runs out. When it is full
 * the caller stores the tensor outside, as before, so the sum of live tensors is still not capped.
 */
const ALIGN = 64;

/** The part of a wasm engine's memory that holds tensors. @example const { heap } = ((await k.useBackend('wasm')) as k.WasmBackend).engine; console.log(heap?.bytes); // bytes of live tensors in it */
export class Heap {
  /** Free blocks by size: byte addresses. */
  private readonly freeBySize = new Map<number, number[]>();
  /** Live blocks: byte address → size. */
  private readonly live = new Map<number, number>();
  /** Blocks of views that were dropped without `free` (a tensor the garbage collector took). */
  private readonly dropped = new FinalizationRegistry<number>((addr) => this.release(addr));
  /** The lowest address handed out so far; below it up to `lo` is untouched. */
  private low: number;
  /** Bytes in live blocks. */
  bytes = 0;

  /** `buffer` is the engine memory's buffer; the region is [lo, hi). */
  constructor(
    readonly buffer: ArrayBufferLike,
    readonly lo: number,
    readonly hi: number,
  ) {
    this.low = hi;
  }

  /** A Float32Array of n elements in the region (unspecified contents), or null when it is full. */
  f32(n: number): Float32Array | null {
    const size = Math.max(ALIGN, Math.ceil((n * 4) / ALIGN) * ALIGN);
    const addr = this.take(size) ?? (this.merge(), this.take(size));
    if (addr === null) return null;
    this.live.set(addr, size);
    this.bytes += size;
    const view = new Float32Array(this.buffer, addr, n);
    this.dropped.register(view, addr, view);
    return view;
  }

  /** Byte address of `a` if it lies in this region, else −1. */
  addr(a: ArrayBufferView): number {
    return a.buffer === this.buffer && a.byteOffset >= this.lo ? a.byteOffset : -1;
  }

  /** Takes back a view `f32` returned; false if it is not one. */
  free(a: Float32Array): boolean {
    if (a.buffer !== this.buffer || !this.live.has(a.byteOffset)) return false;
    if (!this.dropped.unregister(a)) return false; // a subarray at a block's start, not the block's view
    this.release(a.byteOffset);
    return true;
  }

  private release(addr: number): void {
    const size = this.live.get(addr);
    if (size === undefined) return;
    this.live.delete(addr);
    this.bytes -= size;
    this.put(addr, size);
  }

  private take(size: number): number | null {
    const reuse = this.pop(size);
    if (reuse !== undefined) return reuse;
    if (this.low - size >= this.lo) return (this.low -= size);
    // First fit in a larger free block, splitting it.
    for (const s of this.freeBySize.keys()) {
      if (s > size) {
        const addr = this.pop(s)!;
        this.put(addr + size, s - size);
        return addr;
      }
    }
    return null;
  }

  /** A free block of exactly `size` bytes; an emptied size leaves the map, so first fit scans only sizes that have blocks. */
  private pop(size: number): number | undefined {
    const list = this.freeBySize.get(size);
    const addr = list?.pop();
    if (list && !list.length) this.freeBySize.delete(size);
    return addr;
  }

  private put(addr: number, size: number): void {
    let list = this.freeBySize.get(size);
    if (!list) this.freeBySize.set(size, (list = []));
    list.push(addr);
  }

  /** Merges adjacent free blocks, and gives a free run at the bottom back to the untouched part. */
  private merge(): void {
    const blocks: [number, number][] = [];
    for (const [s, list] of this.freeBySize) for (const a of list) blocks.push([a, s]);
    this.freeBySize.clear();
    blocks.sort((x, y) => x[0] - y[0]);
    const merged: [number, number][] = [];
    for (const [a, s] of blocks) {
      const last = merged.at(-1);
      if (last && last[0] + last[1] === a) last[1] += s;
      else merged.push([a, s]);
    }
    if (merged.length && merged[0][0] === this.low) this.low += merged.shift()![1];
    for (const [a, s] of merged) this.put(a, s);
  }
}
