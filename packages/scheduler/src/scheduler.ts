import * as k from '@kiln/tensor-core';
import type { Generator, Tensor } from '@kiln/tensor-core';
import type { BaseSchedulerConfig } from './config.js';
import { SchedulerError } from './errors.js';
import { betasForConfig, cumprodOfAlphas, spacedTimesteps } from './schedule.js';
import * as F from './f32.js';

/** What `step` returns: the sample at the previous timestep and, where the method has one, its prediction of x₀. @example const { prevSample, predOriginalSample } = scheduler.step(eps, t, latents); */
export interface SchedulerOutput {
  prevSample: Tensor;
  /** The denoised sample predicted at this step (absent for PNDM and DPM-Solver's noise form). */
  predOriginalSample?: Tensor;
}

/** Options of `step`. @example scheduler.step(eps, t, latents, { generator: g }); ddim.step(eps, t, latents, { eta: 0.5, generator: g }); */
export interface StepOptions {
  /** The generator ancestral and stochastic steps draw noise from (the global stream when absent). */
  generator?: Generator;
  /** Noise to add instead of drawing it (diffusers' `variance_noise`): reproduces a run exactly. */
  varianceNoise?: Tensor;
  /** DDIM's η: 0 is deterministic DDIM, 1 is DDPM-like. */
  eta?: number;
  /** DDIM: recompute ε from the clipped x₀ prediction (`use_clipped_model_output`). */
  useClippedModelOutput?: boolean;
  /** Euler's "churn" (Karras et al. 2022, Algorithm 2): extra noise per step; 0 (the default) adds none. */
  sChurn?: number;
  /** Euler: churn only where σ ≥ sTmin. */
  sTmin?: number;
  /** Euler: churn only where σ ≤ sTmax. */
  sTmax?: number;
  /** Euler: scale of the churn noise. */
  sNoise?: number;
  /** LMS: how many past derivatives a step combines (default 4). */
  order?: number;
}

/** Timesteps for `addNoise`/`getVelocity`/`snr`: one number, one per batch element, or an int32 tensor. @example scheduler.addNoise(x0, noise, 500); scheduler.addNoise(x0, noise, [10, 900]); scheduler.addNoise(x0, noise, k.randint(0, 1000, [2])); */
export type Timesteps = number | readonly number[] | Tensor;

/**
 * The interface every scheduler implements, named like diffusers' `SchedulerMixin`
 * (candle's `Scheduler` trait is the same five ideas): set the schedule, scale the model input,
 * step, and the training-side `addNoise`/`getVelocity`.
 *
 * @example
 * ```ts
 * function sample(s: NoiseScheduler, model: (x: k.Tensor, t: number) => k.Tensor, x: k.Tensor): k.Tensor {
 *   s.setTimesteps(20);
 *   for (const t of s.timesteps) x = s.step(model(s.scaleModelInput(x, t), t), t, x).prevSample;
 *   return x;
 * }
 * ```
 */
export interface NoiseScheduler {
  /** The resolved `scheduler_config.json` fields (snake_case, unknown fields kept). */
  readonly config: BaseSchedulerConfig;
  /** Model evaluations per step (1 for all but PNDM's Runge–Kutta warm-up and multistep solvers' history). */
  readonly order: number;
  /** Timesteps of the current schedule, descending, in the order `step` must see them. */
  readonly timesteps: readonly number[];
  /** The standard deviation to multiply the initial noise by. */
  readonly initNoiseSigma: number;
  setTimesteps(numInferenceSteps: number): void;
  scaleModelInput(sample: Tensor, timestep: number): Tensor;
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: StepOptions): SchedulerOutput;
  addNoise(original: Tensor, noise: Tensor, timesteps: Timesteps): Tensor;
  getVelocity(sample: Tensor, noise: Tensor, timesteps: Timesteps): Tensor;
}

