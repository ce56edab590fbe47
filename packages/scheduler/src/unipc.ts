import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { BASE_DEFAULTS, resolveSchedulerConfig, unsupported } from './config.js';
import type { SchedulerConfigLike } from './config.js';
import * as F from './f32.js';
import { MultistepScheduler, alphaSigma, lambdaAt } from './multistep.js';
import type { MultistepConfig } from './multistep.js';
import type { SchedulerOutput, StepOptions } from './scheduler.js';

/** `UniPCMultistepScheduler`'s config fields. @example UniPCMultistepScheduler.fromConfig({ ...config, solver_order: 2 }); */
export interface UniPCConfig extends MultistepConfig {
  predict_x0: boolean;
  solver_type: 'bh1' | 'bh2';
  disable_corrector: number[];
  thresholding: boolean;
}

/** diffusers' defaults of `UniPCMultistepScheduler`'s config fields. @example const config = { ...UNIPC_DEFAULTS, prediction_type: 'v_prediction' as const }; */
export const UNIPC_DEFAULTS = {
  ...BASE_DEFAULTS,
  timestep_spacing: 'linspace',
  use_karras_sigmas: false,
  final_sigmas_type: 'zero',
  solver_order: 2,
  lower_order_final: true,
  predict_x0: true,
  solver_type: 'bh2',
  disable_corrector: [],
  thresholding: false,
} satisfies Partial<UniPCConfig>;

/**
 * Solves the small system A·x = b in float32 by Gaussian elimination with partial pivoting, the
 * way LAPACK's sgesv does (multipliers through the pivot's reciprocal). A is row-major n×n, n ≤ 3.
 */
export function solveSmallF32(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row) => row.map(F.f));
  const x = b.map(F.f);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    [x[c], x[p]] = [x[p], x[c]];
    const inv = F.div(1, m[c][c]);
    for (let r = c + 1; r < n; r++) {
      const l = F.mul(m[r][c], inv);
      for (let j = c + 1; j < n; j++) m[r][j] = F.sub(m[r][j], F.mul(l, m[c][j]));
      x[r] = F.sub(x[r], F.mul(l, x[c]));
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let v = x[c];
    for (let j = c + 1; j < n; j++) v = F.sub(v, F.mul(m[c][j], x[j]));
    x[c] = F.div(v, m[c][c]);
  }
  return x;
}

/**
 * UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 * Diffusion Models"), diffusers' `UniPCMultistepScheduler`: a multistep predictor (UniP) and, at
 * the next step, a corrector (UniC) that reuses the new model evaluation at no extra cost. Orders
 * 1–3, B(h) variants `bh1`/`bh2`, data or noise prediction, Karras sigmas.
 *
 * @example
 * ```ts
 * const s = UniPCMultistepScheduler.fromConfig(sd15Config);
 * s.setTimesteps(10);
 * for (const t of s.timesteps) x = s.step(unet(x, t), t, x).prevSample;
 * ```
 */
export class UniPCMultistepScheduler extends MultistepScheduler<UniPCConfig> {
  readonly className: string = 'UniPCMultistepScheduler';
  protected readonly predictsData: boolean;
  private lastSample: Tensor | null = null;
  private thisOrder = 1;

  constructor(config: UniPCConfig, file = 'scheduler_config') {
    // diffusers maps DPM-Solver's solver types onto bh2.
    const solver = ['midpoint', 'heun', 'logrho'].includes(config.solver_type) ? 'bh2' : config.solver_type;
    config = { ...config, solver_type: solver };
    super(config, file);
    if (!['bh1', 'bh2'].includes(solver)) unsupported(file, 'solver_type', solver, ['bh1', 'bh2']);
    if (config.thresholding) unsupported(file, 'thresholding', true, [false]);
    if (config.solver_p != null) unsupported(file, 'solver_p', '(a scheduler)', [null]);
    this.predictsData = config.predict_x0;
  }

  /** Reads any scheduler's config (diffusers' `from_config`), with UniPC's defaults for missing fields. */
  static fromConfig(config: SchedulerConfigLike = {}, file?: string): UniPCMultistepScheduler {
    return new UniPCMultistepScheduler(resolveSchedulerConfig(config, UNIPC_DEFAULTS, file) as UniPCConfig, file);
  }

  setTimesteps(numInferenceSteps: number): void {
    // With Karras sigmas and final_sigmas_type 'sigma_min', UniPC ends at the last Karras σ.
    const karrasEnd = (s: number[]) => (this.config.final_sigmas_type === 'zero' ? 0 : s[s.length - 1]);
    this.setMultistepTimesteps(
      numInferenceSteps,
      this.config.num_train_timesteps,
      this.config.use_karras_sigmas ? karrasEnd : () => this.finalSigma(),
    );
    this.lastSample?.dispose();
    this.lastSample = null;
  }

