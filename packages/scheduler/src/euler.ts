import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import * as F from './f32.js';
import { drawNoise } from './noise.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { checkNoiseShape } from './scheduler.js';
import { SigmaScheduler, asDtype, asFloat32 } from './sigma-scheduler.js';
import type { SigmaSchedulerConfig } from './sigma-scheduler.js';

/** `EulerDiscreteScheduler`'s config fields. @example EulerDiscreteScheduler.fromConfig({ ...config, timestep_spacing: 'trailing' }); */
export interface EulerConfig extends SigmaSchedulerConfig {
  interpolation_type: 'linear';
  timestep_type: 'discrete';
}

/** diffusers' defaults of `EulerDiscreteScheduler`'s config fields. @example const config = { ...EULER_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const EULER_DEFAULTS = {
  ...BASE_DEFAULTS,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
  interpolation_type: 'linear',
  timestep_type: 'discrete',
} satisfies Partial<EulerConfig>;

/** σ-space x₀ prediction shared by the Euler schedulers (k-diffusion's denoiser). */
export function sigmaPredictOriginal(type: string, sample: Tensor, modelOutput: Tensor, sigma: number, sigmaHat: number): Tensor {
  if (type === 'epsilon') return k.sub(sample, k.mul(modelOutput, sigmaHat));
  if (type === 'sample') return modelOutput;
  const s2p1 = F.add(F.sq(sigma), 1);
  return k.add(k.mul(modelOutput, F.div(-sigma, F.sqrt(s2p1))), k.div(sample, s2p1));
}

/**
 * Euler's method on the probability-flow ODE in σ (Karras et al. 2022, Algorithm 2), diffusers'
 * `EulerDiscreteScheduler`, with optional Karras sigmas (`use_karras_sigmas`). Timesteps are
 * fractional; the model input must go through `scaleModelInput`.
 *
 * @example
 * ```ts
 * const s = EulerDiscreteScheduler.fromConfig({ ...sd15Config, use_karras_sigmas: true });
 * s.setTimesteps(25);
 * let x = k.mul(k.randn(shape, { seed }), s.initNoiseSigma);
 * for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x).prevSample;
 * ```
 */
export class EulerDiscreteScheduler extends SigmaScheduler<EulerConfig> {
  readonly className: string = 'EulerDiscreteScheduler';

  constructor(config: EulerConfig, file = 'scheduler_config') {
    super(config, file);
    if (config.interpolation_type !== 'linear') unsupported(file, 'interpolation_type', config.interpolation_type, ['linear']);
    if (config.timestep_type !== 'discrete') unsupported(file, 'timestep_type', config.timestep_type, ['discrete']);
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with Euler's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): EulerDiscreteScheduler {
    return new EulerDiscreteScheduler(resolveSchedulerConfig(config, EULER_DEFAULTS, file) as EulerConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    const spaced = this.spaceTimesteps(numInferenceSteps, false);
    const { sigmas, timesteps } = this.scheduleSigmas(spaced, this.config.use_karras_sigmas);
    this.sigmas = Float32Array.from([...sigmas, this.finalSigma()]);
    this.timesteps = timesteps.map(F.f);
    this.resetIndex();
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const { index, sigma, next } = this.stepSigma(timestep);
    const { sChurn = 0, sTmin = 0, sTmax = Infinity, sNoise = 1 } = options;
    const gamma = sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / (this.sigmas.length - 1), 2 ** 0.5 - 1) : 0;
    const sigmaHat = F.mul(sigma, gamma + 1);
    checkNoiseShape(options.varianceNoise, sample, 'EulerDiscreteScheduler.step');
    const out = k.tidy(() => {
      let x = asFloat32(sample);
      if (gamma > 0) {
        const eps = k.mul(drawNoise(modelOutput, options.generator, options.varianceNoise), sNoise);
        x = k.add(x, k.mul(eps, F.sqrt(F.sub(F.sq(sigmaHat), F.sq(sigma)))));
      }
      const x0 = sigmaPredictOriginal(this.config.prediction_type, x, modelOutput, sigma, sigmaHat);
      const derivative = k.div(k.sub(x, x0), sigmaHat);
      const prev = k.add(x, k.mul(derivative, F.sub(next, sigmaHat)));
      return { prevSample: asDtype(prev, modelOutput.dtype), predOriginalSample: x0 };
    });
    this.stepIndex = index + 1;
    return out;
  }
}
