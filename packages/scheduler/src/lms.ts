import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import { SchedulerError } from './errors.js';
import { sigmaPredictOriginal } from './euler.js';
import * as F from './f32.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { SigmaScheduler } from './sigma-scheduler.js';
import type { SigmaSchedulerConfig } from './sigma-scheduler.js';

/** diffusers' defaults of `LMSDiscreteScheduler`'s config fields. @example const config = { ...LMS_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const LMS_DEFAULTS = {
  ...BASE_DEFAULTS,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
} satisfies Partial<SigmaSchedulerConfig>;

// 4-point Gauss–Legendre rule on [−1, 1]: exact for polynomials up to degree 7 (LMS needs ≤ 3).
const GL_X = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const GL_W = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

/**
 * Linear multistep sampling in σ (Karras et al. 2022; k-diffusion's `sample_lms`), diffusers'
 * `LMSDiscreteScheduler`: each step combines the last `order` (default 4) ODE derivatives with
 * weights that integrate their Lagrange interpolant over the step. diffusers integrates them
 * numerically (scipy's `quad`); the integrand is a polynomial, so Kiln integrates it exactly.
 *
 * @example
 * ```ts
 * const s = LMSDiscreteScheduler.fromConfig(sd15Config);
 * s.setTimesteps(50);
 * let x = k.mul(k.randn([1, 4, 64, 64], { seed: 0 }), s.initNoiseSigma);
 * for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x).prevSample;
 * ```
 */
export class LMSDiscreteScheduler extends SigmaScheduler<SigmaSchedulerConfig> {
  readonly className: string = 'LMSDiscreteScheduler';
  private derivatives: Tensor[] = [];

  constructor(config: SigmaSchedulerConfig, file = 'scheduler_config') {
    super({ ...config, final_sigmas_type: 'zero' }, file);
    // diffusers' LMS has no zero-SNR option; refuse rather than silently ignore it.
    if (config.rescale_betas_zero_snr) unsupported(file, 'rescale_betas_zero_snr', true, [false]);
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with LMS's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): LMSDiscreteScheduler {
    return new LMSDiscreteScheduler(resolveSchedulerConfig(config, LMS_DEFAULTS, file) as SigmaSchedulerConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    const spaced = this.spaceTimesteps(numInferenceSteps, false);
    const { sigmas, timesteps } = this.scheduleSigmas(spaced, this.config.use_karras_sigmas);
    this.sigmas = Float32Array.from([...sigmas, 0]);
    this.timesteps = timesteps.map(F.f);
    for (const d of this.derivatives) d.dispose();
    this.derivatives = [];
    this.resetIndex();
  }

  /** ∫ from σ_t to σ_{t+1} of the Lagrange basis polynomial of point `current` among the last `order` σ. */
  lmsCoefficient(order: number, t: number, current: number): number {
    const s = this.sigmas;
    const basis = (tau: number): number => {
      let prod = 1;
      for (let j = 0; j < order; j++) if (j !== current) prod *= (tau - s[t - j]) / (s[t - current] - s[t - j]);
      return prod;
    };
    const a = s[t];
    const b = s[t + 1];
    const half = (b - a) / 2;
    const mid = (a + b) / 2;
    return GL_X.reduce((acc, x, i) => acc + GL_W[i] * basis(mid + half * x), 0) * half;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const maxOrder = options.order ?? 4;
    if (!Number.isInteger(maxOrder) || maxOrder < 1)
      throw new SchedulerError(`LMSDiscreteScheduler.step: order must be a positive integer, got ${maxOrder}`);
    const { index, sigma } = this.stepSigma(timestep);
    const x0 = k.tidy(() => sigmaPredictOriginal(this.config.prediction_type, sample, modelOutput, sigma, sigma));
    this.derivatives.push(k.keep(k.tidy(() => k.div(k.sub(sample, x0), sigma))));
    while (this.derivatives.length > maxOrder) this.derivatives.shift()!.dispose();
    const order = Math.min(index + 1, maxOrder);
    const prev = k.tidy(() => {
      const newestFirst = [...this.derivatives].reverse();
      let acc: Tensor | null = null;
      for (let c = 0; c < order; c++) {
        const term = k.mul(newestFirst[c], F.f(this.lmsCoefficient(order, index, c)));
        acc = acc ? k.add(acc, term) : term;
      }
      return k.add(sample, acc!);
    });
    this.stepIndex = index + 1;
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
