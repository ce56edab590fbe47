/**
 * Philox 4×32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator of decision 5. Element `i` of a draw comes from the block
 * `counter + floor(i / 4)` and lane `i % 4`, so any backend can compute any element on its own
 * and all of them agree.
 *
 * - uniform: `(x >>> 8) * 2^-24`, in [0, 1), exact in f32.
 * - normal: Box–Muller on lanes (0, 1) and (2, 3): `u1 = ((x0 >>> 8) + 1) * 2^-24` in (0, 1],
 *   `u2 = (x1 >>> 8) * 2^-24`, `r = sqrt(-2 ln u1)`, lane 0 = `r cos(2π u2)`, lane 1 = `r sin(2π u2)`.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the unsigned 64-bit product a*b. */
function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const hilo = aHi * bLo;
  const lohi = aLo * bHi;
  const hihi = aHi * bHi;
  const cross = (lolo >>> 16) + (hilo & 0xffff) + (lohi & 0xffff);
  return (hihi + (hilo >>> 16) + (lohi >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/** One Philox 4×32-10 block: four u32 outputs for a 128-bit counter and a 64-bit key. */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array = new Uint32Array(4),
): Uint32Array {
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

const TWO_PI = 2 * Math.PI;
const INV_2_24 = 2 ** -24;

/**
 * Fills `out` with `out.length` numbers of the draw at `counter` (a block index below 2^53) under
 * `key`. Computed in f64 here; the values are what every backend should produce to f32 precision.
 */
export function philoxFill(
  dist: 'uniform' | 'normal',
  out: Float64Array,
  key: readonly [number, number],
  counter: number,
): Float64Array {
  const block = new Uint32Array(4);
  const n = out.length;
  for (let b = 0; b * 4 < n; b++) {
    const c = counter + b;
    philox4x32(c >>> 0, Math.floor(c / 2 ** 32) >>> 0, 0, 0, key[0], key[1], block);
    const base = b * 4;
    if (dist === 'uniform') {
      for (let l = 0; l < 4 && base + l < n; l++) out[base + l] = (block[l] >>> 8) * INV_2_24;
    } else {
      for (let l = 0; l < 4; l += 2) {
        const u1 = ((block[l] >>> 8) + 1) * INV_2_24;
        const u2 = (block[l + 1] >>> 8) * INV_2_24;
        const r = Math.sqrt(-2 * Math.log(u1));
        if (base + l < n) out[base + l] = r * Math.cos(TWO_PI * u2);
        if (base + l + 1 < n) out[base + l + 1] = r * Math.sin(TWO_PI * u2);
      }
    }
  }
  return out;
}

/** A 64-bit key from a seed (a non-negative integer below 2^53). */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

/** The global generator: a key and a running block counter, like `torch.manual_seed`. */
const global = { key: seedKey(0), counter: 0 };

/**
 * Seeds the global generator used when a random op gets no `seed`.
 *
 * @example
 * ```ts
 * k.manualSeed(42);
 * const a = k.randn([4]); // same numbers after every manualSeed(42)
 * ```
 */
export function manualSeed(seed: number): void {
  global.key = seedKey(seed);
  global.counter = 0;
}

/** Key and counter for a draw of `size` numbers: from `seed` at counter 0, or from the global stream. */
export function nextDraw(size: number, seed?: number): { key: [number, number]; counter: number } {
  if (seed !== undefined) return { key: seedKey(seed), counter: 0 };
  const draw = { key: global.key, counter: global.counter };
  global.counter += Math.ceil(size / 4);
  return draw;
}