/**
 * What every scheduler shares: the config, betas and ᾱ (bit-identical to diffusers'), the
 * DDPM-form `addNoise`, `getVelocity` and `snr` that training uses.
 *
 * @example
 * ```ts
 * function describe(s: SchedulerBase) {
 *   return `${s.className}: ${s.timesteps.length} steps, ᾱ_T = ${s.alphasCumprod.at(-1)}`;
 * }
 * ```
 */
export abstract class SchedulerBase<C extends BaseSchedulerConfig = BaseSchedulerConfig> implements NoiseScheduler {
  readonly config: C;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  order = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | null = null;
  /** The name diffusers gives this class (`_class_name` in `scheduler_config.json`). */
  abstract readonly className: string;

  protected constructor(config: C, file: string) {
    this.config = config;
    this.betas = betasForConfig(config, file);
    this.alphasCumprod = cumprodOfAlphas(this.betas);
    // Before setTimesteps: every training timestep, descending (as diffusers).
    const T = config.num_train_timesteps;
    this.timesteps = Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  protected beginIndex: number | null = null;

  /**
   * Where img2img starts in the schedule (diffusers' `set_begin_index`): σ schedulers then noise
   * and step from this index instead of searching for the timestep. ᾱ schedulers index by the
   * timestep itself, so for them it only records the position.
   *
   * @example
   * ```ts
   * const start = Math.round(scheduler.timesteps.length * (1 - strength));
   * scheduler.setBeginIndex(start);
   * const noisy = scheduler.addNoise(imageLatents, noise, [scheduler.timesteps[start]]);
   * ```
   */
  setBeginIndex(beginIndex = 0): void {
    if (!Number.isInteger(beginIndex) || beginIndex < 0 || beginIndex >= this.timesteps.length) {
      throw new SchedulerError(`${this.className}.setBeginIndex: ${beginIndex} is not an index of the ${this.timesteps.length} timesteps`);
    }
    this.beginIndex = beginIndex;
  }

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: StepOptions): SchedulerOutput;

  /** Most schedulers use the model input unchanged; sigma schedulers divide by √(σ² + 1). */
  scaleModelInput(sample: Tensor, _timestep: number): Tensor {
    return sample;
  }

  /** The config as `scheduler_config.json` holds it, with this class's name. */
  toJSON(): Record<string, unknown> {
    return { ...this.config, _class_name: this.className };
  }

  /** Checks `n` against the training schedule (diffusers raises the same errors). */
  protected checkSteps(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new SchedulerError(`setTimesteps: num_inference_steps must be a positive integer, got ${n}`);
    if (n > this.config.num_train_timesteps) {
      throw new SchedulerError(
        `setTimesteps: num_inference_steps (${n}) > num_train_timesteps (${this.config.num_train_timesteps}): the model was trained on ${this.config.num_train_timesteps} timesteps`,
      );
    }
  }

  /** Checks `n`, records it, and returns the config's spacing of n timesteps (integers unless `integer` is false). */
  protected spaceTimesteps(n: number, integer: boolean): number[] {
    this.checkSteps(n);
    this.numInferenceSteps = n;
    const c = this.config;
    return spacedTimesteps(c.timestep_spacing, c.num_train_timesteps, n, c.steps_offset, integer);
  }

  protected requireTimesteps(): number {
    if (this.numInferenceSteps === null) throw new SchedulerError(`${this.className}.step: call setTimesteps(n) first`);
    return this.numInferenceSteps;
  }

