import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import * as F from './f32.js';
import type { Timesteps } from './scheduler.js';
import { multistepTimesteps, npLinspace } from './schedule.js';
import { SigmaScheduler } from './sigma-scheduler.js';
import type { SigmaSchedulerConfig } from './sigma-scheduler.js';

/** Config fields the multistep solvers share. @example DPMSolverMultistepScheduler.fromConfig({ ...config, solver_order: 2, lower_order_final: true }); */
export interface MultistepConfig extends SigmaSchedulerConfig {
  solver_order: number;
  lower_order_final: boolean;
}

/** α_t and σ_t of the VP process at k-diffusion noise level σ: α = 1/√(σ² + 1), σ_t = σ·α. */
export function alphaSigma(sigma: number): [number, number] {
  const alpha = F.div(1, F.sqrt(F.add(F.sq(sigma), 1)));
  return [alpha, F.mul(sigma, alpha)];
}

/** λ = log α − log σ (half the log-SNR); +∞ at σ = 0. */
export const lambdaAt = (sigma: number): number => {
  const [alpha, s] = alphaSigma(sigma);
  return F.sub(F.log(alpha), F.log(s));
};

/**
 * What the multistep exponential integrators (DPM-Solver, UniPC) share: VP-form model input and
 * noising, a history of converted model outputs, and timesteps that stop short of t = 0.
 *
 * @example
 * ```ts
 * const s = DPMSolverMultistepScheduler.fromConfig({ ...config, solver_order: 2 }); // a MultistepScheduler
 * s.setTimesteps(20);
 * ```
 */
export abstract class MultistepScheduler<C extends MultistepConfig> extends SigmaScheduler<C> {
  protected modelOutputs: (Tensor | null)[];
  protected lowerOrderNums = 0;
  /** True when the solver integrates x₀ predictions (DPM-Solver++, UniPC's default), false for ε. */
  protected abstract readonly predictsData: boolean;

  protected constructor(config: C, file: string) {
    super(config, file);
    this.modelOutputs = Array(config.solver_order).fill(null);
    // diffusers' `order` counts model evaluations per step (1 here, 2 for Heun), not the solver's
    // order; img2img slices its timesteps by it.
    this.order = 1;
    const T = config.num_train_timesteps;
    this.timesteps = npLinspace(0, T - 1, T)
      .map(F.f)
      .reverse();
  }

  override get initNoiseSigma(): number {
    return 1;
  }

  override scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  /** Sets `timesteps` (up to `last`) and `sigmas`; Karras sigmas span the training range. */
  protected setMultistepTimesteps(n: number, last: number, finalSigma: (karrasSigmas: number[]) => number): void {
    this.checkSteps(n);
    const c = this.config;
    const spaced = multistepTimesteps(c.timestep_spacing, c.num_train_timesteps, last, n, c.steps_offset);
    const { sigmas, timesteps } = this.scheduleSigmas(spaced, c.use_karras_sigmas, 'training');
    this.sigmas = Float32Array.from([...sigmas, finalSigma(sigmas)]);
    this.timesteps = c.use_karras_sigmas ? timesteps.map(F.roundHalfEven) : timesteps;
    this.numInferenceSteps = this.timesteps.length;
    for (const t of this.modelOutputs) t?.dispose();
    this.modelOutputs = Array(c.solver_order).fill(null);
    this.lowerOrderNums = 0;
    this.resetIndex();
  }

  /** Past the schedule's end diffusers steps from the last index; so does Kiln. */
  protected override missingTimestep(): number {
    return this.timesteps.length - 1;
  }

  /** The model output in the form the solver integrates: x₀ (data prediction) or ε. */
  protected convert(modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
    const [alpha, sigmaT] = alphaSigma(sigma);
    const type = this.config.prediction_type;
    if (this.predictsData) {
      if (type === 'epsilon') return k.div(k.sub(sample, k.mul(modelOutput, sigmaT)), alpha);
      if (type === 'sample') return k.clone(modelOutput);
      return k.sub(k.mul(sample, alpha), k.mul(modelOutput, sigmaT));
    }
    if (type === 'epsilon') return k.clone(modelOutput);
    if (type === 'sample') return k.div(k.sub(sample, k.mul(modelOutput, alpha)), sigmaT);
    return k.add(k.mul(modelOutput, alpha), k.mul(sample, sigmaT));
  }

  /** Appends a converted output to the history (kept across steps, oldest dropped). */
  protected remember(converted: Tensor): void {
    this.modelOutputs.shift()?.dispose();
    this.modelOutputs.push(k.keep(converted));
  }

  /** img2img noising in the VP form: α_t·x₀ + σ_t·ε at timesteps of this schedule. */
  override addNoise(original: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return k.tidy(() => {
      const sigma = this.sigmasFor(timesteps, original);
      const alpha = k.div(1, k.sqrt(k.add(k.square(sigma), 1)));
      return k.add(k.mul(alpha, original), k.mul(k.mul(sigma, alpha), noise));
    });
  }
}
