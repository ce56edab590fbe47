import * as k from '@kiln/tensor-core';
import { Conv2d } from '../layers/conv2d.js';
import { Linear } from '../layers/linear.js';
import { Module } from '../module.js';
import { injectLora, loraLayers } from './inject.js';
import type { LoraAdapter } from './inject.js';
import { LORA_COMPONENTS, kohyaName } from './keys.js';
import type { LoraComponent } from './keys.js';
import { LoraFormatError, serializeLoraWeights, splitComponent } from './format.js';
import type { LoraFormat, LoraModuleWeights, LoraWeights } from './format.js';
import { adaptableLayers } from './targets.js';

/**
 * The models a LoRA file covers, by diffusers component name. A bare module is taken as the UNet.
 *
 * @example
 * ```ts
 * extractLoraWeights({ unet, text_encoder: textEncoder }); extractLoraWeights(unet); // components, or one model
 * ```
 */
export type LoraModels = Module | Partial<Record<LoraComponent, Module>>;

const componentsOf = (models: LoraModels): [LoraComponent, Module][] =>
  models instanceof Module
    ? [['unet', models]]
    : LORA_COMPONENTS.flatMap((c) => (models[c] ? [[c, models[c]] as [LoraComponent, Module]] : []));

/**
 * kohya name → component and module path for every adaptable layer of `models`, so kohya files
 * resolve exactly even where '_' is ambiguous.
 *
 * @example
 * ```ts
 * const known = kohyaNameMap({ unet, text_encoder: textEncoder });
 * ```
 */
export function kohyaNameMap(models: LoraModels): Map<string, { component: LoraComponent; path: string }> {
  const out = new Map<string, { component: LoraComponent; path: string }>();
  for (const [component, model] of componentsOf(models)) {
    for (const [path] of adaptableLayers(model)) out.set(kohyaName(component, path), { component, path });
  }
  return out;
}

/**
 * The adapter `name` of `models` as {@link LoraWeights} (live tensors, not copies).
 *
 * @example
 * ```ts
 * const lora = extractLoraWeights({ unet }, 'default');
 * ```
 */
export function extractLoraWeights(models: LoraModels, name = 'default', metadata: Readonly<Record<string, string>> = {}): LoraWeights {
  const modules = new Map<string, LoraModuleWeights>();
  for (const [component, model] of componentsOf(models)) {
    for (const [path, l] of loraLayers(model, name))
      modules.set(`${component}.${path}`, { down: l.loraA.weight, up: l.loraB.weight, alpha: l.alpha });
  }
  if (modules.size === 0) throw new k.ArgumentError(`extractLoraWeights: no LoRA adapter named '${name}' in the given models`);
  return { format: 'diffusers', modules, metadata };
}

/**
 * The state dict and header of adapter `name` in `format` (default diffusers), ready for
 * `saveSafetensors`: what `save_lora_weights` or kohya's `train_network.py` would write.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = loraStateDict({ unet, text_encoder: te }, { format: 'kohya', metadata: { ss_output_name: 'sks' } });
 * ```
 */
export function loraStateDict(
  models: LoraModels,
  options: { format?: LoraFormat; name?: string; metadata?: Readonly<Record<string, string>>; foldAlpha?: boolean } = {},
): { tensors: Map<string, k.Tensor>; metadata: Record<string, string> } {
  return serializeLoraWeights(extractLoraWeights(models, options.name, options.metadata), options.format ?? 'diffusers', {
    foldAlpha: options.foldAlpha,
  });
}

/** Options of {@link applyLoraWeights}. @example applyLoraWeights({ unet, text_encoder: textEncoder }, lora, { name: 'style', scale: 0.8 }); */
export interface ApplyLoraOptions {
  /** Adapter name (default `'default'`); load several files under different names to stack them. */
  name?: string;
  /** Multiplier (diffusers' `cross_attention_kwargs={"scale": …}` / A1111's `<lora:x:0.8>`; default 1). */
  scale?: number;
  /** Freeze the base parameters (to continue training the adapter; default false). */
  freezeBase?: boolean;
  /** The source, named in errors. */
  file?: string;
}

