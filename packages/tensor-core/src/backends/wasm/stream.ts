/**
 * Streaming memory-bound kernels (the norms, AdamW) in chunks.
 *
 * A chunk of a tensor in the engine's heap is used where it lies. Any other is copied into scratch
 * and its results copied out, and into or out of a *shared* memory V8 copies word by word (relaxed
 * atomics): about 2.5× slower than a plain copy. With every array in the heap, or on one thread,
 * the threads take whole chunks, each from its own range first (`stream-chunks.ts`). Otherwise,
 * two ways to spread the copies over threads:
 *
 * - Where the workers can reach every array (Node, storage on SharedArrayBuffers: `Engine.reach`),
 *   each thread takes whole chunks from its own range of them (then from the others' ranges) and
 *   copies them in, runs the kernel and copies them out itself (`stream-chunks.ts`): copies and
 *   kernel both run on every thread.
 * - Otherwise only the calling thread can copy. It copies the neighbouring chunks while the
 *   workers start on the current one and joins the work afterwards (the kernels' threads claim
 *   work from a counter, so a late thread simply takes less), double-buffered; and where the
 *   kernel costs less than the copy, the calling thread runs it all.
 *
 * On one thread small chunks keep a chunk's arrays in L2 between the copy in, the kernel's passes
 * and the copy out; the calling thread's pipeline takes larger ones, since every chunk wakes the
 * workers (tens of µs on a VM).
 */
import type { TaskName } from './kernels.js';
import { TASKS } from './kernels.js';
import type { Engine } from './pool.js';
import { STREAM_DESC } from './stream-chunks.js';

/**
 * Floats per staged array per chunk on one thread (512 KiB; twice that in the calling thread's
 * pipeline over several threads): the best of 32K–1M on a quiet 2-vCPU EPYC for groupNorm(+SiLU),
 * layerNorm forward and backward and AdamW (`benchmarks/README.md`).
 */
export const STREAM_CHUNK_FLOATS = 1 << 17;

/**
 * A copy into or out of shared memory on the calling thread, µs per byte (~10 GB/s on a 2-vCPU
 * EPYC). Measured there: layerNorm forward + backward and AdamW, whose kernels cost less per byte
 * than this, ran slower pipelined over 2 threads than on the calling thread alone; groupNorm+SiLU,
 * which costs more, ran faster.
 */
const COPY_US_PER_BYTE = 1e-4;

/**
 * One streamed op: contiguous arrays of `units × len` floats, cut into chunks of whole units, and
 * a kernel whose descriptor takes each chunk's scratch addresses, unit count and first unit.
 */
export interface StreamSpec {
  /** Arrays copied into scratch, chunk by chunk: slots 0 … ins.length − 1. */
  ins: Float32Array[];
  /** Further scratch arrays per chunk the kernel writes (no copy in): the following slots. */
  extra?: number;
  /** Results: [slot, destination]. */
  outs: [number, Float32Array][];
  units: number;
  len: number;
  /** Units per chunk are a multiple of this (e.g. a kernel's block of rows). */
  align?: number;
  /** Single-thread cost of one unit's kernel (µs), for `engine.threadsFor` over the whole op. */
  usPerUnit: number;
  task: TaskName;
  /** The kernel's descriptor with every field but the per-chunk ones below set. */
  desc: number[];
  /** Descriptor field of each slot's byte address. */
  slotFields: number[];
  /** Descriptor fields: units in the chunk; its first unit ÷ align (optional); the kernel's claim counter. */
  countField: number;
  firstField?: number;
  nextField: number;
}

/** Runs a stream (see the module comment); allocates after whatever the caller staged since `reset()`. */
export function stream(e: Engine, s: StreamSpec): void {
  const arrays = [...s.ins, ...s.outs.map(([, a]) => a)];
  const inHeap = arrays.map((a) => e.heapAddr(a) >= 0);
  const copied = inHeap.filter((h) => !h).length;
  const copyUs = copied * s.len * 4 * COPY_US_PER_BYTE;
  const T = e.threadsFor(s.units * (s.usPerUnit + copyUs));
  // Buffer id 0 is the engine's memory; on one thread any array can be named, by its index + 1.
  if (T === 1 || copied === 0)
    return streamShared(
      e,
      s,
      arrays,
      arrays.map((_, j) => (inHeap[j] ? 0 : j + 1)),
      T,
    );
  if (e.sharesStorage) {
    const ids = arrays.map((a, j) => (inHeap[j] ? 0 : e.reach(a)));
    if (ids.every((id) => id >= 0)) return streamShared(e, s, arrays, ids, T);
  }
  // The calling thread copies: where its copies cost more than the kernel, a second thread has
  // nothing to overlap and only adds traffic between the cores' caches.
  const threads = s.usPerUnit > copyUs ? T : 1;
  const per = chunkUnits(s, threads > 1 ? 2 * STREAM_CHUNK_FLOATS : STREAM_CHUNK_FLOATS);
  const chunks = Math.ceil(s.units / per);
  const sets = Array.from({ length: Math.min(2, chunks) }, () => Array.from({ length: slotCount(s) }, () => e.alloc(per * s.len * 4)));
  const range = (c: number) => [c * per * s.len, Math.min(s.units, (c + 1) * per) * s.len];
  const copyIn = (c: number) => {
    const [a, b] = range(c);
    const f = e.f32;
    s.ins.forEach((src, i) => f.set(src.subarray(a, b), sets[c % 2][i] / 4));
  };
  const copyOut = (c: number) => {
    const [a, b] = range(c);
    const f = e.f32;
    for (const [slot, dst] of s.outs) {
      const p = sets[c % 2][slot] / 4;
      dst.set(f.subarray(p, p + b - a), a);
    }
  };
  const d = [...s.desc];
  copyIn(0);
  for (let c = 0; c < chunks; c++) {
    const first = c * per;
    sets[c % 2].forEach((p, i) => (d[s.slotFields[i]] = p));
    d[s.countField] = Math.min(per, s.units - first);
    if (s.firstField !== undefined) d[s.firstField] = first / (s.align ?? 1);
    d[s.nextField] = 0;
    e.run(s.task, e.desc(d), threads, () => {
      if (c > 0) copyOut(c - 1);
      if (c + 1 < chunks) copyIn(c + 1);
    });
  }
  copyOut(chunks - 1);
}

