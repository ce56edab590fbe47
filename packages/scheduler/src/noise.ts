import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

/**
 * A stateful source of standard-normal noise, like `torch.Generator`: each draw continues the
 * stream, so consecutive ancestral steps get fresh noise and the same seed replays the same run.
 * Kiln's own {@link NoiseGenerator} is one; anything with `randn(shape)` works.
 */
export interface NoiseSource {
  randn(shape: readonly number[]): Tensor;
}

/**
 * A seeded Philox stream (the same generator `k.randn` uses, so the same numbers on every
 * backend), with its position saved and restored like `torch.Generator.get_state`/`set_state`.
 *
 * @example
 * ```ts
 * const g = new NoiseGenerator(42);
 * const a = g.randn([1, 4, 64, 64]);
 * const state = g.getState();
 * const b = g.randn([1, 4, 64, 64]);
 * g.setState(state);
 * const c = g.randn([1, 4, 64, 64]); // equal to b
 * ```
 */
export class NoiseGenerator implements NoiseSource {
  private key: [number, number];
  private counter = 0;

  constructor(seed = 0) {
    this.key = keyOf(seed);
  }

  /** Restarts the stream at `seed`. */
  manualSeed(seed: number): this {
    this.key = keyOf(seed);
    this.counter = 0;
    return this;
  }

  /** A float32 tensor of standard-normal samples; advances the stream. */
  randn(shape: readonly number[]): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = k.philoxFill('normal', new Float64Array(n), this.key, this.counter);
    this.counter += Math.ceil(n / 4);
    return k.tensor(Float32Array.from(values), { shape });
  }

  /** The position in the stream (JSON-serialisable). */
  getState(): { key: [number, number]; counter: number } {
    return { key: [this.key[0], this.key[1]], counter: this.counter };
  }

  setState(state: { key: readonly [number, number]; counter: number }): void {
    this.key = [state.key[0], state.key[1]];
    this.counter = state.counter;
  }
}

function keyOf(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new k.ArgumentError(`NoiseGenerator: seed must be a non-negative safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

/** The noise a stochastic step adds: the caller's tensor if given, else a draw from the generator (or the global stream). */
export function drawNoise(shape: readonly number[], generator: NoiseSource | undefined, given: Tensor | undefined): Tensor {
  if (given) return given;
  return generator ? generator.randn(shape) : k.randn(shape);
}
