/**
 * Philox 4×32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator of decision 5. Element `i` of a draw comes from the block
 * `counter + floor(i / 4)` and lane `i % 4`, so any backend can compute any element on its own
 * and all of them agree.
 *
 * - uniform: `(x >>> 8) * 2^-24`, in [0, 1), exact in f32.
 * - normal: Box–Muller on lanes (0, 1) and (2, 3): `u1 = ((x0 >>> 8) + 1) * 2^-24` in (0, 1],
 *   `u2 = (x1 >>> 8) * 2^-24`, `r = sqrt(-2 ln u1)`, lane 0 = `r cos(2π u2)`, lane 1 = `r sin(2π u2)`.
 * - integers in [low, high) (`randint`): `low + floor(u * (high - low))` with the uniform `u` above
 *   while the range is at most 2^24; wider ranges use all 32 bits, `low + floor(x * 2^-32 * range)`.
 *
 * A draw of `n` numbers of any kind uses `ceil(n / 4)` blocks; that is how far a `Generator` advances.
 */
import { ArgumentError } from './errors.js';

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

/** One Philox 4×32-10 block: four u32 outputs for a 128-bit counter and a 64-bit key. @example const block = k.philox4x32(0, 0, 0, 0, 42, 0); // Uint32Array of 4 words */
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
 *
 * @example
 * ```ts
 * const normals = k.philoxFill('normal', new Float64Array(8), [42, 0], 0); // 8 N(0, 1) numbers from key [42, 0], block 0
 * ```
 */
