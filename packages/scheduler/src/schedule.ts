import type { BaseSchedulerConfig, TimestepSpacing } from './config.js';
import { SchedulerConfigError } from './errors.js';
import * as F from './f32.js';

/**
 * The noise schedule math every scheduler shares, computed in float32 as diffusers does, so that
 * `alphasCumprod` is bit-identical to diffusers' `scheduler.alphas_cumprod`.
 */

/**
 * Glide's cosine schedule (`squaredcos_cap_v2`): betas that discretise
 * ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), capped at `maxBeta`. Computed in f64, stored as f32.
 *
 * @example
 * ```ts
 * betasForAlphaBar(1000)[999]; // 0.999 (the cap)
 * ```
 */
export function betasForAlphaBar(numDiffusionTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2;
  const betas = new Float32Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return betas;
}

/** ᾱ_t = ∏(1 − β_s), accumulated in f64 (as PyTorch's CPU cumprod does for float32) and stored as f32. @example const alphasCumprod = cumprodOfAlphas(scheduler.betas); // ᾱ_t, as scheduler.alphasCumprod */
export function cumprodOfAlphas(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= F.sub(1, betas[i]);
    out[i] = acc;
  }
  return out;
}

/**
 * Rescales betas so the last timestep has zero signal-to-noise ratio (Lin et al. 2023, "Common
 * Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1): √ᾱ is shifted so its last
 * value is 0 and scaled so its first is unchanged. diffusers' `rescale_zero_terminal_snr`.
 *
 * @example
 * ```ts
 * const betas = rescaleZeroTerminalSnr(betasForConfig({ ...BASE_DEFAULTS }));
 * betas[betas.length - 1]; // 1: ᾱ_T = 0, pure noise at the last timestep
 * ```
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const ac = cumprodOfAlphas(betas);
  const n = ac.length;
  const sqrtAc = ac.map((a) => F.sqrt(a));
  const first = sqrtAc[0];
  const last = sqrtAc[n - 1];
  const scale = F.div(first, F.sub(first, last));
  const alphasBar = sqrtAc.map((a) => F.sq(F.mul(F.sub(a, last), scale)));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = F.sub(1, i === 0 ? alphasBar[0] : F.div(alphasBar[i], alphasBar[i - 1]));
  return out;
}

/** The betas a config describes: `trained_betas`, else `beta_schedule`, then zero-SNR rescaling if asked. @example const betas = betasForConfig(scheduler.config); // num_train_timesteps values, bit-identical to diffusers' */
export function betasForConfig(config: BaseSchedulerConfig, file = 'scheduler_config'): Float32Array {
  const { num_train_timesteps: n, beta_start: b0, beta_end: b1 } = config;
  let betas: Float32Array;
  if (config.trained_betas) {
    if (config.trained_betas.length !== n) {
      throw new SchedulerConfigError(file, 'trained_betas', [
        `trained_betas: has ${config.trained_betas.length} values, num_train_timesteps is ${n}`,
      ]);
    }
    betas = Float32Array.from(config.trained_betas);
  } else if (config.beta_schedule === 'linear') {
    betas = F.torchLinspaceF32(b0, b1, n);
  } else if (config.beta_schedule === 'scaled_linear') {
    // Latent diffusion's schedule: linear in √β.
    betas = F.torchLinspaceF32(Math.sqrt(b0), Math.sqrt(b1), n).map((b) => F.sq(b));
  } else {
    betas = betasForAlphaBar(n);
  }
  return config.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(betas) : betas;
}

/** numpy's `np.linspace(start, stop, num)` in f64 (the last value is `stop` exactly). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** numpy's `np.arange(start, stop, step)` for floats: ⌈(stop − start)/step⌉ values `start + i·step`. */
export function npArange(start: number, stop: number, step: number): number[] {
  const n = Math.max(Math.ceil((stop - start) / step), 0);
  return Array.from({ length: n }, (_, i) => start + i * step);
}

/**
 * Inference timesteps, descending, as DDPM/DDIM/Euler space them (diffusers' three strategies,
 * "Common Diffusion Noise Schedules…" Table 2): `linspace` includes both ends, `leading` counts up
 * from 0 in steps of ⌊T/n⌋ plus `steps_offset`, `trailing` counts down from T − 1. Values are
 * fractional only for `linspace` with `integer: false` (Euler keeps them; DDIM rounds).
 *
 * @example
 * ```ts
 * spacedTimesteps('leading', 1000, 4, 1, true); // [751, 501, 251, 1]
 * ```
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  n: number,
  stepsOffset: number,
  integer: boolean,
): number[] {
  const T = numTrainTimesteps;
  if (spacing === 'linspace') {
    const ts = npLinspace(0, T - 1, n).reverse();
    return integer ? ts.map(F.roundHalfEven) : ts.map(F.f);
  }
  if (spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
  }
  return npArange(T, 0, -T / n).map((t) => F.roundHalfEven(t) - 1);
}

/**
 * Timesteps of the multistep solvers (DPM-Solver, UniPC): n + 1 points up to `last` (T, or fewer
 * when λ is clipped) with the final one dropped, so the schedule never lands on t = 0.
 */
export function multistepTimesteps(spacing: TimestepSpacing, T: number, last: number, n: number, stepsOffset: number): number[] {
  if (spacing === 'linspace')
    return npLinspace(0, last - 1, n + 1)
      .map(F.roundHalfEven)
      .reverse()
      .slice(0, -1);
  if (spacing === 'leading') {
    const ratio = Math.floor(last / (n + 1));
    return Array.from({ length: n }, (_, i) => (n - i) * ratio + stepsOffset);
  }
  return npArange(last, 0, -T / n).map((t) => F.roundHalfEven(t) - 1);
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, in float32 (diffusers' sigma table). @example const sigmas = sigmasOf(scheduler.alphasCumprod); // √((1 − ᾱ) / ᾱ), ascending in t */
export function sigmasOf(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => F.sqrt(F.div(F.sub(1, a), a)));
}

/** numpy's `np.interp(x, arange(len(fp)), fp)` for x in [0, len − 1]. */
export function interpIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x >= last) return fp[last];
  if (x <= 0) return fp[0];
  const j = Math.floor(x);
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/**
 * Karras et al. (2022) noise levels: `n` sigmas evenly spaced in σ^(1/ρ) from `sigmaMax` down to
 * `sigmaMin`, ρ = 7 (the paper's value), in f64 as diffusers computes them.
 *
 * @example
 * ```ts
 * karrasSigmas(14.6146, 0.0292, 3); // [14.6146, ~1.01, 0.0292]
 * ```
 */
export function karrasSigmas(sigmaMax: number, sigmaMin: number, n: number, rho = 7): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/**
 * The (fractional) training timestep whose σ is `sigma`: linear interpolation in log σ between the
 * two neighbouring entries of `logSigmas` (ascending in t), diffusers' `_sigma_to_t`.
 *
 * @example
 * ```ts
 * const t = sigmaToT(1.5, logSigmas); // fractional training timestep
 * ```
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // The last index whose log σ is ≤ log σ_target (diffusers' cumsum(dists >= 0).argmax()).
  let count = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma - logSigmas[i] >= 0) count++;
  let low = 0;
  let seen = 0;
  for (let i = 0; i < logSigmas.length; i++) {
    if (logSigma - logSigmas[i] >= 0) seen++;
    if (seen === count) {
      low = i;
      break;
    }
  }
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low];
  const hi = logSigmas[low + 1];
  const w = Math.min(Math.max((lo - logSigma) / (lo - hi), 0), 1);
  return (1 - w) * low + w * (low + 1);
}
