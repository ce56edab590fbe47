/**
 * Float32 arithmetic on JS numbers, the way diffusers' schedulers compute in PyTorch: every scalar
 * op on a 0-d float32 tensor rounds to float32. `Math.fround` of an f64 result is exactly the f32
 * result for + − × ÷ and sqrt of f32 inputs (f64 has more than twice the bits), so no op here
 * double-rounds. log and exp are correctly rounded here, where PyTorch's SIMD versions may be 1 ulp off.
 */
export const f = Math.fround;
export const add = (a: number, b: number): number => f(a + b);
export const sub = (a: number, b: number): number => f(a - b);
export const mul = (a: number, b: number): number => f(a * b);
export const div = (a: number, b: number): number => f(a / b);
export const sqrt = (a: number): number => f(Math.sqrt(a));
export const sq = (a: number): number => f(a * a);
export const log = (a: number): number => f(Math.log(a));
export const exp = (a: number): number => f(Math.exp(a));
export const expm1 = (a: number): number => f(Math.expm1(a));

/** numpy's `round` (half to even), which diffusers applies to timesteps. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `torch.linspace(start, end, steps, dtype=float32)` on PyTorch's x86 CPU kernel, bit for bit: a
 * float32 step, the first half counted up from `start` and the second down from `end`, in AVX2
 * vectors of 8 lanes (two vectors per loop iteration, the rest one by one). The compiler fuses
 * some multiply-adds (the vector base and lanes 0–4) and not others (lanes 5–7); matching that
 * matters, because a 1-ulp change in one beta moves `1 − ᾱ_t` near t = 0 by up to 1e-4 relative.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f((e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  // One rounding of `a + b·c`, what a fused multiply-add gives (b·c is exact in f64 here).
  const fma = (a: number, b: number, c: number): number => f(a + b * c);
  const scalarAt = (i: number): number => (i < half ? fma(s, step, i) : fma(e, -step, steps - i - 1));
  let i = 0;
  for (; i + 16 <= steps;) {
    for (let v = 0; v < 2; v++, i += 8) {
      const base = scalarAt(i);
      for (let lane = 0; lane < 8; lane++) out[i + lane] = lane < 5 ? fma(base, lane, step) : f(base + f(lane * step));
    }
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}
