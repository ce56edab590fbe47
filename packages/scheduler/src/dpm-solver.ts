import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import { SchedulerConfigError } from './errors.js';
import * as F from './f32.js';
import { drawNoise } from './noise.js';
import { checkNoiseShape } from './scheduler.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';
import { MultistepScheduler, alphaSigma, lambdaAt } from './multistep.js';
import { asDtype, asFloat32 } from './sigma-scheduler.js';
import type { MultistepConfig } from './multistep.js';

/** `DPMSolverMultistepScheduler`'s config fields. @example DPMSolverMultistepScheduler.fromConfig({ ...config, algorithm_type: 'dpmsolver++', use_karras_sigmas: true }); */
export interface DPMSolverConfig extends MultistepConfig {
  algorithm_type: 'dpmsolver++' | 'dpmsolver' | 'sde-dpmsolver++' | 'sde-dpmsolver';
  solver_type: 'midpoint' | 'heun';
  euler_at_final: boolean;
  lambda_min_clipped: number;
  thresholding: boolean;
}

/** diffusers' defaults of `DPMSolverMultistepScheduler`'s config fields. @example const config = { ...DPM_SOLVER_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const DPM_SOLVER_DEFAULTS = {
  ...BASE_DEFAULTS,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
  solver_order: 2,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  lambda_min_clipped: -Infinity,
  thresholding: false,
} satisfies Partial<DPMSolverConfig>;

/**
 * DPM-Solver (Lu et al. 2022) and DPM-Solver++ (multistep, the "DPM++ 2M" of SD front ends),
 * diffusers' `DPMSolverMultistepScheduler`: first or second order, midpoint or Heun, data (`++`)
 * or noise prediction, the SDE variants (DPM++ 2M SDE: fresh noise from the generator each step),
 * with Karras sigmas. Third order is refused by name.
 *
 * @example
 * ```ts
 * const s = DPMSolverMultistepScheduler.fromConfig({ ...sd15Config, use_karras_sigmas: true });
 * s.setTimesteps(20);
 * for (const t of s.timesteps) x = s.step(unet(x, t), t, x).prevSample;
 * ```
 */
export class DPMSolverMultistepScheduler extends MultistepScheduler<DPMSolverConfig> {
  readonly className: string = 'DPMSolverMultistepScheduler';
  protected readonly predictsData: boolean;

