import * as k from '@kiln/tensor-core';
import type { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { LoraLayer } from './lora-layer.js';
import type { LoraOptions } from './lora-layer.js';
import { adaptableLayers, matchesTarget } from './targets.js';
import type { LoraTargetPattern } from './targets.js';

/** Options of {@link injectLora}. @example const adapter = injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 8, name: 'style' }); */
export interface InjectLoraOptions extends LoraOptions {
  /** Which layers to adapt (see `LORA_TARGETS`). */
  targets: readonly LoraTargetPattern[];
  /** Adapter name, so several can be stacked and addressed (default `'default'`, as PEFT). */
  name?: string;
  /** Rank for convolutions with a kernel larger than 1×1 (kohya's `conv_dim`; default `rank`). */
  convRank?: number;
  /** Alpha for those convolutions (kohya's `conv_alpha`; default `alpha`, or `convRank`). */
  convAlpha?: number;
  /** Per-path rank and alpha (diffusers' `rank_pattern` / `alpha_pattern`, exact paths). */
  rankPattern?: Readonly<Record<string, number>>;
  alphaPattern?: Readonly<Record<string, number>>;
  /**
   * Freeze every parameter of `model` that is not a LoRA weight (default true), so only the
   * adapters train.
   */
  freezeBase?: boolean;
}

/**
 * What {@link injectLora} attached: the adapter layers by module path, and their parameters.
 *
 * @example
 * ```ts
 * const adapter = injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4 });
 * const opt = new AdamW(adapter.parameters(), { lr: 1e-4 }); // train only the LoRA weights
 * ```
 */
export interface LoraAdapter {
  readonly name: string;
  /** Module path of each adapted layer → its LoRA. */
  readonly layers: ReadonlyMap<string, LoraLayer>;
  /** lora_A and lora_B of every layer, in path order: give these to the optimizer. */
  parameters(): Parameter[];
}

/** The key an adapter is attached under on its host layer. */
export const loraSlot = (name: string): string => `lora_${name}`;

/**
 * Attaches a LoRA adapter named `name` to every `Linear`/`Conv2d` of `model` that `targets`
 * selects, without rebuilding the model: base state-dict keys stay as they are and the adapter
 * weights live beside them. Base parameters are frozen (`requiresGrad = false`) unless
 * `freezeBase: false`. lora_A is kaiming-uniform, lora_B zero (the model's output is unchanged
 * until training moves B). Several adapters (different names) stack; each scales by
 * `scale · alpha / rank`.
 *
 * @example
 * ```ts
 * const lora = injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4, alpha: 4, generator: new k.Generator(0) });
 * const opt = new AdamW(lora.parameters(), { lr: 1e-4 });
 * ```
 */
export function injectLora(model: Module, options: InjectLoraOptions): LoraAdapter {
  const name = options.name ?? 'default';
  if (options.init !== undefined && options.init !== 'kaiming' && options.init !== 'gaussian') {
    throw new k.ArgumentError(`injectLora: init must be 'kaiming' or 'gaussian', got ${JSON.stringify(options.init)}`);
  }
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new k.ArgumentError(`injectLora: adapter name '${name}' must be letters, digits, '_' or '-'`);
  const selected = adaptableLayers(model).filter(([path, layer]) => matchesTarget(path, layer, options.targets));
  if (selected.length === 0) {
    throw new k.ArgumentError(
      `injectLora: no Linear or Conv2d of ${model.constructor.name} matches the targets [${options.targets.map(String).join(', ')}]`,
    );
  }
  for (const [path, layer] of selected) {
    if (layer.namedAdapters().some(([slot]) => slot === loraSlot(name)))
      throw new k.ArgumentError(`injectLora: '${path}' already has an adapter named '${name}'`);
  }
  const generator = options.generator ?? new k.Generator(0);
  const layers = new Map<string, LoraLayer>();
  for (const [path, layer] of selected) {
    const wide = layer.weight.shape.length === 4 && (layer.weight.shape[2] !== 1 || layer.weight.shape[3] !== 1);
    const rank = options.rankPattern?.[path] ?? (wide ? (options.convRank ?? options.rank) : options.rank) ?? 4;
    const alpha =
      options.alphaPattern?.[path] ??
      (wide ? (options.convAlpha ?? (options.convRank !== undefined ? options.convRank : options.alpha)) : options.alpha) ??
      rank;
    const lora = new LoraLayer(layer, { ...options, rank, alpha, generator });
    lora.training = layer.training;
    layers.set(path, layer.addAdapter(loraSlot(name), lora));
  }
  if (options.freezeBase ?? true) {
    const adapterParams = new Set(allLoraLayers(model).flatMap(([, , l]) => l.adapterParameters()));
    for (const p of model.parameters()) if (!adapterParams.has(p)) p.requiresGrad_(false);
  }
  return { name, layers, parameters: () => [...layers.values()].flatMap((l) => l.adapterParameters()) };
}

/** Every LoRA of `model` as [host path, adapter name, layer]. */
function allLoraLayers(model: Module): [string, string, LoraLayer][] {
  const out: [string, string, LoraLayer][] = [];
  for (const [path, m] of model.namedModules()) {
    for (const [slot, adapter] of m.namedAdapters())
      if (adapter instanceof LoraLayer) out.push([path, slot.slice('lora_'.length), adapter]);
  }
  return out;
}

/**
 * The LoRA layers of `model` (of adapter `name`, or all) as [host module path, layer].
 *
 * @example
 * ```ts
 * loraLayers(unet, 'default').length; // 32 for SD 1.5's attention targets
 * ```
 */
export function loraLayers(model: Module, name?: string): [string, LoraLayer][] {
  return allLoraLayers(model)
    .filter(([, n]) => name === undefined || n === name)
    .map(([path, , l]) => [path, l]);
}

/**
 * Names of the LoRA adapters attached to `model`, in first-seen order.
 *
 * @example
 * ```ts
 * loraNames(unet); // ['default', 'style']
 * ```
 */
export function loraNames(model: Module): string[] {
  return [...new Set(allLoraLayers(model).map(([, n]) => n))];
}

function layersOf(model: Module, name: string | undefined, what: string): LoraLayer[] {
  const layers = loraLayers(model, name).map(([, l]) => l);
  if (layers.length === 0)
    throw new k.ArgumentError(`${what}: ${model.constructor.name} has no LoRA adapter${name === undefined ? '' : ` named '${name}'`}`);
  return layers;
}

/**
 * Folds adapter `name` (or every adapter) into the base weights (diffusers' `fuse_lora`).
 *
 * @example
 * ```ts
 * mergeLora(unet); // same outputs, no adapter cost at inference
 * ```
 */
export function mergeLora(model: Module, name?: string): void {
  for (const l of layersOf(model, name, 'mergeLora')) l.merge();
}

/**
 * Takes adapter `name` (or every adapter) out of the base weights again (`unfuse_lora`).
 *
 * @example
 * ```ts
 * unmergeLora(unet);
 * ```
 */
export function unmergeLora(model: Module, name?: string): void {
  for (const l of layersOf(model, name, 'unmergeLora')) l.unmerge();
}

/**
 * Sets the multiplier of adapter `name` on every layer (diffusers' `set_adapters` weight).
 *
 * @example
 * ```ts
 * setLoraScale(unet, 'style', 0.6);
 * ```
 */
export function setLoraScale(model: Module, name: string, scale: number): void {
  for (const l of layersOf(model, name, 'setLoraScale')) l.setScale(scale);
}

/**
 * Turns adapter `name` (or every adapter) off or on without removing it.
 *
 * @example
 * ```ts
 * setLoraEnabled(unet, false); // the base model's outputs
 * ```
 */
export function setLoraEnabled(model: Module, enabled: boolean, name?: string): void {
  for (const l of layersOf(model, name, 'setLoraEnabled')) l.enabled = enabled;
}

/**
 * Detaches adapter `name` (or every adapter) and frees its weights; a merged adapter is
 * unmerged first, so the base weights are restored. Base parameters keep their `requiresGrad`.
 *
 * @example
 * ```ts
 * removeLora(unet, 'style');
 * ```
 */
export function removeLora(model: Module, name?: string): void {
  for (const [path, n, l] of allLoraLayers(model)) {
    if (name !== undefined && n !== name) continue;
    l.unmerge();
    model.getSubmodule(path).removeAdapter(loraSlot(n)).dispose();
  }
}
