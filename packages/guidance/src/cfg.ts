import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { GuidanceError } from './errors.js';
import type { Guidance } from './guidance.js';

const sameShape = (a: Tensor, b: Tensor): boolean => a.shape.join(',') === b.shape.join(',');

/**
 * Classifier-free guidance (Ho & Salimans 2022): `uncond + scale · (cond − uncond)`.
 *
 * @example
 * ```ts
 * const guided = classifierFreeGuidance(epsUncond, epsText, 7.5);
 * ```
 */
export function classifierFreeGuidance(uncond: Tensor, cond: Tensor, guidanceScale: number): Tensor {
  if (!sameShape(uncond, cond)) throw new GuidanceError(`classifierFreeGuidance: uncond [${uncond.shape}] and cond [${cond.shape}] differ`);
  return k.tidy(() => k.add(uncond, k.mul(k.sub(cond, uncond), guidanceScale)));
}

/**
 * Guidance rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
 * Flawed", §3.4), diffusers' `rescale_noise_cfg`: scale the guided prediction to the per-sample
 * standard deviation of the conditional one, then mix `guidanceRescale` of that with the rest of
 * the guided prediction. Counters the over-exposure strong guidance causes with zero-SNR schedules.
 *
 * @example
 * ```ts
 * const eps = rescaleNoiseCfg(classifierFreeGuidance(u, c, 7.5), c, 0.7);
 * ```
 */
export function rescaleNoiseCfg(noiseCfg: Tensor, noisePredText: Tensor, guidanceRescale: number): Tensor {
  if (!sameShape(noiseCfg, noisePredText)) {
    throw new GuidanceError(`rescaleNoiseCfg: noiseCfg [${noiseCfg.shape}] and noisePredText [${noisePredText.shape}] differ`);
  }
  return k.tidy(() => {
    const dims = noiseCfg.shape.map((_, i) => i).slice(1);
    const stdText = noisePredText.std(dims, { correction: 1, keepdim: true });
    const stdCfg = noiseCfg.std(dims, { correction: 1, keepdim: true });
    const rescaled = k.mul(noiseCfg, k.div(stdText, stdCfg));
    return k.add(k.mul(rescaled, guidanceRescale), k.mul(noiseCfg, 1 - guidanceRescale));
  });
}

/** Options of `ClassifierFreeGuidance`. @example new ClassifierFreeGuidance({ guidanceScale: 7.5, guidanceRescale: 0.7 }); */
export interface ClassifierFreeGuidanceOptions {
  /** The guidance scale s (SD's default 7.5). At s ≤ 1 guidance is off and each step runs one forward, as in diffusers. */
  guidanceScale?: number;
  /** φ of guidance rescale, in [0, 1] (0: off; Lin et al. suggest 0.7). */
  guidanceRescale?: number;
}

/**
 * Classifier-free guidance as pipelines run it: the latents twice in one batch (unconditional
 * first, as diffusers orders them), the negative-prompt (or empty-prompt) embeddings before the
 * prompt's, then the guided combination of the two halves of the output, with optional rescale.
 *
 * @example
 * ```ts
 * const cfg = new ClassifierFreeGuidance({ guidanceScale: 7.5, guidanceRescale: 0.7 });
 * const context = cfg.conditioning(promptEmbeds, negativePromptEmbeds); // [2B, 77, 768]
 * for (const t of scheduler.timesteps) {
 *   const input = scheduler.scaleModelInput(cfg.expandLatents(latents), t); // [2B, 4, 64, 64]
 *   const eps = cfg.combine(unet.forward(input, t, context));                // [B, 4, 64, 64]
 *   latents = scheduler.step(eps, t, latents).prevSample;
 * }
 * ```
 */
export class ClassifierFreeGuidance implements Guidance {
  readonly guidanceScale: number;
  readonly guidanceRescale: number;

  constructor(options: ClassifierFreeGuidanceOptions = {}) {
    const { guidanceScale = 7.5, guidanceRescale = 0 } = options;
    if (!Number.isFinite(guidanceScale)) throw new GuidanceError(`guidanceScale must be a finite number, got ${guidanceScale}`);
    if (!(guidanceRescale >= 0 && guidanceRescale <= 1))
      throw new GuidanceError(`guidanceRescale must be in [0, 1], got ${guidanceRescale}`);
    this.guidanceScale = guidanceScale;
    this.guidanceRescale = guidanceRescale;
  }

  /** Whether guidance runs (diffusers' `do_classifier_free_guidance`: scale > 1). */
  get active(): boolean {
    return this.guidanceScale > 1;
  }

  get copies(): number {
    return this.active ? 2 : 1;
  }

  expandLatents(latents: Tensor): Tensor {
    return this.active ? k.cat([latents, latents], 0) : latents;
  }

  /**
   * `cat([uncond, cond])` along the batch. `uncond` defaults to nothing only when guidance is off;
   * a single unconditional row (an empty or shared negative prompt) is repeated to cond's batch.
   */
  conditioning(cond: Tensor, uncond?: Tensor): Tensor {
    if (!this.active) return cond;
    if (!uncond)
      throw new GuidanceError(`conditioning: guidance scale ${this.guidanceScale} > 1 needs unconditional (negative prompt) embeddings`);
    const [b, ...rest] = cond.shape;
    const [ub, ...urest] = uncond.shape;
    if (rest.join(',') !== urest.join(',') || (ub !== b && ub !== 1)) {
      throw new GuidanceError(`conditioning: uncond [${uncond.shape}] does not pair with cond [${cond.shape}] (same shape, or batch 1)`);
    }
    return k.tidy(() => k.cat([ub === b ? uncond : k.expand(uncond, cond.shape), cond], 0));
  }

  combine(modelOutput: Tensor): Tensor {
    if (!this.active) return modelOutput;
    if (modelOutput.shape[0] % 2 !== 0)
      throw new GuidanceError(`combine: the guided batch must be even (uncond + cond), got [${modelOutput.shape}]`);
    return k.tidy(() => {
      const [uncond, cond] = k.chunk(modelOutput, 2, 0);
      const guided = classifierFreeGuidance(uncond.contiguous(), cond.contiguous(), this.guidanceScale);
      return this.guidanceRescale > 0 ? rescaleNoiseCfg(guided, cond.contiguous(), this.guidanceRescale) : guided;
    });
  }
}
