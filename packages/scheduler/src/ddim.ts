import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig } from './config.js';
import type { BaseSchedulerConfig, SchedulerConfigLike } from './config.js';
import { clipOriginal, predictOriginal, refuseThresholding } from './ddpm.js';
import * as F from './f32.js';
import { drawNoise } from './noise.js';
import { SchedulerBase, checkNoiseShape } from './scheduler.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { SchedulerError } from './errors.js';

/** `DDIMScheduler`'s config fields. @example DDIMScheduler.fromConfig({ ...config, set_alpha_to_one: false, clip_sample: false }); */
export interface DDIMConfig extends BaseSchedulerConfig {
  clip_sample: boolean;
  clip_sample_range: number;
  set_alpha_to_one: boolean;
  thresholding: boolean;
}

/** diffusers' defaults of `DDIMScheduler`'s config fields. @example const config = { ...DDIM_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const DDIM_DEFAULTS = {
  ...BASE_DEFAULTS,
  clip_sample: true,
  clip_sample_range: 1,
  set_alpha_to_one: true,
  thresholding: false,
} satisfies Partial<DDIMConfig>;

/**
 * Denoising diffusion implicit models (Song et al. 2021), diffusers' `DDIMScheduler`:
 * deterministic for η = 0, stochastic with `step(…, { eta, generator })`.
 *
 * @example
 * ```ts
 * const s = DDIMScheduler.fromConfig({ ...sd15Config, timestep_spacing: 'trailing' });
 * s.setTimesteps(50);
 * for (const t of s.timesteps) latents = s.step(unet(latents, t), t, latents).prevSample;
 * ```
 */
export class DDIMScheduler extends SchedulerBase<DDIMConfig> {
  readonly className: string = 'DDIMScheduler';
  /** ᾱ used after the last step: 1 (`set_alpha_to_one`) or ᾱ₀. */
  readonly finalAlphaCumprod: number;

  constructor(config: DDIMConfig, file = 'scheduler_config') {
    super(config, file);
    refuseThresholding(config, file);
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with DDIM's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): DDIMScheduler {
    return new DDIMScheduler(resolveSchedulerConfig(config, DDIM_DEFAULTS, file) as DDIMConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = this.spaceTimesteps(numInferenceSteps, true);
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const n = this.requireTimesteps();
    const c = this.config;
    const eta = options.eta ?? 0;
    if (!(eta >= 0)) throw new SchedulerError(`DDIMScheduler.step: eta must be ≥ 0, got ${eta}`);
    const prevT = timestep - Math.floor(c.num_train_timesteps / n);
    const alphaProd = this.alphaAt(timestep);
    const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    const betaProd = F.sub(1, alphaProd);
    checkNoiseShape(options.varianceNoise, sample, 'DDIMScheduler.step');
    return k.tidy(() => {
      let x0 = predictOriginal(c.prediction_type, sample, modelOutput, alphaProd);
      // ε implied by the model output (eq. 12 of the DDIM paper needs both x₀ and ε).
      let eps: Tensor;
      if (c.prediction_type === 'epsilon') eps = modelOutput;
      else if (c.prediction_type === 'sample') eps = k.div(k.sub(sample, k.mul(x0, F.sqrt(alphaProd))), F.sqrt(betaProd));
      else eps = k.add(k.mul(modelOutput, F.sqrt(alphaProd)), k.mul(sample, F.sqrt(betaProd)));
      x0 = clipOriginal(x0, c);
      const variance = F.mul(F.div(F.sub(1, alphaProdPrev), betaProd), F.sub(1, F.div(alphaProd, alphaProdPrev)));
      const std = F.mul(eta, F.sqrt(variance));
      if (options.useClippedModelOutput) eps = k.div(k.sub(sample, k.mul(x0, F.sqrt(alphaProd))), F.sqrt(betaProd));
      const direction = k.mul(eps, F.sqrt(F.sub(F.sub(1, alphaProdPrev), F.sq(std))));
      let prev = k.add(k.mul(x0, F.sqrt(alphaProdPrev)), direction);
      if (eta > 0) prev = k.add(prev, k.mul(drawNoise(modelOutput, options.generator, options.varianceNoise), std));
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
