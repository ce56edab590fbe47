import * as k from '@kiln/tensor-core';
import { ConfigError, Conv2d, configIssueLines, GroupNorm, Linear, Module, ModuleList, normSilu } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { z } from 'zod';
import { COLOR_NAMES, CONTEXTS, SHAPES } from './scene.js';
import type { ColorName, Context, Shape } from './scene.js';

/**
 * What the colour head reads: one of the named colours, or `other` (two-tone, or no named colour).
 *
 * @example
 * ```ts
 * const c: ScoredColor = 'other'; // the subject's colour
 * ```
 */
export type ScoredColor = ColorName | 'other';
/**
 * The labels of each head, in logit order.
 *
 * @example
 * ```ts
 * SCORER_LABELS.color; // ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'black', 'other']
 * ```
 */
export const SCORER_LABELS = {
  shape: [...SHAPES],
  color: [...COLOR_NAMES, 'other'] as ScoredColor[],
  context: [...CONTEXTS],
} as const;

const posInt = () => z.number().int().positive();
const sameList = (want: readonly string[]) =>
  z
    .array(z.string())
    .default([...want])
    .refine((v) => v.length === want.length && v.every((x, i) => x === want[i]), {
      message: `must be the world's labels [${want.join(', ')}] (a scorer for another world needs its own heads)`,
    });

/**
 * The scorer's `config.json`: sizes, and the labels of each head (saved so that a reader of the
 * folder knows what the logits mean; they must be the world's).
 *
 * @example
 * ```ts
 * ScorerConfigSchema.parse({ block_out_channels: [32, 32, 64, 64] }).norm_num_groups; // 8
 * ```
 */
export const ScorerConfigSchema = z
  .object({
    sample_size: posInt().default(32),
    in_channels: posInt().default(3),
    /** `conv_in` gives the first; each further entry is a stride-2 convolution. */
    block_out_channels: z.array(posInt()).min(1).default([16, 32, 64, 64]),
    norm_num_groups: posInt().default(8),
    shape_labels: sameList(SCORER_LABELS.shape),
    color_labels: sameList(SCORER_LABELS.color),
    context_labels: sameList(SCORER_LABELS.context),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    c.block_out_channels.forEach((ch, i) => {
      if (ch % c.norm_num_groups !== 0)
        ctx.addIssue({ code: 'custom', path: ['norm_num_groups'], message: `does not divide block_out_channels[${i}] = ${ch}` });
    });
  });
/**
 * A complete, validated scorer config.
 *
 * @example
 * ```ts
 * const config: ScorerConfig = parseScorerConfig({});
 * ```
 */
export type ScorerConfig = z.output<typeof ScorerConfigSchema>;
/**
 * What `new WorldScorer(config)` accepts: any subset of the fields.
 *
 * @example
 * ```ts
 * const input: ScorerConfigInput = { block_out_channels: [32, 32, 64, 64] };
 * ```
 */
export type ScorerConfigInput = z.input<typeof ScorerConfigSchema>;

/**
 * Validates and completes a scorer config; a bad field is a `ConfigError` naming it.
 *
 * @example
 * ```ts
 * parseScorerConfig({}).block_out_channels; // [16, 32, 64, 64]
 * ```
 */
export function parseScorerConfig(raw: unknown, file = 'WorldScorer config'): ScorerConfig {
  const r = ScorerConfigSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(file, configIssueLines(r.error));
  return r.data;
}

/**
 * The scorer's logits per head: [N, 4] shape, [N, 8] colour, [N, 5] context, [N, 2] subject (no, yes).
 *
 * @example
 * ```ts
 * const { shape, subject }: ScorerLogits = scorer.forward(x);
 * ```
 */
export interface ScorerLogits {
  shape: k.Tensor;
  color: k.Tensor;
  context: k.Tensor;
  subject: k.Tensor;
}

/**
 * What the scorer reads in one image.
 *
 * @example
 * ```ts
 * const s: Score = { shape: 'star', color: 'other', context: 'dots', subject: true, subjectProb: 0.99 };
 * ```
 */
export interface Score {
  shape: Shape;
  color: ScoredColor;
  context: Context;
  /** Whether it is the DreamBooth subject (`subjectProb` ≥ 0.5). */
  subject: boolean;
  subjectProb: number;
}

/**
 * An image as the pipeline returns it: `width × height × 4` RGBA bytes, rows top to bottom.
 *
 * @example
 * ```ts
 * const image: RgbaLike = (await pipe.txt2img({ prompt })).rgba[0];
 * ```
 */
