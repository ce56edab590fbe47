/** Softmax on the wasm engine (f32, rows of the last dim). */
import { numel } from '../../shape.js';
import { pool } from './bufpool.js';
import { SOFTMAX } from './kernels.js';
import { contig } from './staging.js';
import type { Scratch, WView } from './staging.js';

/** Softmax over the last dim of an f32 view: rows split across threads, in chunks of at most 512 MiB. */
export function softmaxRows(scratch: Scratch, x: WView): Float32Array {
  const D = x.shape[x.shape.length - 1];
  const n = numel(x.shape);
  const out = pool.f32(n);
  if (n === 0 || D === 0) return out;
  const rows = n / D;
  const ld = Math.ceil(D / 4) * 4;
  const e = scratch.engine;
  const src = contig(x);
  const maxRows = Math.max(1, Math.floor((512 << 20) / (ld * 4)));
  for (let r0 = 0; r0 < rows; r0 += maxRows) {
    const nr = Math.min(maxRows, rows - r0);
    e.reset();
    const s = e.alloc(nr * ld * 4);
    const f = e.f32;
    if (ld === D) f.set(src.subarray(r0 * D, (r0 + nr) * D), s / 4);
    else for (let r = 0; r < nr; r++) f.set(src.subarray((r0 + r) * D, (r0 + r + 1) * D), s / 4 + r * ld);
    const d = new Array<number>(4);
    d[SOFTMAX.S] = s;
    d[SOFTMAX.rows] = nr;
    d[SOFTMAX.n] = D;
    d[SOFTMAX.ld] = ld;
    e.run('task_softmax', e.desc(d), e.threadsFor(nr * D * 2e-3));
    const g = e.f32;
    if (ld === D) out.set(g.subarray(s / 4, s / 4 + nr * D), r0 * D);
    else for (let r = 0; r < nr; r++) out.set(g.subarray(s / 4 + r * ld, s / 4 + r * ld + D), (r0 + r) * D);
  }
  return out;
}