export function philoxFill(dist: 'uniform' | 'normal', out: Float64Array, key: readonly [number, number], counter: number): Float64Array {
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

/**
 * Fills `out` with integers uniform in [low, low + range) from the draw at `counter`, one Philox
 * lane each (see the header for the mapping; `range` at most 2^32).
 */
export function philoxIntegers(
  out: Float64Array,
  key: readonly [number, number],
  counter: number,
  low: number,
  range: number,
): Float64Array {
  const block = new Uint32Array(4);
  const wide = range > 2 ** 24;
  const n = out.length;
  for (let b = 0; b * 4 < n; b++) {
    const c = counter + b;
    philox4x32(c >>> 0, Math.floor(c / 2 ** 32) >>> 0, 0, 0, key[0], key[1], block);
    for (let l = 0; l < 4 && b * 4 + l < n; l++) {
      const x = block[l];
      out[b * 4 + l] = low + Math.floor(wide ? x * 2 ** -32 * range : (x >>> 8) * INV_2_24 * range);
    }
  }
  return out;
}

/** The largest seed: seeds are safe integers, so a seed round-trips through JSON unchanged. */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** A 64-bit key from a seed (a non-negative integer below 2^53). */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new ArgumentError(`seed must be a non-negative safe integer, got ${seed}`);
  }
  return [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

/** The saved state of a {@link Generator}: plain data that survives `JSON.stringify`. @example const state: k.GeneratorState = g.getState(); // { algorithm: 'philox4x32-10', seed, offset } */
export interface GeneratorState {
  /** Always `'philox4x32-10'`; a state from another generator is refused. */
  readonly algorithm: 'philox4x32-10';
  /** The seed the Philox key comes from. */
  readonly seed: number;
  /** Philox blocks used so far: the counter of the next draw (each block gives 4 numbers). */
  readonly offset: number;
}

/**
 * A random number generator with state, like `torch.Generator`: a Philox 4×32-10 key (from the
 * seed) and a block counter (the offset). Every draw of `n` numbers (normal, uniform or integer)
 * reads the blocks `offset … offset + ceil(n / 4) - 1` and then advances the offset by
 * `ceil(n / 4)`, on every backend alike, so a stream is the same on cpu, wasm and webgpu, and
 * `getState()`/`setState()` resume it exactly. Pass it as `{ generator }` to `randn`, `rand`,
 * `randint`, the `*Like` variants and `dropout`; ops without one use {@link defaultGenerator}.
 *
 * @example
 * ```ts
 * const g = new k.Generator(42);
 * const a = k.randn([4], { generator: g });
 * const saved = g.getState();          // { algorithm: 'philox4x32-10', seed: 42, offset: 1 }
 * const b = k.randn([4], { generator: g }); // differs from a
 * g.setState(saved);
 * const c = k.randn([4], { generator: g }); // equals b
 * ```
 */
export class Generator {
  #seed = 0;
  #key: [number, number] = [0, 0];
  #offset = 0;

  /** A generator seeded with `seed` (default 0) at offset 0. */
  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Re-seeds and rewinds to offset 0 (`torch.Generator.manual_seed`). Returns this. */
  manualSeed(seed: number): this {
    this.#key = seedKey(seed);
    this.#seed = seed;
    this.#offset = 0;
    return this;
  }

  /** The seed this generator was last seeded with. */
  initialSeed(): number {
    return this.#seed;
  }

  /** Philox blocks consumed so far (the counter of the next draw). */
  get offset(): number {
    return this.#offset;
  }

  /** A copy of the state, as plain data (store it in a checkpoint as JSON). */
  getState(): GeneratorState {
    return { algorithm: 'philox4x32-10', seed: this.#seed, offset: this.#offset };
  }

  /** Restores a state from `getState()`, so the next draws repeat the ones made after it. Returns this. */
  setState(state: GeneratorState): this {
    const s = state as Partial<Record<keyof GeneratorState, unknown>> | null;
    if (typeof s !== 'object' || s === null) throw new ArgumentError(`Generator.setState: state must be an object, got ${String(state)}`);
    if (s.algorithm !== 'philox4x32-10') {
      throw new ArgumentError(`Generator.setState: state.algorithm must be 'philox4x32-10', got ${JSON.stringify(s.algorithm)}`);
    }
    if (typeof s.seed !== 'number' || !Number.isSafeInteger(s.seed) || s.seed < 0) {
      throw new ArgumentError(`Generator.setState: state.seed must be a non-negative safe integer, got ${JSON.stringify(s.seed)}`);
    }
    if (typeof s.offset !== 'number' || !Number.isSafeInteger(s.offset) || s.offset < 0) {
      throw new ArgumentError(`Generator.setState: state.offset must be a non-negative safe integer, got ${JSON.stringify(s.offset)}`);
    }
    this.manualSeed(s.seed);
    this.#offset = s.offset;
    return this;
  }

  /**
   * @internal Runs `fn` on the key and first block of a draw of `size` numbers, then advances
   * past it; if `fn` throws (a size the backend cannot hold), the generator stays where it was.
   */
  _draw<T>(size: number, fn: (key: [number, number], counter: number) => T): T {
    const blocks = Math.ceil(size / 4);
    if (!Number.isSafeInteger(this.#offset + blocks)) {
      throw new ArgumentError(`Generator: offset ${this.#offset} + ${blocks} blocks passes 2^53; re-seed it`);
    }
    const out = fn(this.#key, this.#offset);
    this.#offset += blocks;
    return out;
  }
}

/**
 * The generator that random ops use when given neither `seed` nor `generator`
 * (`torch.default_generator`); `k.manualSeed` re-seeds it.
 *
 * @example
 * ```ts
 * const saved = k.defaultGenerator.getState();
 * const a = k.rand([3]);
 * k.defaultGenerator.setState(saved);
 * const b = k.rand([3]); // equals a
 * ```
 */
export const defaultGenerator = new Generator(0);

/**
 * Seeds the default generator used when a random op gets no `seed` or `generator`, and returns it.
 *
 * @example
 * ```ts
 * k.manualSeed(42);
 * const a = k.randn([4]); // same numbers after every manualSeed(42)
 * ```
 */
export function manualSeed(seed: number): Generator {
  return defaultGenerator.manualSeed(seed);
}

/**
 * Runs `fn` on the key and first block of a draw of `size` numbers: from `seed` at block 0 (a
 * fresh stream each call, as before generators existed), else from `generator` or the default
 * one, which advance only when `fn` succeeds.
 */
export function draw<T>(
  size: number,
  seed: number | undefined,
  generator: Generator | undefined,
  fn: (key: [number, number], counter: number) => T,
): T {
  if (seed !== undefined && generator !== undefined) throw new ArgumentError('random: give either seed or generator, not both');
  if (seed !== undefined) return fn(seedKey(seed), 0);
  if (generator !== undefined && !(generator instanceof Generator)) {
    throw new ArgumentError(`random: generator must be a k.Generator, got ${String(generator)}`);
  }
  return (generator ?? defaultGenerator)._draw(size, fn);
}
