import * as k from '@kiln/tensor-core';
import type { Generator, Tensor } from '@kiln/tensor-core';

/**
 * The noise a stochastic step adds: the caller's tensor if given (diffusers' `variance_noise`),
 * else a draw shaped like `like` from `generator` (`k.defaultGenerator` when absent). Drawing
 * advances the generator, as `torch.randn(…, generator=g)` does inside diffusers' `step`.
 */
export function drawNoise(like: Tensor, generator: Generator | undefined, given: Tensor | undefined): Tensor {
  if (given) return given;
  return k.randn(like.shape, { generator, dtype: like.dtype, device: like.device });
}
