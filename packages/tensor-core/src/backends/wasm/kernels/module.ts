/**
 * What every kernel family shares: the blocking configuration, descriptor access, and the
 * module under construction (functions are called by their index in it).
 */
import { Fn } from '../emit.js';
import type { Expr } from '../emit.js';

/** Blocking of the wasm GEMM kernels (register tile, cache blocks), for tuning. @example k.registerWasmBackend({ kernel: { mc: 64 } }); // GEMM blocking, for tuning */
export interface KernelConfig {
  relaxed: boolean;
  mr: number;
  nr: number;
  kc: number;
  mc: number;
  nc: number;
  /** k-loop unroll of the microkernel. */
  unroll: number;
  /** How A values are broadcast: a load-splat per row, or one load and lane shuffles (mr % 4 == 0). */
  splat?: 'load' | 'shuffle';
  /** Work chunks per thread a multi-threaded GEMM is cut into (claimed dynamically). */
  chunks: number;
}

export const DEFAULT_CONFIG: Omit<KernelConfig, 'relaxed'> = { mr: 4, nr: 8, kc: 256, mc: 96, nc: 1024, unroll: 1, splat: 'load', chunks: 2 };

/** Per-thread GEMM workspace: packed A block, packed B panel, an edge tile. */
export function gemmWorkspaceBytes(c: KernelConfig): number {
  const mcp = Math.ceil(c.mc / c.mr) * c.mr;
  const ncp = Math.ceil(c.nc / c.nr) * c.nr;
  return (mcp * c.kc + c.kc * ncp + c.mr * c.nr) * 4 + 256;
}

/** The function list of the module being assembled; a family adds its functions in order. */
export class ModuleBuilder {
  readonly fns: Fn[] = [];
  constructor(readonly config: KernelConfig) {}
  add(f: Fn): Fn {
    this.fns.push(f);
    return f;
  }
  /** The function index `call` needs; the callee must already be added. */
  index(f: Fn): number {
    const i = this.fns.indexOf(f);
    if (i < 0) throw new Error(`wasm kernels: ${f.name} is called before it is added`);
    return i;
  }
}

/** Loads descriptor field `i` (an i32) of the descriptor in local `d`. */
export const field = (d: number, i: number): Expr => (f) => f.get(d).i32load(i * 4);
/** Pushes min(a, b) (signed i32) using two scratch locals. */
export const min = (f: Fn, a: Expr, b: Expr, tmpA: number, tmpB: number): Fn =>
  f.set(tmpA, a).set(tmpB, b).get(tmpA).get(tmpB).get(tmpA).get(tmpB).lts().select();