  step(modelOutput: Tensor, timestep: number, sample: Tensor, _options: StepOptions = {}): SchedulerOutput {
    const { index } = this.stepSigma(timestep);
    const c = this.config;
    const useCorrector = index > 0 && !c.disable_corrector.includes(index - 1) && this.lastSample !== null;
    const converted = k.tidy(() => this.convert(modelOutput, sample, this.sigmas[index]));
    let x = sample;
    if (useCorrector) x = k.keep(k.tidy(() => this.corrector(converted, this.lastSample!, sample, index, this.thisOrder)));
    this.remember(converted);
    const order = c.lower_order_final ? Math.min(c.solver_order, this.timesteps.length - index) : c.solver_order;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1);
    this.lastSample?.dispose();
    this.lastSample = x === sample ? k.keep(k.clone(sample)) : x;
    const prev = k.tidy(() => this.predictor(x, index, this.thisOrder));
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = index + 1;
    return this.predictsData ? { prevSample: prev, predOriginalSample: k.clone(converted) } : { prevSample: prev };
  }

  /**
   * The coefficients both updates share, for a step of size h in λ from s0 to t with earlier
   * points at ratios `rks`: hh (signed by the prediction type), h·φ₁(h), B(h), and the right-hand
   * sides b of the order conditions.
   */
  private updateCoefficients(h: number, order: number): { hh: number; hPhi1: number; bh: number; b: number[] } {
    const hh = this.predictsData ? -h : h;
    const hPhi1 = F.expm1(hh);
    let hPhiK = F.sub(F.div(hPhi1, hh), 1);
    const bh = this.config.solver_type === 'bh1' ? hh : F.expm1(hh);
    const b: number[] = [];
    let factorial = 1;
    for (let i = 1; i <= order; i++) {
      b.push(F.div(F.mul(hPhiK, factorial), bh));
      factorial *= i + 1;
      hPhiK = F.sub(F.div(hPhiK, hh), F.f(1 / factorial));
    }
    return { hh, hPhi1, bh, b };
  }

  /** rᵢ = (λ_{sᵢ} − λ_{s0})/h and Dᵢ = (mᵢ − m0)/rᵢ for the older outputs. */
  private differences(h: number, lambdaS0: number, index: number, order: number, shift: number): { rks: number[]; d1s: Tensor[] } {
    const m = this.modelOutputs;
    const m0 = m[m.length - 1]!;
    const rks: number[] = [];
    const d1s: Tensor[] = [];
    for (let i = 1; i < order; i++) {
      const rk = F.div(F.sub(lambdaAt(this.sigmas[index - i - shift]), lambdaS0), h);
      rks.push(rk);
      d1s.push(k.div(k.sub(m[m.length - 1 - i]!, m0), rk));
    }
    return { rks: [...rks, 1], d1s };
  }

  /** Σₖ ρₖ·Dₖ (diffusers' einsum over the history). */
  private static weighted(rhos: number[], d1s: Tensor[]): Tensor | null {
    if (d1s.length === 0) return null;
    return d1s.slice(1).reduce((acc, d, i) => k.add(acc, k.mul(d, rhos[i + 1])), k.mul(d1s[0], rhos[0]));
  }

  /** The exact linear part plus h·φ₁ times the newest output (the first-order step). */
  private base(x: Tensor, m0: Tensor, sigmaT: number, sigmaS0: number, hPhi1: number): { xt: Tensor; scale: number } {
    const [alphaT, sT] = alphaSigma(sigmaT);
    const [alphaS0, sS0] = alphaSigma(sigmaS0);
    if (this.predictsData) return { xt: k.sub(k.mul(x, F.div(sT, sS0)), k.mul(m0, F.mul(alphaT, hPhi1))), scale: alphaT };
    return { xt: k.sub(k.mul(x, F.div(alphaT, alphaS0)), k.mul(m0, F.mul(sT, hPhi1))), scale: sT };
  }

  /** UniP: the predictor, from step `index` to `index + 1`. */
  private predictor(x: Tensor, index: number, order: number): Tensor {
    const lambdaS0 = lambdaAt(this.sigmas[index]);
    const h = F.sub(lambdaAt(this.sigmas[index + 1]), lambdaS0);
    const { rks, d1s } = this.differences(h, lambdaS0, index, order, 0);
    const { hPhi1, bh, b } = this.updateCoefficients(h, order);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const { xt, scale } = this.base(x, m0, this.sigmas[index + 1], this.sigmas[index], hPhi1);
    if (d1s.length === 0) return xt;
    const R = Array.from({ length: order - 1 }, (_, i) => rks.slice(0, -1).map((r) => (i === 0 ? 1 : F.f(r ** i))));
    const rhos = order === 2 ? [0.5] : solveSmallF32(R, b.slice(0, -1));
    return k.sub(xt, k.mul(UniPCMultistepScheduler.weighted(rhos, d1s)!, F.mul(scale, bh)));
  }

  /** UniC: corrects the sample the last predictor produced, with the model output just evaluated there. */
  private corrector(modelT: Tensor, last: Tensor, _thisSample: Tensor, index: number, order: number): Tensor {
    const lambdaS0 = lambdaAt(this.sigmas[index - 1]);
    const h = F.sub(lambdaAt(this.sigmas[index]), lambdaS0);
    const { rks, d1s } = this.differences(h, lambdaS0, index, order, 1);
    const { hPhi1, bh, b } = this.updateCoefficients(h, order);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const { xt, scale } = this.base(last, m0, this.sigmas[index], this.sigmas[index - 1], hPhi1);
    const R = Array.from({ length: order }, (_, i) => rks.map((r) => (i === 0 ? 1 : F.f(r ** i))));
    const rhos = order === 1 ? [0.5] : solveSmallF32(R, b);
    const corr = UniPCMultistepScheduler.weighted(rhos.slice(0, -1), d1s);
    const d1t = k.mul(k.sub(modelT, m0), rhos[rhos.length - 1]);
    return k.sub(xt, k.mul(corr ? k.add(corr, d1t) : d1t, F.mul(scale, bh)));
  }
}
