import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import type { BaseSchedulerConfig } from './config.js';
import { unsupported } from './config.js';
import { SchedulerError } from './errors.js';
import * as F from './f32.js';
import { SchedulerBase } from './scheduler.js';
import type { Timesteps } from './scheduler.js';
import { interpIndex, karrasSigmas, sigmaToT, sigmasOf } from './schedule.js';

/**
 * Half-precision latents: diffusers' σ schedulers step in float32 and return the model output's
 * dtype (σ up to ~15 times an f16 derivative would lose the low bits); these two casts do that.
 */
export const asFloat32 = (x: Tensor): Tensor => (x.dtype === 'float32' ? x : k.cast(x, 'float32'));
export const asDtype = (x: Tensor, dtype: Tensor['dtype']): Tensor => (x.dtype === dtype ? x : k.cast(x, dtype));

/** Config fields the σ schedulers share. @example EulerDiscreteScheduler.fromConfig({ ...config, use_karras_sigmas: true }); */
export interface SigmaSchedulerConfig extends BaseSchedulerConfig {
  use_karras_sigmas: boolean;
  sigma_min?: number;
  sigma_max?: number;
  final_sigmas_type: 'zero' | 'sigma_min';
}

/**
 * What the σ-parameterised (k-diffusion style) schedulers share: the σ table, the position in the
 * schedule (`stepIndex`, or `beginIndex` for img2img), and σ-based noising.
 *
 * @example
 * ```ts
 * const s = EulerDiscreteScheduler.fromConfig(config); // a SigmaScheduler
 * s.setTimesteps(20);
 * const x = k.randn([1, 4, 64, 64]).mul(s.initNoiseSigma);
 * ```
 */
export abstract class SigmaScheduler<C extends SigmaSchedulerConfig> extends SchedulerBase<C> {
  /** σ for each timestep of the schedule, plus the final σ (0, or σ_min), float32. */
  sigmas: Float32Array;
  /** σ_t = √((1 − ᾱ_t)/ᾱ_t) at every training timestep. */
  protected readonly trainSigmas: Float32Array;
  protected readonly logSigmas: Float32Array;
  protected stepIndex: number | null = null;

  protected constructor(config: C, file: string) {
    super(config, file);
    for (const field of ['use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas'] as const) {
      if (config[field] === true) unsupported(file, field, true, [false]);
    }
    // Zero terminal SNR makes σ_T infinite; diffusers caps ᾱ_T at 2^-24 (σ_T ≈ 4096).
    if (config.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = sigmasOf(this.alphasCumprod);
    this.logSigmas = this.trainSigmas.map((s) => F.log(s));
    this.sigmas = Float32Array.from([...this.trainSigmas].reverse().concat(0));
  }

  /** σ_max for linspace and trailing spacing, √(σ_max² + 1) for leading (diffusers' choice). */
  override get initNoiseSigma(): number {
    const max = this.sigmas.reduce((a, b) => Math.max(a, b), 0);
    return this.config.timestep_spacing === 'leading' ? F.sqrt(F.add(F.sq(max), 1)) : max;
  }

  /** x / √(σ² + 1): the UNet expects unit-variance input. */
  override scaleModelInput(sample: Tensor, timestep: number): Tensor {
    const sigma = this.sigmas[this.initStepIndex(timestep)];
    return k.div(sample, F.sqrt(F.add(F.sq(sigma), 1)));
  }

  /** img2img noising: x₀ + σ_t·ε at timesteps of this schedule (or at `setBeginIndex`'s position). */
  override addNoise(original: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return k.tidy(() => k.add(original, k.mul(noise, this.sigmasFor(timesteps, original))));
  }

  /** The current position in the schedule (null before the first step). */
  get currentStepIndex(): number | null {
    return this.stepIndex;
  }

  /** Index of `t` in the schedule; the second match if it repeats, so img2img starting mid-schedule skips none. */
  indexForTimestep(t: number): number {
    const hits = this.timesteps.flatMap((x, i) => (x === t ? [i] : []));
    if (hits.length === 0) return this.missingTimestep(t);
    return hits.length > 1 ? hits[1] : hits[0];
  }

  protected missingTimestep(t: number): number {
    throw new SchedulerError(`${this.className}: timestep ${t} is not in the schedule [${this.timesteps.join(', ')}]`);
  }

  protected initStepIndex(t: number): number {
    this.stepIndex ??= this.beginIndex ?? this.indexForTimestep(t);
    return this.stepIndex;
  }

  /** σ of the schedule after `setTimesteps`: interpolated at the timesteps, or Karras' spacing. */
  protected scheduleSigmas(
    timesteps: number[],
    karras: boolean,
    karrasRange: 'schedule' | 'training' = 'schedule',
  ): { sigmas: number[]; timesteps: number[] } {
    let sigmas = timesteps.map((t) => interpIndex(t, this.trainSigmas));
    if (karras) {
      // Euler spans the schedule's σ range; DPM-Solver the whole training range (as diffusers).
      const [hi, lo] =
        karrasRange === 'schedule'
          ? [sigmas[0], sigmas[sigmas.length - 1]]
          : [this.trainSigmas[this.trainSigmas.length - 1], this.trainSigmas[0]];
      const max = this.config.sigma_max ?? hi;
      const min = this.config.sigma_min ?? lo;
      sigmas = karrasSigmas(max, min, timesteps.length);
      timesteps = sigmas.map((s) => sigmaToT(s, this.logSigmas));
    }
    return { sigmas, timesteps };
  }

  /** The σ after the last step. */
  protected finalSigma(): number {
    if (this.config.final_sigmas_type === 'zero') return 0;
    const a = this.alphasCumprod[0];
    return F.sqrt(F.div(F.sub(1, a), a));
  }

  protected resetIndex(): void {
    this.stepIndex = null;
    this.beginIndex = null;
  }

  protected stepSigma(t: number): { index: number; sigma: number; next: number } {
    this.requireTimesteps();
    const index = this.initStepIndex(t);
    if (index >= this.sigmas.length - 1)
      throw new SchedulerError(`${this.className}.step: the schedule is finished (call setTimesteps again)`);
    return { index, sigma: this.sigmas[index], next: this.sigmas[index + 1] };
  }

  /** The σ of each batch element's timestep, for `addNoise` (img2img: timesteps of this schedule). */
  protected sigmasFor(timesteps: Timesteps, like: Tensor): Tensor {
    if (typeof timesteps === 'object' && !Array.isArray(timesteps)) {
      throw new SchedulerError(`${this.className}.addNoise: pass the schedule's timesteps as numbers`);
    }
    const ts = typeof timesteps === 'number' ? [timesteps] : (timesteps as readonly number[]);
    const idx = ts.map((t) => (this.beginIndex === null ? this.indexForTimestep(t) : (this.stepIndex ?? this.beginIndex)));
    const trailing = Array(Math.max(like.ndim - 1, 0)).fill(1);
    return k.tensor(
      Float32Array.from(idx, (i) => this.sigmas[i]),
      { shape: [ts.length, ...trailing], dtype: like.dtype, device: like.device },
    );
  }
}
