import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import type { PredictionType } from './config.js';

/**
 * Min-SNR-γ loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
 * Strategy"), as diffusers' training scripts compute them: min(SNR, γ) divided by SNR for ε
 * prediction, by SNR + 1 for v prediction, and not divided for x₀ prediction.
 *
 * @example
 * ```ts
 * const snr = scheduler.snr(timesteps);
 * const w = minSnrLossWeights(snr, 5, 'epsilon');             // [batch]
 * const perSample = k.mseLoss(pred, target, 'none').mean([1, 2, 3]);
 * const loss = perSample.mul(w).mean();
 * ```
 */
export function minSnrLossWeights(snr: Tensor, gamma: number, predictionType: PredictionType): Tensor {
  return k.tidy(() => {
    const clipped = k.minimum(snr, gamma);
    if (predictionType === 'epsilon') return k.div(clipped, snr);
    if (predictionType === 'v_prediction') return k.div(clipped, k.add(snr, 1));
    return clipped;
  });
}
