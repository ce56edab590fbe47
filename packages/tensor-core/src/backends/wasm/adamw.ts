/** The fused AdamW step on the wasm engine (f32). */
import type { AdamWHyper } from '../../backend.js';
import { ADAMW } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';

/**
 * Elements per staged array per chunk: 4 MiB, so the four arrays of a chunk stay in cache between
 * the copy in, the kernel and the copy out, in few dispatches (each one waits for every worker to
 * wake, which on a busy machine can take far longer than the chunk's work).
 */
const CHUNK = 1 << 20;
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
  const CH = Math.min(CHUNK, main);
  e.reset();
  const ptr = [p, g, mm, vv].map(() => e.alloc(CH * 4));
  const d = new Array<number>(14);
  d[ADAMW.p] = ptr[0];
  d[ADAMW.g] = ptr[1];
  d[ADAMW.m] = ptr[2];
  d[ADAMW.v] = ptr[3];
  d[ADAMW.decay] = bitsOf(decay);
  d[ADAMW.b1] = bitsOf(b1);
  d[ADAMW.c1] = bitsOf(c1);
  d[ADAMW.b2] = bitsOf(b2);
  d[ADAMW.c2] = bitsOf(c2);
  d[ADAMW.stepSize] = bitsOf(stepSize);
  d[ADAMW.invBc2] = bitsOf(invBc2);
  d[ADAMW.eps] = bitsOf(eps);
  for (let c0 = 0; c0 < main; c0 += CH) {
    const n = Math.min(CH, main - c0);
    const f = e.f32;
    [p, g, mm, vv].forEach((a, i) => f.set(a.subarray(c0, c0 + n), ptr[i] / 4));
    d[ADAMW.n] = n;
    d[ADAMW.next] = 0;
    e.run('task_adamw', e.desc(d), e.threadsFor(n * US_PER_ELEMENT));
    p.set(f.subarray(ptr[0] / 4, ptr[0] / 4 + n), c0);
    mm.set(f.subarray(ptr[2] / 4, ptr[2] / 4 + n), c0);
    vv.set(f.subarray(ptr[3] / 4, ptr[3] / 4 + n), c0);
  }
  for (let i = main; i < size; i++) {
    const gi = g[i];
    const mi = b1 * mm[i] + c1 * gi;
    const vi = b2 * vv[i] + c2 * gi * gi;
    mm[i] = mi;
    vv[i] = vi;
    p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi * invBc2) + eps);
  }
}
