/**
 * How the threads of a shared stream share its chunks (`streamChunks`): one contiguous range per
 * thread, worked from its front by its own thread and from its back by the others, every chunk
 * exactly once. A late thread is simulated by starting it from inside another's kernel call.
 */
import { describe, expect, it } from 'vitest';
import { STREAM_DESC, streamChunks } from '../src/backends/wasm/stream-chunks.js';

const D = STREAM_DESC;
/** Template fields: the slot's address, units in the chunk, first unit, the kernel's claim counter. */
const F = { slot: 0, count: 1, first: 2, next: 3 };

/** A stream of `units` units of `len` floats in chunks of `per` units over `ranges` ranges, one direct input slot. */
function makeStream(units: number, per: number, ranges: number) {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const i32 = new Int32Array(memory.buffer);
  const template = 1024;
  const descs = 2048;
  const data = 4096 / 4;
  const w = new Array<number>(D.lists + 2 + 2 + ranges).fill(0);
  Object.assign(w, {
    [D.task]: 0,
    [D.template]: template,
    [D.templateLen]: 4,
    [D.units]: units,
    [D.len]: 1,
    [D.per]: per,
    [D.ins]: 1,
    [D.outs]: 0,
    [D.slots]: 1,
    [D.count]: F.count,
    [D.first]: F.first,
    [D.next]: F.next,
    [D.descs]: descs,
    [D.ranges]: ranges,
    [D.align]: 1,
  });
  // The slot's template field, the slot direct at `data`, the input (buffer 0) at `data`.
  w.splice(D.lists, 4, F.slot, data, 0, data);
  i32.set(w);
  return memory;
}

/** Runs thread `t` of the stream, recording each chunk's first unit in `log[t]`; `during(first)` runs inside the kernel call. */
function runThread(memory: WebAssembly.Memory, t: number, log: number[][], during: (first: number) => void = () => {}): void {
  const i32 = new Int32Array(memory.buffer);
  streamChunks(
    memory,
    0,
    t,
    () => {
      throw new Error('no buffer but the memory');
    },
    (_task, desc) => {
      const first = i32[desc / 4 + F.first];
      expect(i32[desc / 4 + F.slot]).toBe(4096 + first * 4);
      (log[t] ??= []).push(first);
      during(first);
    },
  );
}

describe('streamChunks: chunks by thread ranges', () => {
  it('a thread alone works its own range from the front, then the others from their backs', () => {
    const m = makeStream(10, 1, 2);
    const log: number[][] = [];
    runThread(m, 0, log);
    expect(log).toEqual([[0, 1, 2, 3, 4, 9, 8, 7, 6, 5]]);
  });

  it('a late thread takes its own range, then what is left at the back of the early one', () => {
    const m = makeStream(10, 1, 2);
    const log: number[][] = [];
    // Thread 1 starts while thread 0 runs its second chunk, and ends before thread 0 claims again.
    runThread(m, 0, log, (first) => first === 1 && runThread(m, 1, log));
    expect(log).toEqual([
      [0, 1],
      [5, 6, 7, 8, 9, 4, 3, 2],
    ]);
  });

  it('covers every chunk exactly once over uneven ranges, whatever the interleaving', () => {
    for (const [units, per, ranges] of [
      [11, 1, 3],
      [23, 2, 3],
      [7, 3, 4],
      [5, 1, 8],
    ]) {
      const chunks = Math.ceil(units / per);
      for (let late = 0; late <= chunks; late++) {
        const m = makeStream(units, per, ranges);
        const log: number[][] = [];
        let calls = 0;
        // The other threads start after the first `late` chunks of thread 0, one inside the next.
        const start = (t: number) => () => {
          if (t < ranges) runThread(m, t, log, start(t + 1));
        };
        runThread(m, 0, log, () => ++calls === late && start(1)());
        if (late === 0) for (let t = 1; t < ranges; t++) runThread(m, t, log);
        const firsts = log.flat().sort((a, b) => a - b);
        expect(firsts, `${units} units, ${per} per chunk, ${ranges} ranges, late ${late}`).toEqual(
          Array.from({ length: chunks }, (_, c) => c * per),
        );
      }
    }
  });
});
