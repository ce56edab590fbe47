import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import { sigmaPredictOriginal } from './euler.js';
import * as F from './f32.js';
import { drawNoise } from './noise.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { checkNoiseShape } from './scheduler.js';
import { SigmaScheduler, asDtype, asFloat32 } from './sigma-scheduler.js';
import type { SigmaSchedulerConfig } from './sigma-scheduler.js';

/** diffusers' defaults of `EulerAncestralDiscreteScheduler`'s config fields. @example const config = { ...EULER_ANCESTRAL_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const EULER_ANCESTRAL_DEFAULTS = {
  ...BASE_DEFAULTS,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
} satisfies Partial<SigmaSchedulerConfig>;

/**
 * Euler ancestral sampling ("Euler a"), diffusers' `EulerAncestralDiscreteScheduler`: an Euler
 * step down to σ_down, then fresh noise of σ_up from the generator, so each seed gives one image.
 * diffusers 0.31 gives this scheduler no Karras option, so `use_karras_sigmas` is ignored here too.
 *
 * @example
 * ```ts
 * const s = EulerAncestralDiscreteScheduler.fromConfig(sd15Config);
 * s.setTimesteps(30);
 * const g = new k.Generator(1234);
 * for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x, { generator: g }).prevSample;
 * ```
 */
export class EulerAncestralDiscreteScheduler extends SigmaScheduler<SigmaSchedulerConfig> {
  readonly className: string = 'EulerAncestralDiscreteScheduler';

  constructor(config: SigmaSchedulerConfig, file = 'scheduler_config') {
    super({ ...config, use_karras_sigmas: false }, file);
    if (config.prediction_type === 'sample') unsupported(file, 'prediction_type', 'sample', ['epsilon', 'v_prediction']);
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with Euler a's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): EulerAncestralDiscreteScheduler {
    return new EulerAncestralDiscreteScheduler(
      resolveSchedulerConfig(config, EULER_ANCESTRAL_DEFAULTS, file) as SigmaSchedulerConfig,
      file,
    );
  }

  setTimesteps(numInferenceSteps: number): void {
    const spaced = this.spaceTimesteps(numInferenceSteps, false);
    const { sigmas } = this.scheduleSigmas(spaced, false);
    this.sigmas = Float32Array.from([...sigmas, 0]);
    this.timesteps = spaced.map(F.f);
    this.resetIndex();
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const { index, sigma, next } = this.stepSigma(timestep);
    checkNoiseShape(options.varianceNoise, sample, 'EulerAncestralDiscreteScheduler.step');
    // Split the move from σ to σ_next into a deterministic part (to σ_down) and fresh noise (σ_up).
    const sigmaUp = F.sqrt(F.div(F.mul(F.sq(next), F.sub(F.sq(sigma), F.sq(next))), F.sq(sigma)));
    const sigmaDown = F.sqrt(F.sub(F.sq(next), F.sq(sigmaUp)));
    const out = k.tidy(() => {
      const x = asFloat32(sample);
      const x0 = sigmaPredictOriginal(this.config.prediction_type, x, modelOutput, sigma, sigma);
      const derivative = k.div(k.sub(x, x0), sigma);
      const prev = k.add(x, k.mul(derivative, F.sub(sigmaDown, sigma)));
      const noise = drawNoise(modelOutput, options.generator, options.varianceNoise);
      return { prevSample: asDtype(k.add(prev, k.mul(noise, sigmaUp)), modelOutput.dtype), predOriginalSample: x0 };
    });
    this.stepIndex = index + 1;
    return out;
  }
}
