import { Conv2d } from '../layers/conv2d.js';
import { Linear } from '../layers/linear.js';
import type { Module } from '../module.js';
import type { LoraTarget } from './lora-layer.js';

/**
 * Which layers get an adapter, matched against each `Linear`/`Conv2d`'s dotted module path:
 * - a string, PEFT's `target_modules` rule: the path equals it or ends with `.` + it
 *   (`'to_q'`, `'to_out.0'`);
 * - a RegExp, tested against the whole path;
 * - a predicate on the path and the layer.
 *
 * @example
 * ```ts
 * const targets: LoraTargetPattern[] = ['to_q', /attn2\.to_(k|v)$/, (path, layer) => path.endsWith('proj_out') && layer instanceof Linear];
 * ```
 */
export type LoraTargetPattern = string | RegExp | ((path: string, layer: LoraTarget) => boolean);

const isPointwise = (layer: LoraTarget): boolean => layer instanceof Linear || (layer.weight.shape[2] === 1 && layer.weight.shape[3] === 1);

/**
 * The target sets diffusers and kohya use for Stable Diffusion.
 *
 * - `unetAttention`: `train_dreambooth_lora.py`'s UNet targets, the attention projections
 *   (`add_k_proj`/`add_v_proj` exist only in added-KV attention and match nothing in SD 1.x).
 * - `textEncoderAttention`: its `--train_text_encoder` targets, CLIP's attention projections.
 * - `kohyaUnet`: kohya's `networks.lora` default, every Linear and 1×1 Conv2d inside a
 *   Transformer2DModel (`attentions.N`: proj_in, proj_out, attention projections, feed-forward).
 * - `kohyaUnetConv`: kohya's `conv_dim` extension (LoCon), every Linear and Conv2d (3×3
 *   included) inside ResnetBlock2D, Downsample2D and Upsample2D.
 * - `kohyaTextEncoder`: kohya's text-encoder set, CLIPAttention and CLIPMLP (`fc1`, `fc2`).
 *
 * @example
 * ```ts
 * injectLora(unet, { targets: [...LORA_TARGETS.kohyaUnet, ...LORA_TARGETS.kohyaUnetConv], rank: 8, convRank: 4 });
 * ```
 */
export const LORA_TARGETS = {
  unetAttention: ['to_q', 'to_k', 'to_v', 'to_out.0', 'add_k_proj', 'add_v_proj'],
  textEncoderAttention: ['q_proj', 'k_proj', 'v_proj', 'out_proj'],
  kohyaUnet: [(path: string, layer: LoraTarget) => /(^|\.)attentions\.\d+\./.test(path) && isPointwise(layer)],
  kohyaUnetConv: [/(^|\.)(resnets|downsamplers|upsamplers)\.\d+\./],
  kohyaTextEncoder: [/(^|\.)self_attn\.(q|k|v|out)_proj$/, /(^|\.)mlp\.fc[12]$/],
} as const satisfies Record<string, readonly LoraTargetPattern[]>;

/** Whether `path` (a Linear or Conv2d) is selected by any of `patterns`. @example matchesTarget('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', linear, LORA_TARGETS.unetAttention); // true */
export function matchesTarget(path: string, layer: LoraTarget, patterns: readonly LoraTargetPattern[]): boolean {
  return patterns.some((p) => {
    if (typeof p === 'string') return path === p || path.endsWith(`.${p}`);
    if (p instanceof RegExp) return new RegExp(p.source, p.flags.replace('g', '')).test(path);
    return p(path, layer);
  });
}

/**
 * Every `Linear` and `Conv2d` of `model` with its path, skipping the layers inside adapters
 * (a LoRA's own weights are never adapted).
 */
export function adaptableLayers(model: Module): [string, LoraTarget][] {
  const inside = new Set<Module>();
  const visit = (m: Module): void => {
    for (const [, adapter] of m.namedAdapters()) for (const [, sub] of adapter.namedModules()) inside.add(sub);
  };
  const all = model.namedModules();
  for (const [, m] of all) visit(m);
  return all.filter(([, m]) => !inside.has(m) && (m instanceof Linear || m instanceof Conv2d)) as [string, LoraTarget][];
}
