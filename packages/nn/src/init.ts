import * as k from '@kiln/tensor-core';
import { initSkipped, placeholder } from './skip-init.js';

/** Where a layer's tensors are created: dtype and backend (the defaults: float32 on the selected one). @example new Linear(768, 320, { dtype: 'float16', device: 'wasm' }); */
export interface FactoryOptions {
  dtype?: k.DType;
  device?: string;
}

/**
 * Samples from U(low, high) with tensor-core's global Philox generator (`k.manualSeed` makes it
 * reproducible), drawn in float32 and cast, so every dtype gets the same underlying numbers.
 * Inside a `skipInit` build it draws nothing and returns a placeholder (as do `normal` and
 * `kaimingUniform`).
 *
 * @example
 * ```ts
 * k.manualSeed(0);
 * const w = uniform([4, 3], -0.5, 0.5);
 * ```
 */
export function uniform(shape: readonly number[], low: number, high: number, options: FactoryOptions = {}): k.Tensor {
  if (initSkipped()) return placeholder(shape, options);
  return k.noGrad(() =>
    k.tidy(() => {
      const u = k.rand(shape, { device: options.device });
      return k.cast(u.mul(high - low).add(low), options.dtype ?? 'float32');
    }),
  );
}

/**
 * Samples from N(mean, std²) with the global generator.
 *
 * @example
 * ```ts
 * const table = normal([49408, 768], 0, 1);
 * ```
 */
export function normal(shape: readonly number[], mean = 0, std = 1, options: FactoryOptions = {}): k.Tensor {
  if (initSkipped()) return placeholder(shape, options);
  return k.noGrad(() =>
    k.tidy(() => {
      const z = k.randn(shape, { device: options.device });
      return k.cast(std === 1 && mean === 0 ? z : z.mul(std).add(mean), options.dtype ?? 'float32');
    }),
  );
}

/**
 * The fan-in of a weight of `shape` as PyTorch computes it: dim 1 times the receptive field
 * (the product of dims 2…).
 *
 * @example
 * ```ts
 * fanIn([320, 4, 3, 3]); // 36
 * ```
 */
export function fanIn(shape: readonly number[]): number {
  if (shape.length < 2) throw new k.ArgumentError(`fanIn needs a weight with at least 2 dims, got [${shape.join(', ')}]`);
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * `torch.nn.init.kaiming_uniform_(w, a)` with leaky-ReLU gain: U(−b, b), b = √(6 / ((1 + a²)·fanIn)).
 * `a = √5` (the default) is what `nn.Linear` and `nn.Conv2d` use, which gives b = 1/√fanIn.
 *
 * @example
 * ```ts
 * const w = kaimingUniform([320, 4, 3, 3]);
 * ```
 */
export function kaimingUniform(shape: readonly number[], a = Math.sqrt(5), options: FactoryOptions = {}): k.Tensor {
  const bound = Math.sqrt(6 / ((1 + a * a) * fanIn(shape)));
  return uniform(shape, -bound, bound, options);
}
