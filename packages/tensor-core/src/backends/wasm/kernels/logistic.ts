/**
 * exp(a) on f32x4 for the logistic function in the norm kernels' SiLU (σ(z) = 1 / (1 + exp(−z))),
 * built for throughput: the constants live in v128 locals set once per call, the clamp uses
 * `f32x4.pmin/pmax` (one `minps`/`maxps` each on x64, where `f32x4.min/max` need NaN fix-ups of
 * ~6 instructions), and 2^n comes from the bits of the rounding sum itself (no round, no
 * float→int conversion). About 13 SIMD operations per 4 values, against ~30 for `exp.ts`.
 *
 *   a' = clamp(a, −86, 88)                  (2^n stays a normal f32; beyond it σ is 0 or 1 to f32 anyway)
 *   t  = a'·log2(e) + (1.5·2^23 + 127)      (the low mantissa bits of t are n + 127, n = round(a'·log2 e))
 *   r  = a' − n·ln2  (Cody–Waite, two parts)
 *   exp(a') = p(r) · 2^n,  p a degree-5 minimax polynomial on |r| ≤ ln2/2 (relative error 2.1e-7
 *            evaluated in f32, about 2 ulp; fitted by iteratively reweighted least squares);
 *   2^n = the f32 whose bits are (bits(t) << 23).
 *
 * NaN stays NaN (pmin/pmax keep their first operand when a comparison fails).
 */
import { Fn, V128 } from '../emit.js';

const PMIN = 0xea;
const PMAX = 0xeb;
const MAGIC = 12582912 + 127;
/** p(r) = Σ c_k r^k, highest power first (Horner). */
const POLY = [0.008297654800117016, 0.04191538318991661, 0.16667574644088745, 0.49998894333839417, 0.9999997019767761, 1.0000001192092896];

/** The constants of one kernel function's exp, in v128 locals. */
export class LogisticExp {
  private readonly hi: number;
  private readonly lo: number;
  private readonly log2e: number;
  private readonly magic: number;
  private readonly ln2hi: number;
  private readonly ln2lo: number;
  private readonly poly: number[];
  /** splat(1) and splat(−1), for the callers' σ and SiLU. */
  readonly one: number;
  readonly negOne: number;

  /** Allocates the locals and sets them: call at the top of the function, outside its loops. */
  constructor(
    private readonly f: Fn,
    private readonly relaxed: boolean,
  ) {
    const splat = (v: number): number => {
      const l = f.local(V128);
      f.f32(v).vsplat().set(l);
      return l;
    };
    this.hi = splat(88);
    this.lo = splat(-86);
    this.log2e = splat(Math.LOG2E);
    this.magic = splat(MAGIC);
    this.ln2hi = splat(-0.693359375);
    this.ln2lo = splat(2.12194440e-4);
    this.one = splat(1);
    this.negOne = splat(-1);
    this.poly = POLY.map(splat);
  }

  /** a·b + c of three v128 locals, left on the stack (relaxed FMA, or mul + add). */
  private madd(a: number, b: number, c: number): void {
    const f = this.f;
    if (this.relaxed) f.get(a).get(b).get(c).simd(0x105);
    else f.get(a).get(b).vmul().get(c).vadd();
  }

  /** Local `e` ← exp(local `a`) (`a` is left unchanged); `t` and `r` are scratch v128 locals. */
  emit(a: number, e: number, t: number, r: number): void {
    const f = this.f;
    // pmin(a, hi) = hi < a ? hi : a; pmax(·, lo) = · < lo ? lo : ·.
    f.get(a).get(this.hi).simd(PMIN).get(this.lo).simd(PMAX).set(r);
    this.madd(r, this.log2e, this.magic);
    f.set(t);
    // e (as scratch) = n = t − magic, exact; r = a' − n·ln2_hi − n·ln2_lo.
    f.get(t).get(this.magic).vsub().set(e);
    this.madd(e, this.ln2hi, r);
    f.set(r);
    this.madd(e, this.ln2lo, r);
    f.set(r);
    f.get(this.poly[0]).set(e);
    for (const c of this.poly.slice(1)) {
      this.madd(e, r, c);
      f.set(e);
    }
    f.get(e).get(t).i32(23).vishl().vmul().set(e);
  }
}