export interface RgbaLike {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray | Uint8Array;
}

/**
 * An RGBA image (what `txt2img` returns in `rgba`) in the layout the scorer and the metrics read:
 * CHW floats in [−1, 1], alpha dropped.
 *
 * @example
 * ```ts
 * const chw = rgbaToChw(result.rgba[0]); // Float32Array of 3·32·32
 * ```
 */
export function rgbaToChw(image: RgbaLike): Float32Array {
  const n = image.width * image.height;
  if (image.data.length !== 4 * n)
    throw new k.ShapeError(`rgbaToChw: ${image.width}×${image.height} RGBA needs ${4 * n} bytes, got ${image.data.length}`);
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = image.data[i * 4 + c] / 127.5 - 1;
  return out;
}

/**
 * CHW images (all `size`×`size`) as one [N, 3, size, size] tensor, the scorer's input.
 *
 * @example
 * ```ts
 * const x = chwBatch(samples.map(rgbaToChw), 32);
 * const scores = await scorer.score(x);
 * ```
 */
export function chwBatch(images: readonly Float32Array[], size: number): k.Tensor {
  const each = 3 * size * size;
  const flat = new Float32Array(images.length * each);
  images.forEach((im, i) => {
    if (im.length !== each) throw new k.ShapeError(`chwBatch: image ${i} has ${im.length} values, 3×${size}×${size} has ${each}`);
    flat.set(im, i * each);
  });
  return k.tensor(flat, { shape: [images.length, 3, size, size] });
}

/** One stride-2 step: GroupNorm + SiLU, then a 3×3 convolution that halves the side. */
class DownBlock extends Module {
  readonly norm: GroupNorm;
  readonly conv: Conv2d;
  constructor(inCh: number, outCh: number, groups: number, o: FactoryOptions) {
    super();
    this.norm = this.registerModule('norm', new GroupNorm(groups, inCh, o));
    this.conv = this.registerModule('conv', new Conv2d(inCh, outCh, 3, { ...o, stride: 2, padding: 1 }));
  }
  forward(x: k.Tensor): k.Tensor {
    return this.conv.forward(normSilu(this.norm, x));
  }
}

/**
 * A small CNN that reads an image of the world (32×32 RGB in [−1, 1], `toChw`'s layout) into its
 * class, colour, context and whether it is the DreamBooth subject: `conv_in`, stride-2
 * GroupNorm–SiLU–conv steps down to 4×4, one more 3×3 convolution there (so every output sees
 * the whole object), global average pooling and a linear head each. About 70k parameters.
 * Trained by `scripts/train-scorer.ts` on renders, their VAE round trips and hard negatives.
 *
 * @example
 * ```ts
 * const scorer = await WorldScorer.fromPretrained('packages/world/scorer');
 * const x = k.tensor(toChw(renderScene(subjectScene('dots', 0, 1)), 32), { shape: [1, 3, 32, 32] });
 * const [s] = await scorer.score(x); // { shape: 'star', color: 'other', context: 'dots', subject: true, … }
 * ```
 */
export class WorldScorer extends Module {
  readonly config: ScorerConfig;
  readonly convIn: Conv2d;
  private readonly downBlocks: ModuleList<DownBlock>;
  readonly normMid: GroupNorm;
  readonly convMid: Conv2d;
  readonly normOut: GroupNorm;
  readonly shapeHead: Linear;
  readonly colorHead: Linear;
  readonly contextHead: Linear;
  readonly subjectHead: Linear;

