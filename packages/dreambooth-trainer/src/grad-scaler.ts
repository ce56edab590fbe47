import { z } from 'zod';

/**
 * Options of {@link GradScaler}: `torch.cuda.amp.GradScaler`'s arguments and defaults.
 *
 * @example
 * ```ts
 * const scaler = new GradScaler({ initScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 });
 * ```
 */
export interface GradScalerOptions {
  /** The first loss scale (default 2¹⁶). */
  initScale?: number;
  /** Multiplies the scale after `growthInterval` steps in a row with finite gradients (default 2). */
  growthFactor?: number;
  /** Multiplies the scale after a step with non-finite gradients (default 0.5). */
  backoffFactor?: number;
  /** Finite steps in a row before the scale grows (default 2000). */
  growthInterval?: number;
}

/**
 * A {@link GradScaler}'s state, as `checkpoint-N/trainer_state.json` holds it.
 *
 * @example
 * ```ts
 * const state: GradScalerState = { scale: 32768, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: 12 };
 * ```
 */
export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  /** Finite steps in a row since the last change of scale. */
  growthTracker: number;
}

/** Validates a checkpoint's {@link GradScalerState} (PyTorch's `GradScaler.state_dict()` fields). */
export const GradScalerStateSchema = z.object({
  scale: z.number().positive(),
  growthFactor: z.number().gt(1),
  backoffFactor: z.number().gt(0).lt(1),
  growthInterval: z.number().int().min(1),
  growthTracker: z.number().int().min(0),
});

/**
 * Dynamic loss scaling for float16 training, as `torch.cuda.amp.GradScaler` does it: the loss is
 * multiplied by `scale` before `backward()` so that small gradients survive float16; the float32
 * gradients are divided by it again before clipping. A step whose gradients hold an inf or NaN is
 * skipped and the scale is multiplied by `backoffFactor`; after `growthInterval` good steps in a
 * row it is multiplied by `growthFactor`. The bookkeeping is plain numbers: the caller finds
 * non-finite gradients (one read per optimizer step) and reports it to {@link GradScaler.update}.
 *
 * @example
 * ```ts
 * const scaler = new GradScaler();
 * k.tidy(() => loss.mul(scaler.scale).backward());
 * // unscale the gradients by 1 / scaler.scale, then:
 * if (gradientsFinite) optimizer.step();
 * scaler.update(!gradientsFinite); // halves the scale after an overflow
 * ```
 */
export class GradScaler {
  /** The current loss scale. */
  scale: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  /** Finite steps in a row since the last change of scale. */
  growthTracker = 0;

  constructor(o: GradScalerOptions = {}) {
    this.scale = o.initScale ?? 2 ** 16;
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
  }

  /**
   * Records one optimizer step: `foundInf` backs the scale off, otherwise it grows every `growthInterval` steps.
   *
   * @example
   * ```ts
   * const s = new GradScaler({ initScale: 1024 });
   * s.update(true); // s.scale === 512
   * ```
   */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.scale *= this.backoffFactor;
      this.growthTracker = 0;
      return;
    }
    this.growthTracker++;
    if (this.growthTracker === this.growthInterval) {
      // PyTorch keeps the old scale when growing would overflow float32.
      const grown = this.scale * this.growthFactor;
      if (Number.isFinite(Math.fround(grown))) this.scale = grown;
      this.growthTracker = 0;
    }
  }

  /**
   * The state a checkpoint stores.
   *
   * @example
   * ```ts
   * new GradScaler().stateDict(); // { scale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: 0 }
   * ```
   */
  stateDict(): GradScalerState {
    const { scale, growthFactor, backoffFactor, growthInterval, growthTracker } = this;
    return { scale, growthFactor, backoffFactor, growthInterval, growthTracker };
  }

  /**
   * A scaler in the state `state` (from {@link GradScaler.stateDict}).
   *
   * @example
   * ```ts
   * const resumed = GradScaler.fromState(scaler.stateDict());
   * ```
   */
  static fromState(state: GradScalerState): GradScaler {
    const s = new GradScaler({ ...state, initScale: state.scale });
    s.growthTracker = state.growthTracker;
    return s;
  }
}
