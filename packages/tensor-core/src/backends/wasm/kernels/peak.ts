/**
 * Calibration loops: the SIMD128 FMA throughput and the memory bandwidth this engine reaches on
 * this machine, on the same threads as the kernels. Benchmarks divide a kernel's GFLOP/s (or
 * bytes/s) by these to report an efficiency that means the same on every CPU.
 */
import { Fn, I32, V128 } from '../emit.js';
import { field } from './module.js';
import type { ModuleBuilder } from './module.js';

/** `task_peak_fma` / `task_peak_copy` descriptor field indices (i32 slots). */
export const PEAK = { iters: 0, out: 1, src: 2, dst: 3, bytes: 4 } as const;

/**
 * Independent accumulators of the FMA loop: enough to cover FMA latency × issue width on current
 * cores (8 to 14 measured the same on a Zen 5 EPYC).
 */
export const PEAK_ACCS = 12;

/** FLOPs one thread's `task_peak_fma` does for `iters` iterations (each accumulator: 4 lanes × mul+add). */
export const peakFlops = (iters: number): number => iters * PEAK_ACCS * 8;

export function emitPeak(mod: ModuleBuilder): void {
  const c = mod.config;
  // ---- task_peak_fma(desc, t, T): `iters` rounds of PEAK_ACCS independent f32x4 a*b+c per thread ----
  {
    const f = new Fn('task_peak_fma', [I32, I32, I32]);
    const [d, t] = [0, 1];
    const n = f.local(I32);
    const b = f.local(V128);
    const a = f.local(V128);
    const acc = Array.from({ length: PEAK_ACCS }, () => f.local(V128));
    // acc += a·b with a tiny product: the values stay finite and normal for any iteration count.
    f.f32(1e-4).vsplat().set(a);
    f.f32(1e-4).vsplat().set(b);
    acc.forEach((r, i) => f.f32(1 + i).vsplat().set(r));
    f.set(n, field(d, PEAK.iters));
    f.block(() => {
      f.get(n).eqz().brIf(0);
      f.loop(() => {
        // The same multiply-add the GEMM microkernel issues (relaxed FMA or mul + add).
        for (const r of acc) f.vmadd(c.relaxed, () => f.get(a), () => f.get(b), () => f.get(r)).set(r);
        f.get(n).i32(1).sub().tee(n).brIf(0);
      });
    });
    for (let i = 1; i < PEAK_ACCS; i++) f.get(acc[0]).get(acc[i]).vadd().set(acc[0]);
    f.get(d).i32load(PEAK.out * 4).get(t).i32(16).mul().add().get(acc[0]).v128store();
    mod.add(f);
  }
  // ---- task_peak_copy(desc, t, T): copies this thread's share of `bytes` from src to dst, `iters` times ----
  {
    const f = new Fn('task_peak_copy', [I32, I32, I32]);
    const [d, t, T] = [0, 1, 2];
    const [n, lo, hi, o, s, dd] = Array.from({ length: 6 }, () => f.local(I32));
    f.set(s, field(d, PEAK.src));
    f.set(dd, field(d, PEAK.dst));
    // Shares in 64-byte units.
    f.get(d).i32load(PEAK.bytes * 4).i32(6).shr_s().get(t).mul().get(T).divs().i32(6).shl().set(lo);
    f.get(d).i32load(PEAK.bytes * 4).i32(6).shr_s().get(t).i32(1).add().mul().get(T).divs().i32(6).shl().set(hi);
    f.set(n, field(d, PEAK.iters));
    f.block(() => {
      f.get(n).eqz().brIf(0);
      f.loop(() => {
        f.for(o, (g) => g.get(lo), (g) => g.get(hi), 64, () => {
          for (let v = 0; v < 4; v++) f.get(dd).get(o).add().get(s).get(o).add().v128load(16 * v).v128store(16 * v);
        });
        f.get(n).i32(1).sub().tee(n).brIf(0);
      });
    });
    mod.add(f);
  }
}
