import * as k from '@kiln/tensor-core';
import { clipGradNorm, parameter } from '@kiln/nn';
import type { BaseHyper, Module, Optimizer, Parameter } from '@kiln/nn';
import { GradScaler } from './grad-scaler.js';

/**
 * The half-precision dtypes a run can compute in.
 *
 * @example
 * ```ts
 * const dtype: HalfDType = halfDTypeOf('fp16')!; // 'float16'
 * ```
 */
export type HalfDType = 'float16' | 'bfloat16';

/**
 * The compute dtype of `--mixed_precision` (or `--prior_generation_precision`): `'fp16'` →
 * float16, `'bf16'` → bfloat16, anything else (`'no'`, `'fp32'`, unset) → null (float32).
 *
 * @example
 * ```ts
 * halfDTypeOf('bf16'); // 'bfloat16'
 * halfDTypeOf('no'); // null
 * ```
 */
export function halfDTypeOf(precision: string | null): HalfDType | null {
  return precision === 'fp16' ? 'float16' : precision === 'bf16' ? 'bfloat16' : null;
}

/**
 * Options of {@link MixedPrecision}.
 *
 * @example
 * ```ts
 * const options: MixedPrecisionOptions = { dtype: 'bfloat16', trained: () => unet.parameters(), trainedModules: () => [unet], modules: [unet, vae], scaler: null };
 * ```
 */
export interface MixedPrecisionOptions {
  dtype: HalfDType;
  /** The trained parameters in the optimizer's order, read afresh each time (casting a module replaces its parameter objects). */
  trained: () => Parameter[];
  /** The modules that hold exactly the trained parameters (the models, or each LoRA adapter's A and B): cast to float32 around saves. */
  trainedModules: () => Module[];
  /** Every module that computes in half precision: the trained ones and the frozen ones (VAE, a frozen text encoder). */
  modules: readonly Module[];
  /** Loss scaling (fp16); null for bf16, whose range needs none. */
  scaler: GradScaler | null;
}

/**
 * Mixed-precision training as accelerate's `--mixed_precision fp16|bf16` does it for diffusers'
 * scripts: the optimizer holds float32 master weights, the models compute in half precision, and
 * float16 gradients are loss-scaled. Here the models themselves hold the half-precision working
 * copy (so peak memory holds one half copy of the weights, not an f32 copy per op) and the
 * masters live beside them:
 *
 * - after each micro-batch's `backward()`, {@link collectGrads} adds the half gradients into float32
 *   accumulators on the masters (so gradient accumulation sums in float32, as under autocast);
 * - {@link step} unscales, clips, skips a step with non-finite gradients (fp16) and otherwise steps
 *   the optimizer on the masters and re-casts them into the models;
 * - {@link withMasterWeights} puts the exact float32 masters into the trained modules while a
 *   checkpoint or the output is written, so saved weights are float32 and a resume is bit-exact.
 *
 * @example
 * ```ts
 * const amp = new MixedPrecision({ dtype: 'float16', trained: () => unet.parameters(), trainedModules: () => [unet], modules: [unet, vae, textEncoder], scaler: new GradScaler() });
 * const optimizer = new AdamW(amp.masters, { lr: 1e-5 });
 * k.tidy(() => amp.scaleLoss(loss).backward());
 * amp.collectGrads();
 * const applied = await amp.step(optimizer, 1.0); // false: skipped (inf/NaN gradients), scale halved
 * optimizer.zeroGrad();
 * ```
 */
export class MixedPrecision {
  readonly dtype: HalfDType;
  readonly scaler: GradScaler | null;
  /** float32 copies of the trained parameters, in the same order: what the optimizer updates. */
  readonly masters: Parameter[];
  readonly #o: MixedPrecisionOptions;

  constructor(o: MixedPrecisionOptions) {
    this.#o = o;
    this.dtype = o.dtype;
    this.scaler = o.scaler;
    this.masters = k.noGrad(() => o.trained().map((p) => parameter(k.keep(p.dtype === 'float32' ? k.clone(p) : k.cast(p, 'float32')))));
    for (const m of o.modules) m.to(o.dtype);
  }

