import * as k from '@kiln/tensor-core';
import type { SchedulerBase } from '@kiln/scheduler';
import type { UNet2DConditionModel } from '@kiln/unet';

/** Inputs of one DreamBooth loss evaluation. */
export interface LossInputs {
  unet: UNet2DConditionModel;
  /** The training noise schedule (DDPM form: `addNoise`, `getVelocity`, `snr`). */
  scheduler: SchedulerBase;
  /** Latents × scaling_factor, [B, 4, h, w]: instance rows first, then class rows when `withPrior`. */
  latents: k.Tensor;
  /** Text embeddings [B, L, D], rows matching `latents`. */
  encoderHiddenStates: k.Tensor;
  /** Draws the noise, the offset noise and the timesteps, in diffusers' order. */
  generator: k.Generator;
  predictionType: 'epsilon' | 'v_prediction';
  offsetNoise: boolean;
  snrGamma: number | null;
  withPrior: boolean;
  priorLossWeight: number;
}

/** The loss and its terms, each a 0-d float32 tensor. */
export interface LossTerms {
  loss: k.Tensor;
  instanceLoss: k.Tensor;
  priorLoss: k.Tensor | null;
}

/**
 * One DreamBooth loss, as diffusers' train_dreambooth.py computes it: noise (plus 0.1 × per-channel
 * offset noise), a uniform timestep per row, `addNoise`, the UNet's prediction against ε or v,
 * MSE on the instance half (min-SNR-γ weighted when `snrGamma` is set: min(SNR, γ)/SNR, + 1 for
 * v-prediction) plus λ × the MSE on the class half. Differentiable in the UNet (and whatever made
 * `encoderHiddenStates`); call it inside a `tidy`.
 *
 * @example
 * ```ts
 * const { loss } = k.tidy(() => dreamBoothLoss({ unet, scheduler, latents, encoderHiddenStates, generator, predictionType: 'epsilon', offsetNoise: false, snrGamma: null, withPrior: false, priorLossWeight: 1 }));
 * ```
 */
export function dreamBoothLoss(o: LossInputs): LossTerms {
  const { latents, generator: g } = o;
  const [B, C] = latents.shape;
  let noise = k.randn(latents.shape, { generator: g });
  if (o.offsetNoise) noise = noise.add(k.randn([B, C, 1, 1], { generator: g }).mul(0.1));
  const T = o.scheduler.alphasCumprod.length;
  const timesteps = k.randint(0, T, [B], { generator: g });
  const noisy = o.scheduler.addNoise(latents, noise, timesteps);
  // The UNet computes in its parameters' dtype (half precision under --mixed_precision); the loss in float32.
  const dtype = o.unet.convIn.weight.dtype;
  const pred = o.unet.forward(noisy.to(dtype), timesteps, o.encoderHiddenStates.to(dtype)).sample.to('float32');
  const target = o.predictionType === 'epsilon' ? noise : o.scheduler.getVelocity(latents, noise, timesteps);
  const half = o.withPrior ? B / 2 : B;
  const predI = o.withPrior ? pred.narrow(0, 0, half) : pred;
  const targetI = o.withPrior ? target.narrow(0, 0, half) : target;
  let instanceLoss: k.Tensor;
  if (o.snrGamma === null) instanceLoss = k.mseLoss(predI, targetI);
  else {
    // diffusers' weights on the instance rows' timesteps (its script passes all rows' timesteps,
    // which does not broadcast with prior preservation; the instance half is what it means).
    const snr = o.scheduler.snr(o.withPrior ? timesteps.narrow(0, 0, half) : timesteps);
    let w = k.div(k.minimum(snr, o.snrGamma), snr);
    if (o.predictionType === 'v_prediction') w = w.add(1);
    instanceLoss = predI.sub(targetI).square().mean([1, 2, 3]).mul(w).mean();
  }
  if (!o.withPrior) return { loss: instanceLoss, instanceLoss, priorLoss: null };
  const priorLoss = k.mseLoss(pred.narrow(0, half, half), target.narrow(0, half, half));
  return { loss: instanceLoss.add(priorLoss.mul(o.priorLossWeight)), instanceLoss, priorLoss };
}