const slotCount = (s: StreamSpec): number => s.ins.length + (s.extra ?? 0);

/** Whole units per chunk: about `floats` per array, a multiple of the spec's alignment. */
function chunkUnits(s: StreamSpec, floats: number): number {
  const align = s.align ?? 1;
  const fit = Math.max(1, Math.floor(floats / s.len));
  return Math.min(s.units, Math.max(align, fit - (fit % align)));
}

/**
 * Every thread copies and computes its own chunks (`stream-chunks.ts`); `ids` name each array's
 * buffer for the threads (0: the engine's memory, whose chunks the kernel may use in place).
 */
function streamShared(e: Engine, s: StreamSpec, arrays: Float32Array[], ids: number[], T: number): void {
  const D = STREAM_DESC;
  // A range's claim word counts its chunks in 16 bits (unreachable below 2^32 floats per array).
  let per = chunkUnits(s, STREAM_CHUNK_FLOATS);
  while (Math.ceil(s.units / per / T) > 0xffff) per *= 2;
  const slots = slotCount(s);
  const offset = (a: Float32Array) => a.byteOffset / 4;
  // A slot is direct where its result goes to a heap array, or where it holds a heap input that
  // is no slot's result (the kernel writes a result over its slot's input).
  const direct = new Array<number>(slots).fill(-1);
  s.outs.forEach(([slot, a], j) => {
    if (ids[s.ins.length + j] === 0 && direct[slot] < 0) direct[slot] = offset(a);
  });
  s.ins.forEach((a, i) => {
    if (ids[i] === 0 && !s.outs.some(([slot]) => slot === i)) direct[i] = offset(a);
  });
  const slotBytes = Math.ceil((per * s.len * 4) / 64) * 64;
  const slotBase = direct.some((d) => d < 0) ? e.alloc(T * slots * slotBytes) : 0;
  const template = e.alloc(s.desc.length * 4);
  const descs = e.alloc(T * s.desc.length * 4);
  const words = D.lists + 2 * slots + 2 * s.ins.length + 3 * s.outs.length + T;
  const sd = e.alloc(words * 4);
  const w = new Array<number>(words);
  w[D.task] = TASKS.indexOf(s.task);
  w[D.template] = template;
  w[D.templateLen] = s.desc.length;
  w[D.units] = s.units;
  w[D.len] = s.len;
  w[D.per] = per;
  w[D.ins] = s.ins.length;
  w[D.outs] = s.outs.length;
  w[D.slots] = slots;
  w[D.slotBase] = slotBase;
  w[D.slotBytes] = slotBytes;
  w[D.count] = s.countField;
  w[D.first] = s.firstField ?? -1;
  w[D.next] = s.nextField;
  w[D.descs] = descs;
  w[D.ranges] = T;
  w[D.align] = s.align ?? 1;
  let i = D.lists;
  for (const f of s.slotFields) w[i++] = f;
  for (const d of direct) w[i++] = d;
  s.ins.forEach((a, j) => {
    w[i++] = ids[j];
    w[i++] = offset(a);
  });
  s.outs.forEach(([slot, a], j) => {
    w[i++] = slot;
    w[i++] = ids[s.ins.length + j];
    w[i++] = offset(a);
  });
  w.fill(0, i);
  const i32 = e.i32;
  i32.set(s.desc, template / 4);
  i32.set(w, sd / 4);
  // Views over the whole buffers the threads copy from (id 0, the engine's memory, they have).
  const whole = new Map(ids.flatMap((id, j) => (id > 0 ? [[id, new Float32Array(arrays[j].buffer)] as const] : [])));
  e.runStream(s.task, sd, T, (id) => whole.get(id)!);
}
