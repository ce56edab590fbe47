import type { Fn } from '../emit.js';

/**
 * x ← exp(x) for f32x4 in local `x` (Cody–Waite reduction, degree-6 polynomial, 2^n by exponent
 * bits; ~2 ulp; underflows to 0 below -87.3, NaN stays NaN). `n` is a scratch v128 local.
 */
export function emitExp(f: Fn, x: number, n: number, relaxed: boolean): void {
  const k = (v: number) => (g: Fn) => g.f32(v).vsplat();
  f.get(x).e(k(88.3762626647949)).vmin().e(k(-87.3365447504)).vmax().set(x);
  f.get(x).e(k(Math.LOG2E)).vmul().vnearest().set(n);
  // r = x - n*ln2_hi - n*ln2_lo
  if (relaxed) {
    // relaxed_madd(a, b, c) = a*b + c
    f.get(n).e(k(-0.693359375)).get(x).simd(0x105).set(x);
    f.get(n).e(k(2.12194440e-4)).get(x).simd(0x105).set(x);
  } else {
    f.get(x).get(n).e(k(0.693359375)).vmul().vsub().get(n).e(k(-2.12194440e-4)).vmul().vsub().set(x);
  }
  // p(r) = 1 + r + r^2/2 + ... + r^6/720 (Horner), kept on the stack.
  const coeffs = [1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1];
  f.e(k(1 / 720));
  for (const c of coeffs) {
    if (relaxed) f.get(x).e(k(c)).simd(0x105);
    else f.get(x).vmul().e(k(c)).vadd();
  }
  // * 2^n
  f.get(n).vtrunc().i32(127).simd(0x11).viadd().i32(23).vishl().vmul().set(x);
  // Exact 0 where n hit the lower clamp (inputs below -87.3, including -inf).
  f.get(x).get(n).e(k(-125.5)).vlt().vandnot().set(x);
}