function expectedShapes(layer: Linear | Conv2d, rank: number): { down: number[]; up: number[] } {
  if (layer instanceof Conv2d) {
    const [, , kh, kw] = layer.weight.shape;
    return { down: [rank, layer.inChannels, kh!, kw!], up: [layer.outChannels, rank, 1, 1] };
  }
  return { down: [rank, layer.inFeatures], up: [layer.outFeatures, rank] };
}

/**
 * Attaches `lora` to `models` as adapter `name`, with each layer's rank and alpha from the file
 * and weights copied in (cast to the base weight's dtype). Everything is checked first (each
 * component given, each path a Linear or Conv2d of matching shape): on any problem a
 * {@link LoraFormatError} lists them all and nothing is attached. Returns one adapter per component.
 *
 * @example
 * ```ts
 * applyLoraWeights({ unet, text_encoder: te }, lora, { name: 'style', scale: 0.8 });
 * ```
 */
export function applyLoraWeights(models: LoraModels, lora: LoraWeights, options: ApplyLoraOptions = {}): Map<LoraComponent, LoraAdapter> {
  const file = options.file ?? 'LoRA weights';
  const given = new Map(componentsOf(models));
  const issues: string[] = [];
  const plan = new Map<LoraComponent, Map<string, LoraModuleWeights>>();
  for (const [key, m] of lora.modules) {
    const { component, path } = splitComponent(key)!;
    const model = given.get(component);
    if (!model) {
      issues.push(`'${key}' is for the ${component}, which was not given`);
      continue;
    }
    let layer: Module;
    try {
      layer = model.getSubmodule(path);
    } catch {
      issues.push(`'${key}': ${model.constructor.name} has no module '${path}'`);
      continue;
    }
    if (!(layer instanceof Linear || layer instanceof Conv2d)) {
      issues.push(`'${key}': '${path}' is a ${layer.constructor.name}, not a Linear or Conv2d`);
      continue;
    }
    const want = expectedShapes(layer, m.down.shape[0]!);
    const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
    if (!same(m.down.shape, want.down) || !same(m.up.shape, want.up)) {
      issues.push(
        `'${key}': down [${m.down.shape.join(', ')}] / up [${m.up.shape.join(', ')}], the layer needs [${want.down.join(', ')}] / [${want.up.join(', ')}]`,
      );
      continue;
    }
    if (m.down.device !== layer.weight.device || m.up.device !== layer.weight.device) {
      issues.push(`'${key}': weights are on backend ${m.down.device}, the model on ${layer.weight.device}`);
      continue;
    }
    let forComponent = plan.get(component);
    if (!forComponent) plan.set(component, (forComponent = new Map()));
    forComponent.set(path, m);
  }
  if (issues.length > 0) throw new LoraFormatError(file, issues);
  const adapters = new Map<LoraComponent, LoraAdapter>();
  for (const [component, paths] of plan) {
    const model = given.get(component)!;
    const rankPattern = Object.fromEntries([...paths].map(([p, m]) => [p, m.down.shape[0]!]));
    const alphaPattern = Object.fromEntries([...paths].map(([p, m]) => [p, m.alpha ?? m.down.shape[0]!]));
    const adapter = injectLora(model, {
      targets: [(path) => paths.has(path)],
      name: options.name,
      scale: options.scale,
      rankPattern,
      alphaPattern,
      freezeBase: options.freezeBase ?? false,
    });
    k.noGrad(() =>
      k.tidy(() => {
        for (const [path, l] of adapter.layers) {
          const m = paths.get(path)!;
          const to = l.loraA.weight.dtype;
          l.loraA.weight.assign_(m.down.dtype === to ? k.clone(m.down) : k.cast(m.down, to));
          l.loraB.weight.assign_(m.up.dtype === to ? k.clone(m.up) : k.cast(m.up, to));
        }
      }),
    );
    adapters.set(component, adapter);
  }
  return adapters;
}
