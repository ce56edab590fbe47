import * as k from '@kiln/tensor-core';
import { Conv2d } from '../layers/conv2d.js';
import { Linear } from '../layers/linear.js';
import { Module } from '../module.js';
import type { ModuleAdapter } from '../module.js';
import type { Parameter } from '../parameter.js';

/** Options of one LoRA adapter (PEFT's `LoraConfig` fields for one layer, camel-cased). @example injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4, alpha: 4, init: 'gaussian' }); */
export interface LoraOptions {
  /** Rank r of the update B·A (default 4). */
  rank?: number;
  /** Alpha: the update is scaled by alpha / rank, as in PEFT and kohya (default: rank, i.e. 1). */
  alpha?: number;
  /** Dropout probability on the adapter's input in training mode (default 0). */
  dropout?: number;
  /** Multiplier on top of alpha / rank, the `scale` of stacked adapters (default 1). */
  scale?: number;
  /**
   * Generator for lora_A's initialisation and the dropout masks (default: a fresh one seeded
   * with 0), so an adapter's start is reproducible without touching the global generator.
   */
  generator?: k.Generator;
  /** dtype of lora_A and lora_B (default: the base weight's). */
  dtype?: k.DType;
  /**
   * lora_A's initialisation: `'kaiming'` (PEFT's default, kaiming-uniform a=√5) or `'gaussian'`
   * (N(0, 1/rank²), PEFT's `init_lora_weights="gaussian"`, what diffusers' DreamBooth LoRA
   * scripts use).
   */
  init?: 'kaiming' | 'gaussian';
}

/** Holds one weight under the key `weight`, so adapter parameters read `lora_A.weight` as in PEFT. */
class LoraWeight extends Module {
  readonly weight: Parameter;
  constructor(tensor: k.Tensor) {
    super();
    this.weight = this.registerParameter('weight', tensor);
  }
}

/** The layers LoRA can adapt. @example const adapted: LoraTarget[] = [new Linear(320, 320), new Conv2d(320, 320, 3)]; */
export type LoraTarget = Linear | Conv2d;

/**
 * A low-rank adapter on a `Linear` or `Conv2d` (PEFT's `lora.Linear` / `lora.Conv2d`, kohya's
 * `LoRAModule`): `y = base(x) + scale · (alpha / rank) · B(A(dropout(x)))`. A is [rank, in] (for a
 * convolution, [rank, in, kh, kw] with the base's stride, padding and dilation) and is
 * kaiming-uniform(a=√5) initialised as PEFT does (or gaussian, `init`); B is [out, rank] (1×1 for a convolution) and
 * starts at zero, so a fresh adapter leaves the model unchanged. `merge()` adds the update into
 * the base weight (the adapter then does nothing until `unmerge()`).
 *
 * Attach it with {@link injectLora} rather than by hand.
 *
 * @example
 * ```ts
 * const proj = new Linear(320, 320);
 * const lora = proj.addAdapter('lora_default', new LoraLayer(proj, { rank: 4, alpha: 4 }));
 * lora.merge(); // proj.weight now includes B·A·alpha/rank
 * ```
 */
export class LoraLayer extends Module implements ModuleAdapter {
  readonly loraA: LoraWeight;
  readonly loraB: LoraWeight;
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  /** Multiplier on alpha / rank; change it with `setScale` (refused while merged). */
  #scale: number;
  #merged = false;
  /** When false the adapter is skipped (PEFT's `disable_adapters`). */
  enabled = true;
  readonly #generator: k.Generator;

