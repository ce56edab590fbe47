import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import { clipOriginal } from './ddpm.js';
import { sigmaPredictOriginal } from './euler.js';
import * as F from './f32.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { SigmaScheduler } from './sigma-scheduler.js';
import type { SigmaSchedulerConfig } from './sigma-scheduler.js';

/** `HeunDiscreteScheduler`'s config fields. @example HeunDiscreteScheduler.fromConfig({ ...config, use_karras_sigmas: true }); */
export interface HeunConfig extends SigmaSchedulerConfig {
  clip_sample: boolean;
  clip_sample_range: number;
}

/** diffusers' defaults of `HeunDiscreteScheduler`'s config fields. @example const config = { ...HEUN_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const HEUN_DEFAULTS = {
  ...BASE_DEFAULTS,
  beta_start: 0.00085,
  beta_end: 0.012,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
  clip_sample: false,
  clip_sample_range: 1,
} satisfies Partial<HeunConfig>;

/**
 * Heun's method in σ (Karras et al. 2022, Algorithm 1), diffusers' `HeunDiscreteScheduler`: an
 * Euler step, then a correction with the slope at its end, so each step after the first evaluates
 * the model twice. The schedule lists each interior timestep twice; step through `timesteps`.
 *
 * @example
 * ```ts
 * const s = HeunDiscreteScheduler.fromConfig(sd15Config);
 * s.setTimesteps(15); // 29 model evaluations
 * for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x).prevSample;
 * ```
 */
export class HeunDiscreteScheduler extends SigmaScheduler<HeunConfig> {
  readonly className: string = 'HeunDiscreteScheduler';
  private first: { derivative: Tensor; dt: number; sample: Tensor } | null = null;

  constructor(config: HeunConfig, file = 'scheduler_config') {
    super({ ...config, final_sigmas_type: 'zero' }, file);
    // diffusers' Heun has no zero-SNR option; refuse rather than silently ignore it.
    if (config.rescale_betas_zero_snr) unsupported(file, 'rescale_betas_zero_snr', true, [false]);
    this.order = 2;
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with Heun's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): HeunDiscreteScheduler {
    return new HeunDiscreteScheduler(resolveSchedulerConfig(config, HEUN_DEFAULTS, file) as HeunConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    const spaced = this.spaceTimesteps(numInferenceSteps, false);
    const { sigmas, timesteps } = this.scheduleSigmas(spaced, this.config.use_karras_sigmas);
    // Interior points twice: the Euler (predictor) and Heun (corrector) evaluations.
    const all = [...sigmas, 0];
    this.sigmas = Float32Array.from([all[0], ...all.slice(1, -1).flatMap((s) => [s, s]), 0]);
    const ts = timesteps.map(F.f);
    this.timesteps = [ts[0], ...ts.slice(1).flatMap((t) => [t, t])];
    this.dropFirst();
    this.resetIndex();
  }

  private dropFirst(): void {
    this.first?.derivative.dispose();
    this.first?.sample.dispose();
    this.first = null;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, _options: StepOptions = {}): SchedulerOutput {
    const { index } = this.stepSigma(timestep);
    const predictor = this.first === null;
    const sigma = predictor ? this.sigmas[index] : this.sigmas[index - 1];
    const sigmaNext = predictor ? this.sigmas[index + 1] : this.sigmas[index];
    const sigmaInput = predictor ? sigma : sigmaNext;
    const x0 = k.tidy(() =>
      clipOriginal(sigmaPredictOriginal(this.config.prediction_type, sample, modelOutput, sigmaInput, sigmaInput), this.config),
    );
    let prev: Tensor;
    if (predictor) {
      const derivative = k.keep(k.tidy(() => k.div(k.sub(sample, x0), sigma)));
      const dt = F.sub(sigmaNext, sigma);
      this.first = { derivative, dt, sample: k.keep(k.clone(sample)) };
      prev = k.tidy(() => k.add(sample, k.mul(derivative, dt)));
    } else {
      const { derivative: d1, dt, sample: x } = this.first!;
      prev = k.tidy(() => {
        const d2 = k.div(k.sub(sample, x0), sigmaNext);
        return k.add(x, k.mul(k.div(k.add(d1, d2), 2), dt));
      });
      this.dropFirst();
    }
    this.stepIndex = index + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
