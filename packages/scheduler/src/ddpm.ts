import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { BaseSchedulerConfig, PredictionType, SchedulerConfigLike } from './config.js';
import * as F from './f32.js';
import { drawNoise } from './noise.js';
import { SchedulerBase, checkNoiseShape } from './scheduler.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';

const VARIANCE_TYPES = ['fixed_small', 'fixed_small_log', 'fixed_large'] as const;

/** `DDPMScheduler`'s config fields. @example DDPMScheduler.fromConfig({ ...config, variance_type: 'fixed_small', clip_sample: false }); */
export interface DDPMConfig extends BaseSchedulerConfig {
  variance_type: (typeof VARIANCE_TYPES)[number];
  clip_sample: boolean;
  clip_sample_range: number;
  thresholding: boolean;
}

/** diffusers' defaults of `DDPMScheduler`'s config fields. @example const config = { ...DDPM_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const DDPM_DEFAULTS = {
  ...BASE_DEFAULTS,
  variance_type: 'fixed_small',
  clip_sample: true,
  clip_sample_range: 1,
  thresholding: false,
} satisfies Partial<DDPMConfig>;

/** Refuses `thresholding: true` by name (dynamic thresholding is not implemented). */
export function refuseThresholding(config: { thresholding?: unknown }, file: string): void {
  if (config.thresholding) unsupported(file, 'thresholding', true, [false]);
}

/**
 * x₀ predicted from the model output, for the ᾱ-parameterised schedulers (DDPM, DDIM):
 * ε: (x − √(1−ᾱ)·ε)/√ᾱ; sample: the output itself; v: √ᾱ·x − √(1−ᾱ)·v.
 */
export function predictOriginal(type: PredictionType, sample: Tensor, modelOutput: Tensor, alphaProd: number): Tensor {
  const betaProd = F.sub(1, alphaProd);
  if (type === 'epsilon') return k.div(k.sub(sample, k.mul(modelOutput, F.sqrt(betaProd))), F.sqrt(alphaProd));
  if (type === 'sample') return modelOutput;
  return k.sub(k.mul(sample, F.sqrt(alphaProd)), k.mul(modelOutput, F.sqrt(betaProd)));
}

/** `clip_sample`: clamp the x₀ prediction to ±`clip_sample_range`. */
export function clipOriginal(x0: Tensor, config: { clip_sample: boolean; clip_sample_range: number }): Tensor {
  return config.clip_sample ? k.clamp(x0, -config.clip_sample_range, config.clip_sample_range) : x0;
}

/**
 * Denoising diffusion probabilistic models (Ho et al. 2020): ancestral sampling with the posterior
 * q(x_{t−1} | x_t, x₀), diffusers' `DDPMScheduler` (also the noise schedule DreamBooth trains with).
 *
 * @example
 * ```ts
 * const s = DDPMScheduler.fromConfig(schedulerConfigJson);
 * s.setTimesteps(50);
 * const g = new k.Generator(0);
 * for (const t of s.timesteps) latents = s.step(unet(latents, t), t, latents, { generator: g }).prevSample;
 * ```
 */
export class DDPMScheduler extends SchedulerBase<DDPMConfig> {
  readonly className: string = 'DDPMScheduler';

  constructor(config: DDPMConfig, file = 'scheduler_config') {
    super(config, file);
    if (!(VARIANCE_TYPES as readonly unknown[]).includes(config.variance_type))
      unsupported(file, 'variance_type', config.variance_type, VARIANCE_TYPES);
    refuseThresholding(config, file);
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with DDPM's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): DDPMScheduler {
    return new DDPMScheduler(resolveSchedulerConfig(config, DDPM_DEFAULTS, file) as DDPMConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = this.spaceTimesteps(numInferenceSteps, true);
  }

  /** The timestep after `t` (diffusers' `previous_timestep`: t − ⌊T/n⌋, whatever the spacing). */
  previousTimestep(t: number): number {
    const n = this.numInferenceSteps ?? this.config.num_train_timesteps;
    return t - Math.floor(this.config.num_train_timesteps / n);
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const c = this.config;
    const t = timestep;
    const prevT = this.previousTimestep(t);
    const alphaProd = this.alphaAt(t);
    const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : 1;
    const betaProd = F.sub(1, alphaProd);
    const betaProdPrev = F.sub(1, alphaProdPrev);
    const currentAlpha = F.div(alphaProd, alphaProdPrev);
    const currentBeta = F.sub(1, currentAlpha);
    checkNoiseShape(options.varianceNoise, sample, 'DDPMScheduler.step');
    return k.tidy(() => {
      const x0 = clipOriginal(predictOriginal(c.prediction_type, sample, modelOutput, alphaProd), c);
      // Posterior mean: coefficients of x₀ and x_t (Ho et al., eq. 7).
      const x0Coeff = F.div(F.mul(F.sqrt(alphaProdPrev), currentBeta), betaProd);
      const xtCoeff = F.div(F.mul(F.sqrt(currentAlpha), betaProdPrev), betaProd);
      let prev = k.add(k.mul(x0, x0Coeff), k.mul(sample, xtCoeff));
      if (t > 0) {
        const noise = drawNoise(modelOutput, options.generator, options.varianceNoise);
        let variance = Math.max(F.mul(F.div(betaProdPrev, betaProd), currentBeta), 1e-20);
        variance = F.f(variance);
        const std =
          c.variance_type === 'fixed_small_log'
            ? F.exp(F.mul(0.5, F.log(variance)))
            : F.sqrt(c.variance_type === 'fixed_large' ? currentBeta : variance);
        prev = k.add(prev, k.mul(noise, std));
      }
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
