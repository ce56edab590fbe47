/**
 * One thread's part of a stream whose arrays every thread can reach (tensors in the engine's heap,
 * or storage on SharedArrayBuffers the workers were handed, `Engine.reach`): the thread claims
 * chunks, copies a chunk's inputs into its own scratch slots, runs the kernel on them by itself
 * (its own copy of the kernel's descriptor, with its own claim counter) and copies the results
 * back. So the copies, not only the kernel, run on every thread. A slot may be *direct*: the chunk
 * of a heap array itself, which the kernel then reads or writes in place, and whatever input or
 * result already lies there is not copied.
 *
 * The chunks are cut into one contiguous range per thread, as OpenMP's static schedule does:
 * thread t works through range t from its front, then takes chunks from the back of the other
 * ranges (a worker wakes ~0.1 ms after the calling thread on a VM). Claiming every chunk from one
 * shared counter instead gave each call a different split, so a chunk's lines sat in the other
 * core's cache: on a 2-vCPU EPYC whose cores share no L3, layerNorm forward + backward on 2 threads
 * took 2.2–2.3 ms that way (a loop of 100 calls), 1.5–1.6 ms by ranges.
 *
 * The calling thread runs this function, and every worker runs its source text (`pool.ts`), so it
 * refers to nothing outside itself and defines no inner functions (a transpiler may wrap those in
 * its own helpers): the descriptor's word offsets are written out here and named in
 * `STREAM_DESC`, which `stream.ts` writes with.
 */

/** Word offsets of a shared stream's descriptor (i32 words); after them the per-slot and per-array lists. */
export const STREAM_DESC = {
  /** Index of the kernel in `TASKS`. */
  task: 0,
  /** Byte address and length in words of the kernel's descriptor template. */
  template: 1,
  templateLen: 2,
  units: 3,
  /** Floats per unit in every array. */
  len: 4,
  /** Units per chunk. */
  per: 5,
  ins: 6,
  outs: 7,
  slots: 8,
  /** Byte address of thread 0's first slot; thread t's slot s is at slotBase + (t·slots + s)·slotBytes. */
  slotBase: 9,
  slotBytes: 10,
  /** Template fields the thread fills per chunk: units in it, first unit ÷ align (−1: none), claim counter. */
  count: 11,
  first: 12,
  next: 13,
  /** Byte address of the threads' descriptor copies (templateLen words each). */
  descs: 14,
  /** Ranges the chunks are cut into (one per thread); their claim words follow the lists, each 0 from the host. */
  ranges: 15,
  align: 16,
  /**
   * Then: the template field of each slot's address; each slot's element offset in the memory
   * when direct, else −1; (buffer id, element offset) per input (slot i); (slot, buffer id, element
   * offset) per output. Buffer id 0 is the engine's memory itself. Then one claim word per range:
   * chunks taken from its front in the low 16 bits, from its back in the high 16.
   */
  lists: 17,
} as const;

/**
 * Runs thread `t`'s chunks of the stream described at byte address `sd`. `bufs` maps a buffer id
 * (from 1) to a Float32Array over its whole SharedArrayBuffer; `run(task, desc)` runs kernel `task`
 * on this thread with the descriptor at byte address `desc`.
 */
export function streamChunks(
  memory: WebAssembly.Memory,
  sd: number,
  t: number,
  bufs: (id: number) => Float32Array,
  run: (task: number, desc: number) => void,
): void {
  const i32 = new Int32Array(memory.buffer);
  const f32 = new Float32Array(memory.buffer);
  const w = sd >> 2;
  // The STREAM_DESC words in order.
  const [task, tmplAt, tlen, units, len, per, nIn, nOut, nSlots, slotBase, slotBytes, countF, firstF, nextF, descs, ranges, align] =
    i32.subarray(w, w + 17);
  const tmpl = tmplAt >> 2;
  const desc = descs + t * tlen * 4;
  const fields = w + 17;
  const direct = fields + nSlots;
  const ins = direct + nSlots;
  const outs = ins + 2 * nIn;
  const claims = outs + 3 * nOut;
  const dw = desc >> 2;
  // This thread's slot s starts at float index slot0 + s·slotFloats, unless it is direct.
  const slot0 = (slotBase + t * nSlots * slotBytes) >> 2;
  const slotFloats = slotBytes >> 2;
  const at = new Array<number>(nSlots);
  i32.copyWithin(dw, tmpl, tmpl + tlen);
  const chunks = Math.ceil(units / per);
  // Range r is chunks [⌊r·chunks/ranges⌋, ⌊(r+1)·chunks/ranges⌋); its claim word counts the chunks
  // taken from the front (its own thread) and from the back (the others), updated in one CAS.
  let r = t % ranges;
  let stolen = 0;
  for (;;) {
    const word = claims + r;
    const lo = Math.floor((r * chunks) / ranges);
    const hi = Math.floor(((r + 1) * chunks) / ranges);
    const own = r === t;
    const v = Atomics.load(i32, word);
    const front = v & 0xffff;
    const back = v >>> 16;
    if (lo + front >= hi - back) {
      if (++stolen >= ranges) break;
      r = (r + 1) % ranges;
      continue;
    }
    if (Atomics.compareExchange(i32, word, v, own ? v + 1 : v + 0x10000) !== v) continue;
    const c = own ? lo + front : hi - 1 - back;
    const first = c * per;
    const count = Math.min(per, units - first);
    const a = first * len;
    const n = count * len;
    for (let s = 0; s < nSlots; s++) {
      at[s] = i32[direct + s] >= 0 ? i32[direct + s] + a : slot0 + s * slotFloats;
      i32[dw + i32[fields + s]] = at[s] << 2;
    }
    for (let i = 0; i < nIn; i++) {
      const id = i32[ins + 2 * i];
      const off = i32[ins + 2 * i + 1] + a;
      if (id !== 0) f32.set(bufs(id).subarray(off, off + n), at[i]);
      else if (off !== at[i]) f32.copyWithin(at[i], off, off + n);
    }
    i32[dw + countF] = count;
    if (firstF >= 0) i32[dw + firstF] = first / align;
    i32[dw + nextF] = 0;
    run(task, desc);
    for (let o = 0; o < nOut; o++) {
      const q = outs + 3 * o;
      const p = at[i32[q]];
      const id = i32[q + 1];
      const off = i32[q + 2] + a;
      if (id !== 0) bufs(id).set(f32.subarray(p, p + n), off);
      else if (off !== p) f32.copyWithin(off, p, p + n);
    }
  }
}
