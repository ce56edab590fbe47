import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { BaseSchedulerConfig, SchedulerConfigLike } from './config.js';
import * as F from './f32.js';
import { SchedulerBase } from './scheduler.js';
import type { SchedulerOutput } from './scheduler.js';
import { npArange, npLinspace } from './schedule.js';

/** `PNDMScheduler`'s config fields. @example PNDMScheduler.fromConfig({ ...config, skip_prk_steps: true }); */
export interface PNDMConfig extends BaseSchedulerConfig {
  skip_prk_steps: boolean;
  set_alpha_to_one: boolean;
}

/** diffusers' defaults of `PNDMScheduler`'s config fields. @example const config = { ...PNDM_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const PNDM_DEFAULTS = { ...BASE_DEFAULTS, skip_prk_steps: false, set_alpha_to_one: false } satisfies Partial<PNDMConfig>;

/**
 * Pseudo numerical methods for diffusion models (Liu et al. 2022), diffusers' `PNDMScheduler`:
 * Runge–Kutta warm-up steps (unless `skip_prk_steps`, as SD's config sets), then the linear
 * multistep PLMS update over the last four model outputs. With `skip_prk_steps` the schedule has
 * n + 1 timesteps, one repeated: step through `timesteps`, not `n`.
 *
 * @example
 * ```ts
 * const s = PNDMScheduler.fromConfig(sd15SchedulerConfig);
 * s.setTimesteps(20); // 21 timesteps
 * for (const t of s.timesteps) latents = s.step(unet(latents, t), t, latents).prevSample;
 * ```
 */
export class PNDMScheduler extends SchedulerBase<PNDMConfig> {
  readonly className: string = 'PNDMScheduler';
  readonly finalAlphaCumprod: number;
  /** PLMS needs the outputs of 4 evaluations. */
  readonly pndmOrder = 4;
  private prkTimesteps: number[] = [];
  private counter = 0;
  private ets: Tensor[] = [];
  private curSample: Tensor | null = null;
  private curModelOutput: Tensor | null = null;

  constructor(config: PNDMConfig, file = 'scheduler_config') {
    super(config, file);
    if (config.prediction_type === 'sample') unsupported(file, 'prediction_type', 'sample', ['epsilon', 'v_prediction']);
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with PNDM's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): PNDMScheduler {
    return new PNDMScheduler(resolveSchedulerConfig(config, PNDM_DEFAULTS, file) as PNDMConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkSteps(numInferenceSteps);
    const n = numInferenceSteps;
    this.numInferenceSteps = n;
    const c = this.config;
    const T = c.num_train_timesteps;
    let base: number[]; // ascending
    if (c.timestep_spacing === 'linspace') base = npLinspace(0, T - 1, n).map(F.roundHalfEven);
    else if (c.timestep_spacing === 'leading') base = Array.from({ length: n }, (_, i) => i * Math.floor(T / n) + c.steps_offset);
    else
      base = npArange(T, 0, -T / n)
        .map((t) => F.roundHalfEven(t) - 1)
        .reverse();
    let plms: number[];
    if (c.skip_prk_steps) {
      this.prkTimesteps = [];
      plms = [...base.slice(0, -1), base[base.length - 2], base[base.length - 1]].reverse();
    } else {
      // Each of the last 4 timesteps and its half-step, each evaluated twice (RK4's 4 stages).
      const half = Math.floor(Math.floor(T / n) / 2);
      const prk = base.slice(-this.pndmOrder).flatMap((t) => [t, t + half]);
      const doubled = prk.slice(0, -1).flatMap((t) => [t, t]);
      this.prkTimesteps = doubled.slice(1, -1).reverse();
      plms = base.slice(0, -3).reverse();
    }
    this.timesteps = [...this.prkTimesteps, ...plms];
    this.reset();
  }

  private reset(): void {
    for (const t of this.ets) t.dispose();
    this.curSample?.dispose();
    this.curModelOutput?.dispose();
    this.ets = [];
    this.curSample = null;
    this.curModelOutput = null;
    this.counter = 0;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor): SchedulerOutput {
    this.requireTimesteps();
    const prev =
      this.counter < this.prkTimesteps.length && !this.config.skip_prk_steps
        ? this.stepPrk(modelOutput, timestep, sample)
        : this.stepPlms(modelOutput, timestep, sample);
    this.counter++;
    return { prevSample: prev };
  }

  private stepPrk(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    const ratio = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps!);
    const prevT = timestep - (this.counter % 2 ? 0 : Math.floor(ratio / 2));
    const t = this.prkTimesteps[Math.floor(this.counter / 4) * 4];
    const stage = this.counter % 4;
    // RK4 weights 1/6, 1/3, 1/3, 1/6 accumulated across the four evaluations.
    const w = F.f(stage === 0 || stage === 3 ? 1 / 6 : 1 / 3);
    let output = modelOutput;
    if (stage === 0) {
      this.curModelOutput = k.keep(k.mul(modelOutput, w));
      this.ets.push(k.keep(k.clone(modelOutput)));
      this.curSample = k.keep(k.clone(sample));
    } else if (stage < 3) {
      const acc = k.add(this.curModelOutput!, k.mul(modelOutput, w));
      this.curModelOutput!.dispose();
      this.curModelOutput = k.keep(acc);
    } else {
      output = k.tidy(() => k.add(this.curModelOutput!, k.mul(modelOutput, w)));
      this.curModelOutput!.dispose();
      this.curModelOutput = null;
    }
    const result = this.prevSample(this.curSample ?? sample, t, prevT, output);
    if (output !== modelOutput) output.dispose();
    return result;
  }