  constructor(
    /** The adapted layer (held, not registered: the adapter is its child, not its parent). */
    readonly base: LoraTarget,
    options: LoraOptions = {},
  ) {
    super();
    const rank = options.rank ?? 4;
    if (!Number.isInteger(rank) || rank < 1) throw new k.ArgumentError(`LoraLayer: rank must be a positive integer, got ${rank}`);
    const alpha = options.alpha ?? rank;
    if (!Number.isFinite(alpha)) throw new k.ArgumentError(`LoraLayer: alpha must be a finite number, got ${alpha}`);
    const dropout = options.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) throw new k.ArgumentError(`LoraLayer: dropout must be in [0, 1), got ${dropout}`);
    this.rank = rank;
    this.alpha = alpha;
    this.dropout = dropout;
    this.#scale = options.scale ?? 1;
    this.#generator = options.generator ?? new k.Generator(0);
    const { weight } = base;
    const dtype = options.dtype ?? weight.dtype;
    const device = weight.device;
    let aShape: number[];
    let bShape: number[];
    if (base instanceof Conv2d) {
      if ((base.options.groups ?? 1) !== 1)
        throw new k.ArgumentError(`LoraLayer: grouped convolutions (groups ${base.options.groups}) are not supported`);
      aShape = [rank, base.inChannels, weight.shape[2], weight.shape[3]];
      bShape = [base.outChannels, rank, 1, 1];
    } else if (base instanceof Linear) {
      aShape = [rank, base.inFeatures];
      bShape = [base.outFeatures, rank];
    } else {
      throw new k.ArgumentError(`LoraLayer: can adapt Linear or Conv2d, got ${(base as object).constructor.name}`);
    }
    // PEFT's inits, drawn from the adapter's generator: kaiming_uniform_(a=√5) is U(±1/√fanIn);
    // gaussian is normal_(std=1/r).
    const bound = 1 / Math.sqrt(aShape.slice(1).reduce((x, y) => x * y, 1));
    const g = this.#generator;
    const a = k.noGrad(() =>
      k.tidy(() => {
        const draw =
          options.init === 'gaussian'
            ? k.randn(aShape, { device, generator: g }).mul(1 / rank)
            : k
                .rand(aShape, { device, generator: g })
                .mul(2 * bound)
                .sub(bound);
        return k.cast(draw, dtype);
      }),
    );
    this.loraA = this.registerModule('lora_A', new LoraWeight(a));
    this.loraB = this.registerModule('lora_B', new LoraWeight(k.zeros(bShape, { dtype, device })));
  }

  /** The user multiplier (1 unless set). */
  get scale(): number {
    return this.#scale;
  }

  /** alpha / rank × scale: the factor on B·A. */
  get scaling(): number {
    return (this.alpha / this.rank) * this.#scale;
  }

  /** Whether the update is currently folded into the base weight. */
  get merged(): boolean {
    return this.#merged;
  }

  /**
   * Sets the multiplier (e.g. 0.8 to blend a style in at 80%).
   *
   * @example
   * ```ts
   * lora.setScale(0.5);
   * ```
   */
  setScale(scale: number): void {
    if (!Number.isFinite(scale)) throw new k.ArgumentError(`LoraLayer: scale must be a finite number, got ${scale}`);
    if (this.#merged) throw new k.ArgumentError('LoraLayer: unmerge before changing the scale of a merged adapter');
    this.#scale = scale;
  }

  adapt(input: k.Tensor, output: k.Tensor): k.Tensor {
    if (this.#merged || !this.enabled || this.#scale === 0) return output;
    const x = this.dropout > 0 && this.training ? k.dropout(input, this.dropout, true, { generator: this.#generator }) : input;
    const a = this.loraA.weight;
    const b = this.loraB.weight;
    const cast = (t: k.Tensor): k.Tensor => (t.dtype === a.dtype ? t : k.cast(t, a.dtype));
    let h: k.Tensor;
    if (this.base instanceof Conv2d) {
      const { stride, padding, dilation } = this.base.options;
      h = k.conv2d(k.conv2d(cast(x), a, null, { stride, padding, dilation }), b, null);
    } else {
      h = k.linear(k.linear(cast(x), a, null), b, null);
    }
    h = h.mul(this.scaling);
    return output.add(h.dtype === output.dtype ? h : k.cast(h, output.dtype));
  }

  /**
   * The update B·A·scaling in the base weight's shape and dtype (a new tensor, no grad).
   *
   * @example
   * ```ts
   * const delta = lora.deltaWeight(); // [out, in] or [out, in, kh, kw]
   * ```
   */
  deltaWeight(): k.Tensor {
    const target = this.base.weight;
    return k.noGrad(() =>
      k.tidy(() => {
        // Half-precision weights get the update computed in float32, then rounded once.
        const dtype = target.dtype === 'float64' ? 'float64' : 'float32';
        const a = k.cast(this.loraA.weight, dtype).reshape([this.rank, -1]);
        const b = k.cast(this.loraB.weight, dtype).reshape([-1, this.rank]);
        return k.cast(
          k
            .matmul(b, a)
            .mul(this.scaling)
            .reshape([...target.shape]),
          target.dtype,
        );
      }),
    );
  }

  /**
   * Adds the update into the base weight in place (PEFT's `merge`); a no-op if already merged.
   *
   * @example
   * ```ts
   * for (const l of layers) l.merge(); // inference without the extra matmuls
   * ```
   */
  merge(): void {
    if (this.#merged) return;
    this.#fold(1);
    this.#merged = true;
  }

  /**
   * Subtracts the update from the base weight again (PEFT's `unmerge`); a no-op if not merged.
   *
   * @example
   * ```ts
   * lora.unmerge();
   * ```
   */
  unmerge(): void {
    if (!this.#merged) return;
    this.#fold(-1);
    this.#merged = false;
  }

  #fold(sign: 1 | -1): void {
    const w = this.base.weight;
    k.noGrad(() =>
      k.tidy(() => {
        const delta = this.deltaWeight();
        w.assign_(sign > 0 ? w.add(delta) : w.sub(delta));
      }),
    );
  }

  /** The two trainable tensors [lora_A, lora_B]. */
  adapterParameters(): Parameter[] {
    return [this.loraA.weight, this.loraB.weight];
  }
}
