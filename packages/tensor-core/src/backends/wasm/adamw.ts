/** The fused AdamW step on the wasm engine (f32). */
import type { AdamWHyper } from '../../backend.js';
import { ADAMW } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';
import { stream } from './stream.js';

/** Single-thread cost of the kernel (µs per element, 2-vCPU EPYC), for `engine.threadsFor`. */
const US_PER_ELEMENT = 8e-4;

/** One AdamW step in place on f32 storages p, m, v of `size` elements. */
export function adamwStep(
  scratch: Scratch,
  p: Float32Array,
  grad: WView,
  mm: Float32Array,
  vv: Float32Array,
  size: number,
  hp: AdamWHyper,
): void {
  const g = contig(grad);
  const b1 = hp.beta1;
  const b2 = hp.beta2;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const decay = 1 - hp.lr * hp.weightDecay;
  const stepSize = hp.lr / (1 - b1 ** hp.step);
  const invBc2 = 1 / (1 - b2 ** hp.step);
  const eps = hp.eps;
  // SIMD across threads, streamed through scratch in chunks; the (< 4 element) tail in JS below.
  const e = scratch.engine;
  const main = size - (size % 4);
  e.reset();
  const d = new Array<number>(14).fill(0);
  d[ADAMW.decay] = bitsOf(decay);
  d[ADAMW.b1] = bitsOf(b1);
  d[ADAMW.c1] = bitsOf(c1);
  d[ADAMW.b2] = bitsOf(b2);
  d[ADAMW.c2] = bitsOf(c2);
  d[ADAMW.stepSize] = bitsOf(stepSize);
  d[ADAMW.invBc2] = bitsOf(invBc2);
  d[ADAMW.eps] = bitsOf(eps);
  if (main > 0)
    stream(e, {
      ins: [p, g, mm, vv],
      outs: [
        [0, p],
        [2, mm],
        [3, vv],
      ],
      units: main,
      len: 1,
      align: 4,
      usPerUnit: US_PER_ELEMENT,
      task: 'task_adamw',
      desc: d,
      slotFields: [ADAMW.p, ADAMW.g, ADAMW.m, ADAMW.v],
      countField: ADAMW.n,
      nextField: ADAMW.next,
    });
  for (let i = main; i < size; i++) {
    const gi = g[i];
    const mi = b1 * mm[i] + c1 * gi;
    const vi = b2 * vv[i] + c2 * gi * gi;
    mm[i] = mi;
    vv[i] = vi;
    p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi * invBc2) + eps);
  }
}