  constructor(config: DPMSolverConfig, file = 'scheduler_config') {
    // diffusers maps these retired names onto the methods they became.
    const algorithm = (config.algorithm_type as string) === 'deis' ? 'dpmsolver++' : config.algorithm_type;
    const solver = ['logrho', 'bh1', 'bh2'].includes(config.solver_type) ? 'midpoint' : config.solver_type;
    config = { ...config, algorithm_type: algorithm, solver_type: solver };
    super(config, file);
    const algorithms = ['dpmsolver++', 'dpmsolver', 'sde-dpmsolver++', 'sde-dpmsolver', 'deis'];
    if (!algorithms.includes(algorithm)) unsupported(file, 'algorithm_type', algorithm, algorithms);
    if (config.solver_order > 2) unsupported(file, 'solver_order', config.solver_order, [1, 2]);
    if (config.thresholding) unsupported(file, 'thresholding', true, [false]);
    if (config.variance_type === 'learned' || config.variance_type === 'learned_range')
      unsupported(file, 'variance_type', config.variance_type, [null]);
    if ((algorithm === 'dpmsolver' || algorithm === 'sde-dpmsolver') && config.final_sigmas_type === 'zero') {
      throw new SchedulerConfigError(file, 'final_sigmas_type', [
        `final_sigmas_type: 'zero' needs a data-prediction algorithm_type ('dpmsolver++' or 'sde-dpmsolver++', got '${algorithm}'); use 'sigma_min'`,
      ]);
    }
    this.predictsData = algorithm === 'dpmsolver++' || algorithm === 'sde-dpmsolver++';
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with DPM-Solver's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): DPMSolverMultistepScheduler {
    return new DPMSolverMultistepScheduler(resolveSchedulerConfig(config, DPM_SOLVER_DEFAULTS, file) as DPMSolverConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const T = c.num_train_timesteps;
    // Timesteps whose λ is below lambda_min_clipped are cut off (for cosine schedules).
    const lambdas = this.alphasCumprod.map((a) => F.sub(F.log(F.sqrt(a)), F.log(F.sqrt(F.sub(1, a))))).reverse();
    let clipped = lambdas.findIndex((l) => l >= c.lambda_min_clipped);
    if (clipped < 0) clipped = lambdas.length;
    this.setMultistepTimesteps(numInferenceSteps, T - clipped, () => this.finalSigma());
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): SchedulerOutput {
    const { index } = this.stepSigma(timestep);
    checkNoiseShape(options.varianceNoise, sample, 'DPMSolverMultistepScheduler.step');
    const c = this.config;
    const n = this.timesteps.length;
    const lowerOrderFinal = index === n - 1 && (c.euler_at_final || (c.lower_order_final && n < 15) || c.final_sigmas_type === 'zero');
    const converted = k.tidy(() => this.convert(modelOutput, sample, this.sigmas[index]));
    this.remember(converted);
    const prev = k.tidy(() => {
      const x = asFloat32(sample);
      // The SDE variants draw float32 noise each step (diffusers: randn_tensor(…, dtype=float32)).
      const noise = c.algorithm_type.startsWith('sde') ? asFloat32(drawNoise(x, options.generator, options.varianceNoise)) : null;
      const first = c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal;
      return asDtype(first ? this.firstOrder(converted, x, index, noise) : this.secondOrder(x, index, noise), modelOutput.dtype);
    });
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = index + 1;
    const x0 = this.predictsData ? k.clone(converted) : undefined;
    return x0 ? { prevSample: prev, predOriginalSample: x0 } : { prevSample: prev };
  }

  /**
   * DPM-Solver-1 (= DDIM): the exact solution of the linear part plus one model evaluation; the
   * SDE variants add fresh noise of the variance the step removes (Lu et al. 2022b, DPM-Solver++ §5).
   */
  private firstOrder(m: Tensor, sample: Tensor, i: number, noise: Tensor | null): Tensor {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]);
    const [alphaS, sigmaS] = alphaSigma(this.sigmas[i]);
    const h = F.sub(lambdaAt(this.sigmas[i + 1]), lambdaAt(this.sigmas[i]));
    switch (this.config.algorithm_type) {
      case 'dpmsolver++':
        return k.sub(k.mul(sample, F.div(sigmaT, sigmaS)), k.mul(m, F.mul(alphaT, F.sub(F.exp(-h), 1))));
      case 'dpmsolver':
        return k.sub(k.mul(sample, F.div(alphaT, alphaS)), k.mul(m, F.mul(sigmaT, F.sub(F.exp(h), 1))));
      case 'sde-dpmsolver++': {
        const e2 = F.exp(F.mul(-2, h));
        const x = k.add(k.mul(sample, F.mul(F.div(sigmaT, sigmaS), F.exp(-h))), k.mul(m, F.mul(alphaT, F.sub(1, e2))));
        return k.add(x, k.mul(noise!, F.mul(sigmaT, F.sqrt(F.sub(1, e2)))));
      }
      case 'sde-dpmsolver': {
        const x = k.sub(k.mul(sample, F.div(alphaT, alphaS)), k.mul(m, F.mul(2, F.mul(sigmaT, F.sub(F.exp(h), 1)))));
        return k.add(x, k.mul(noise!, F.mul(sigmaT, F.sqrt(F.sub(F.exp(F.mul(2, h)), 1)))));
      }
    }
  }

  /** Multistep DPM-Solver-2: the last two outputs give a first-order difference D1. */
  private secondOrder(sample: Tensor, i: number, noise: Tensor | null): Tensor {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]);
    const lambdaT = lambdaAt(this.sigmas[i + 1]);
    const lambdaS0 = lambdaAt(this.sigmas[i]);
    const lambdaS1 = lambdaAt(this.sigmas[i - 1]);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const m1 = this.modelOutputs[this.modelOutputs.length - 2]!;
    const h = F.sub(lambdaT, lambdaS0);
    const r0 = F.div(F.sub(lambdaS0, lambdaS1), h);
    const d1 = k.mul(k.sub(m0, m1), F.div(1, r0));
    const heun = this.config.solver_type === 'heun';
    switch (this.config.algorithm_type) {
      case 'dpmsolver++': {
        const c0 = F.mul(alphaT, F.sub(F.exp(-h), 1));
        const x = k.sub(k.mul(sample, F.div(sigmaT, sigmaS0)), k.mul(m0, c0));
        if (heun) return k.add(x, k.mul(d1, F.mul(alphaT, F.add(F.div(F.sub(F.exp(-h), 1), h), 1))));
        return k.sub(x, k.mul(d1, F.mul(0.5, c0)));
      }
      case 'dpmsolver': {
        const c0 = F.mul(sigmaT, F.sub(F.exp(h), 1));
        const x = k.sub(k.mul(sample, F.div(alphaT, alphaS0)), k.mul(m0, c0));
        if (heun) return k.sub(x, k.mul(d1, F.mul(sigmaT, F.sub(F.div(F.sub(F.exp(h), 1), h), 1))));
        return k.sub(x, k.mul(d1, F.mul(0.5, c0)));
      }
      case 'sde-dpmsolver++': {
        const e2 = F.exp(F.mul(-2, h));
        const c0 = F.mul(alphaT, F.sub(1, e2));
        let x = k.add(k.mul(sample, F.mul(F.div(sigmaT, sigmaS0), F.exp(-h))), k.mul(m0, c0));
        x = heun ? k.add(x, k.mul(d1, F.mul(alphaT, F.add(F.div(F.sub(1, e2), F.mul(-2, h)), 1)))) : k.add(x, k.mul(d1, F.mul(0.5, c0)));
        return k.add(x, k.mul(noise!, F.mul(sigmaT, F.sqrt(F.sub(1, e2)))));
      }
      case 'sde-dpmsolver': {
        const c = F.mul(sigmaT, F.sub(F.exp(h), 1));
        let x = k.sub(k.mul(sample, F.div(alphaT, alphaS0)), k.mul(m0, F.mul(2, c)));
        x = heun ? k.sub(x, k.mul(d1, F.mul(2, F.mul(sigmaT, F.sub(F.div(F.sub(F.exp(h), 1), h), 1))))) : k.sub(x, k.mul(d1, c));
        return k.add(x, k.mul(noise!, F.mul(sigmaT, F.sqrt(F.sub(F.exp(F.mul(2, h)), 1)))));
      }
    }
  }
}
