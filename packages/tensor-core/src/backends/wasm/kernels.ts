/**
 * The compute kernels of the wasm backend, one file per family under `kernels/`, emitted as
 * WebAssembly at load time (see `emit.ts`) into one module. All pointers are byte addresses into
 * the one shared memory; strides count f32 elements. Every exported `task_*` function takes
 * `(desc, t, T)`: a descriptor of i32 fields in memory, this thread's index and the thread count,
 * and does its share of the work. Configuration (blocking, relaxed FMA) is passed to each family
 * as a parameter; nothing here is module-level state.
 */
import { assemble } from './emit.js';
import { emitAdamw } from './kernels/adamw.js';
import { emitAttention } from './kernels/attention.js';
import { emitAttentionBackward } from './kernels/attention-backward.js';
import { emitElementwise } from './kernels/elementwise.js';
import { emitGemm } from './kernels/gemm.js';
import { emitIm2col } from './kernels/im2col.js';
import { ModuleBuilder } from './kernels/module.js';
import type { KernelConfig } from './kernels/module.js';
import { emitNorm } from './kernels/norm.js';
import { emitNormBackward } from './kernels/norm-backward.js';
import { emitPeak } from './kernels/peak.js';
import { emitSoftmax } from './kernels/softmax.js';
import { WINOGRAD_TASKS, winogradFns } from './kernels/winograd.js';

export { DEFAULT_CONFIG, gemmWorkspaceBytes } from './kernels/module.js';
export type { KernelConfig } from './kernels/module.js';
export { GEMM, packedBBytes } from './kernels/gemm.js';
export { IM2COL } from './kernels/im2col.js';
export { ATTN } from './kernels/attention.js';
export { ATTN_BWD } from './kernels/attention-backward.js';
export { SOFTMAX } from './kernels/softmax.js';
export { GNORM, LNORM } from './kernels/norm.js';
export { GNORM_BWD, LNORM_BWD, SUM_ROWS } from './kernels/norm-backward.js';
export { ADAMW } from './kernels/adamw.js';
export { PEAK, PEAK_ACCS, peakFlops } from './kernels/peak.js';
export { BIN, UN, UNARY_CODES } from './kernels/elementwise.js';
export { WIN_MAT, WIN_TILE } from './kernels/winograd.js';

/** Every task a worker may be asked to run, by index (the order is the dispatch protocol). */
export const TASKS = [
  'task_gemm',
  'task_im2col',
  'task_col2im',
  'task_attention',
  'task_softmax',
  'task_groupnorm',
  'task_layernorm',
  'task_adamw',
  'task_binary',
  'task_unary',
  'task_attention_bwd',
  'task_groupnorm_bwd',
  'task_layernorm_bwd',
  'task_sum_rows',
  ...WINOGRAD_TASKS,
  'task_peak_fma',
  'task_peak_copy',
  'task_gemm_packb',
] as const;
/** The names of the wasm engine's parallel tasks. @example const task: k.WasmTaskName = 'task_gemm'; */
export type TaskName = (typeof TASKS)[number];

/** Assembles the module for one configuration. */
export function buildModule(c: KernelConfig, memory: { initial: number; maximum: number; shared: boolean }): Uint8Array {
  const m = new ModuleBuilder(c);
  const { gemm, packBAll } = emitGemm(m);
  emitIm2col(m);
  const softmaxRows = emitSoftmax(m);
  emitNorm(m);
  emitNormBackward(m);
  emitAdamw(m);
  emitElementwise(m);
  emitAttention(m, gemm, packBAll, softmaxRows);
  emitAttentionBackward(m, gemm, packBAll, softmaxRows);
  for (const f of winogradFns()) m.add(f);
  emitPeak(m);
  return assemble(m.fns, memory);
}