  /**
   * The loss to call `backward()` on: × the loss scale with fp16, unchanged with bf16.
   *
   * @example
   * ```ts
   * k.tidy(() => amp.scaleLoss(loss).backward());
   * ```
   */
  scaleLoss(loss: k.Tensor): k.Tensor {
    return this.scaler ? loss.mul(this.scaler.scale) : loss;
  }

  /**
   * Moves the models' half-precision gradients into the masters' float32 gradients (summing across micro-batches).
   *
   * @example
   * ```ts
   * k.tidy(() => amp.scaleLoss(loss).backward());
   * amp.collectGrads(); // amp.masters[i].grad is float32
   * ```
   */
  collectGrads(): void {
    const working = this.#o.trained();
    k.noGrad(() => {
      working.forEach((p, i) => {
        if (!p.grad) return;
        const m = this.masters[i];
        const g = k.keep(k.cast(p.grad, 'float32'));
        if (g !== p.grad) p.grad.dispose();
        p.grad = null;
        const old = m.grad;
        if (!old) m.grad = g;
        else {
          m.grad = k.keep(old.add(g));
          old.dispose();
          g.dispose();
        }
      });
    });
  }

  /**
   * Finishes an optimizer step: divides the gradients by the loss scale, clips them to
   * `maxGradNorm`, and steps `optimizer` unless (fp16) a gradient is inf or NaN; then updates
   * the loss scale and copies the new masters into the models. Returns whether the step was
   * applied. The caller zeroes the gradients either way.
   *
   * @example
   * ```ts
   * if (!(await amp.step(optimizer, 1.0))) console.log(`skipped; loss scale now ${amp.scaler!.scale}`);
   * optimizer.zeroGrad();
   * ```
   */
  async step(optimizer: Pick<Optimizer<BaseHyper>, 'step'>, maxGradNorm: number): Promise<boolean> {
    const scaler = this.scaler;
    if (scaler) {
      const inv = 1 / scaler.scale;
      k.noGrad(() => {
        for (const m of this.masters) {
          if (!m.grad) continue;
          const g = m.grad;
          m.grad = k.keep(k.tidy(() => g.mul(inv)));
          g.dispose();
        }
      });
    }
    const norm = clipGradNorm(this.masters, maxGradNorm);
    let finite = true;
    try {
      // One read per step: the pre-clip norm is finite exactly when every gradient is.
      if (scaler) finite = Number.isFinite(await norm.item());
    } finally {
      norm.dispose();
    }
    scaler?.update(!finite);
    if (!finite) return false;
    optimizer.step();
    this.syncWorking();
    return true;
  }

  /**
   * Copies the masters into the models' half-precision parameters ({@link step} does it after each update).
   *
   * @example
   * ```ts
   * amp.syncWorking();
   * ```
   */
  syncWorking(): void {
    const working = this.#o.trained();
    k.noGrad(() => k.tidy(() => working.forEach((p, i) => p.assign_(k.cast(this.masters[i], this.dtype)))));
  }

  /**
   * Runs `fn` with the trained modules in float32 holding the masters' exact values (to save them), then casts them back.
   *
   * @example
   * ```ts
   * await amp.withMasterWeights(() => unet.savePretrained('out/unet')); // float32 weights
   * ```
   */
  async withMasterWeights<T>(fn: () => Promise<T>): Promise<T> {
    const modules = this.#o.trainedModules();
    for (const m of modules) m.to('float32');
    // Sharing the masters' storage: the float32 modules are the masters, bit for bit.
    k.noGrad(() => this.#o.trained().forEach((p, i) => p.assign_(this.masters[i])));
    try {
      return await fn();
    } finally {
      for (const m of modules) m.to(this.dtype);
    }
  }

  /**
   * Frees the masters and their gradients.
   *
   * @example
   * ```ts
   * amp.dispose();
   * ```
   */
  dispose(): void {
    for (const m of this.masters) {
      m.grad?.dispose();
      m.grad = null;
      m.dispose();
    }
  }
}