  /** ᾱ at an integer training timestep (throws on one outside [0, T)). */
  protected alphaAt(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new SchedulerError(`${this.className}: timestep ${t} is not an integer in [0, ${this.alphasCumprod.length})`);
    }
    return this.alphasCumprod[t];
  }

  /** Per-batch coefficients `table[t]` shaped [B, 1, …] (rank `ndim`) to broadcast against a sample. */
  protected coefficients(
    table: Float32Array,
    timesteps: Timesteps,
    like: { ndim: number; dtype: Tensor['dtype']; device: string },
  ): Tensor {
    const trailing = Array(Math.max(like.ndim - 1, 0)).fill(1);
    const opts = { dtype: like.dtype, device: like.device };
    if (typeof timesteps === 'number' || Array.isArray(timesteps)) {
      const ts = typeof timesteps === 'number' ? [timesteps] : (timesteps as readonly number[]);
      for (const t of ts) this.alphaAt(t);
      return k.tensor(
        Float32Array.from(ts, (t) => table[t]),
        { ...opts, shape: [ts.length, ...trailing] },
      );
    }
    const ids = timesteps as Tensor;
    if (ids.dtype !== 'int32') throw new SchedulerError(`${this.className}: timesteps tensor must be int32, got ${ids.dtype}`);
    // Gathered on the tensor's backend: training loops never read timesteps back.
    return k.tidy(() =>
      k.indexSelect(k.tensor(table, { ...opts, shape: [table.length] }), 0, ids.reshape([-1])).reshape([-1, ...trailing]),
    );
  }

  /**
   * Forward diffusion q(x_t | x₀): √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε, for training. Sigma schedulers
   * override it for img2img (x₀ + σ·ε at a timestep of their schedule).
   *
   * @example
   * ```ts
   * const t = k.randint(0, 1000, [batch], { seed: step });
   * const noisy = scheduler.addNoise(latents, noise, t);
   * ```
   */
  addNoise(original: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return k.tidy(() => {
      const a = this.coefficients(this.sqrtAlphas(), timesteps, original);
      const s = this.coefficients(this.sqrtOneMinusAlphas(), timesteps, original);
      return k.add(k.mul(a, original), k.mul(s, noise));
    });
  }

  /**
   * The v-prediction target (Salimans & Ho 2022): √ᾱ_t · ε − √(1 − ᾱ_t) · x₀.
   *
   * @example
   * ```ts
   * const target = scheduler.getVelocity(latents, noise, t); // when prediction_type is v_prediction
   * ```
   */
  getVelocity(sample: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return k.tidy(() => {
      const a = this.coefficients(this.sqrtAlphas(), timesteps, sample);
      const s = this.coefficients(this.sqrtOneMinusAlphas(), timesteps, sample);
      return k.sub(k.mul(a, noise), k.mul(s, sample));
    });
  }

  /**
   * Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at training timesteps, as diffusers' `compute_snr`
   * (`(√ᾱ / √(1 − ᾱ))²`, float32): the input of min-SNR loss weighting ({@link minSnrLossWeights}).
   *
   * @example
   * ```ts
   * const snr = scheduler.snr(t); // [batch]
   * ```
   */
  snr(timesteps: Timesteps): Tensor {
    const a = this.sqrtAlphas();
    const s = this.sqrtOneMinusAlphas();
    const table = a.map((x, i) => F.sq(F.div(x, s[i])));
    const device = typeof timesteps === 'object' && !Array.isArray(timesteps) ? (timesteps as Tensor).device : k.getBackend().name;
    return this.coefficients(table, timesteps, { ndim: 1, dtype: 'float32', device });
  }

  private sqrtAlphasCache?: Float32Array;
  private sqrtOneMinusCache?: Float32Array;
  protected sqrtAlphas(): Float32Array {
    return (this.sqrtAlphasCache ??= this.alphasCumprod.map((a) => F.sqrt(a)));
  }
  protected sqrtOneMinusAlphas(): Float32Array {
    return (this.sqrtOneMinusCache ??= this.alphasCumprod.map((a) => F.sqrt(F.sub(1, a))));
  }
}

/** Checks that noise supplied to `step` has the sample's shape. */
export function checkNoiseShape(noise: Tensor | undefined, like: Tensor, who: string): void {
  if (noise && noise.shape.join(',') !== like.shape.join(',')) {
    throw new SchedulerError(`${who}: varianceNoise has shape [${noise.shape}], the sample has [${like.shape}]`);
  }
}