  private stepPlms(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    const ratio = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps!);
    let prevT = timestep - ratio;
    let t = timestep;
    if (this.counter !== 1) {
      while (this.ets.length > 3) this.ets.shift()!.dispose();
      this.ets.push(k.keep(k.clone(modelOutput)));
    } else {
      // The second call repeats the first timestep: a 2nd-order start (the repeated timestep).
      prevT = timestep;
      t = timestep + ratio;
    }
    const e = this.ets;
    const m = e.length;
    const restart = m === 1 && this.counter === 1;
    if (m === 1 && this.counter === 0) this.curSample = k.keep(k.clone(sample));
    const result = k.tidy(() => {
      // Adams–Bashforth combinations of the last 1–4 outputs (PNDM eq. 12).
      let output: Tensor;
      if (m === 1 && this.counter === 0) output = modelOutput;
      else if (restart) output = k.div(k.add(modelOutput, e[m - 1]), 2);
      else if (m === 2) output = k.div(k.sub(k.mul(e[m - 1], 3), e[m - 2]), 2);
      else if (m === 3) output = k.div(k.add(k.sub(k.mul(e[m - 1], 23), k.mul(e[m - 2], 16)), k.mul(e[m - 3], 5)), 12);
      else {
        const sum = k.sub(k.add(k.sub(k.mul(e[m - 1], 55), k.mul(e[m - 2], 59)), k.mul(e[m - 3], 37)), k.mul(e[m - 4], 9));
        output = k.mul(sum, F.f(1 / 24));
      }
      return this.prevSample(restart ? this.curSample! : sample, t, prevT, output);
    });
    if (restart) {
      this.curSample!.dispose();
      this.curSample = null;
    }
    return result;
  }

  /** Eq. (9) of the PNDM paper: x_{t−δ} from x_t and the (combined) model output. */
  private prevSample(sample: Tensor, t: number, prevT: number, modelOutput: Tensor): Tensor {
    return k.tidy(() => {
      const alphaProd = this.alphaAt(t);
      const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
      const betaProd = F.sub(1, alphaProd);
      const betaProdPrev = F.sub(1, alphaProdPrev);
      let eps = modelOutput;
      if (this.config.prediction_type === 'v_prediction') {
        eps = k.add(k.mul(modelOutput, F.sqrt(alphaProd)), k.mul(sample, F.sqrt(betaProd)));
      }
      const sampleCoeff = F.sqrt(F.div(alphaProdPrev, alphaProd));
      const denom = F.add(F.mul(alphaProd, F.sqrt(betaProdPrev)), F.sqrt(F.mul(F.mul(alphaProd, betaProd), alphaProdPrev)));
      return k.sub(k.mul(sample, sampleCoeff), k.div(k.mul(eps, F.sub(alphaProdPrev, alphaProd)), denom));
    });
  }
}