  constructor(config: ScorerConfigInput = {}, options: FactoryOptions = {}) {
    super();
    const c = (this.config = parseScorerConfig(config));
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    const ch = c.block_out_channels;
    const g = c.norm_num_groups;
    const last = ch[ch.length - 1];
    this.convIn = this.registerModule('conv_in', new Conv2d(c.in_channels, ch[0], 3, { ...f, padding: 1 }));
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(ch.slice(1).map((out, i) => new DownBlock(ch[i], out, g, f))));
    this.normMid = this.registerModule('norm_mid', new GroupNorm(g, last, f));
    this.convMid = this.registerModule('conv_mid', new Conv2d(last, last, 3, { ...f, padding: 1 }));
    this.normOut = this.registerModule('norm_out', new GroupNorm(g, last, f));
    this.shapeHead = this.registerModule('shape_head', new Linear(last, SCORER_LABELS.shape.length, f));
    this.colorHead = this.registerModule('color_head', new Linear(last, SCORER_LABELS.color.length, f));
    this.contextHead = this.registerModule('context_head', new Linear(last, SCORER_LABELS.context.length, f));
    this.subjectHead = this.registerModule('subject_head', new Linear(last, 2, f));
  }

  /**
   * The logits of each head for images [N, 3, size, size] in [−1, 1].
   *
   * @example
   * ```ts
   * const { shape, subject } = scorer.forward(x); // [N, 4], [N, 2]
   * ```
   */
  forward(x: k.Tensor): ScorerLogits {
    const c = this.config;
    if (x.ndim !== 4 || x.shape[1] !== c.in_channels || x.shape[2] !== c.sample_size || x.shape[3] !== c.sample_size) {
      throw new k.ShapeError(
        `WorldScorer.forward: input must be [N, ${c.in_channels}, ${c.sample_size}, ${c.sample_size}], got [${x.shape.join(', ')}]`,
      );
    }
    let h = this.convIn.forward(x);
    for (const b of this.downBlocks) h = b.forward(h);
    h = h.add(this.convMid.forward(normSilu(this.normMid, h)));
    const pooled = normSilu(this.normOut, h).mean([2, 3]);
    return {
      shape: this.shapeHead.forward(pooled),
      color: this.colorHead.forward(pooled),
      context: this.contextHead.forward(pooled),
      subject: this.subjectHead.forward(pooled),
    };
  }

  /**
   * Reads each image of a batch [N, 3, size, size] (values in [−1, 1]): the arg-max label of each
   * head and the probability that it is the subject. Runs without gradients.
   *
   * @example
   * ```ts
   * const scores = await scorer.score(images); // one Score per image
   * scores.filter((s) => s.subject).length;
   * ```
   */
  async score(x: k.Tensor): Promise<Score[]> {
    const probs = k.noGrad(() => {
      const l = this.forward(x);
      return [l.shape, l.color, l.context, l.subject].map((t) => k.keep(k.softmax(t, 1)));
    });
    try {
      const [shape, color, context, subject] = await Promise.all(probs.map((p) => p.data() as Promise<Float32Array>));
      const argmax = (p: Float32Array, n: number, i: number) => {
        let best = 0;
        for (let j = 1; j < n; j++) if (p[i * n + j] > p[i * n + best]) best = j;
        return best;
      };
      const L = SCORER_LABELS;
      return Array.from({ length: x.shape[0] }, (_, i) => ({
        shape: L.shape[argmax(shape, L.shape.length, i)],
        color: L.color[argmax(color, L.color.length, i)],
        context: L.context[argmax(context, L.context.length, i)],
        subject: subject[i * 2 + 1] >= 0.5,
        subjectProb: subject[i * 2 + 1],
      }));
    } finally {
      for (const p of probs) p.dispose();
    }
  }

  /**
   * Loads a scorer folder (`config.json` and `model.safetensors`), tensor by tensor into an
   * uninitialised model. Node only; `loadWorldScorer()` of `@kiln/world/node` loads the committed one.
   *
   * @example
   * ```ts
   * const scorer = await WorldScorer.fromPretrained('packages/world/scorer');
   * ```
   */
  static async fromPretrained(dir: string, options: { dtype?: k.DType } = {}): Promise<WorldScorer> {
    const { loadPretrained } = await import('@kiln/nn/node');
    const { model } = await loadPretrained(dir, {
      weightsName: 'model',
      config: parseScorerConfig,
      build: (config) => new WorldScorer(config, { dtype: options.dtype }),
    });
    model.eval();
    return model;
  }

  /**
   * Writes `config.json` and `model.safetensors` into `dir`, each atomically; `dtype: 'float16'`
   * halves the file. Node only.
   *
   * @example
   * ```ts
   * await scorer.savePretrained('out/scorer', { dtype: 'float16' });
   * ```
   */
  async savePretrained(dir: string, options: { dtype?: 'float32' | 'float16' } = {}): Promise<void> {
    const { savePretrained } = await import('@kiln/nn/node');
    const state = this.stateDict();
    const cast = options.dtype && options.dtype !== 'float32';
    const weights = cast ? k.noGrad(() => Object.fromEntries(Object.entries(state).map(([n, t]) => [n, t.to(options.dtype!)]))) : state;
    try {
      await savePretrained(dir, { config: { _class_name: 'WorldScorer', ...this.config }, weights, weightsName: 'model' });
    } finally {
      if (cast) for (const t of Object.values(weights)) t.dispose();
    }
  }
}
