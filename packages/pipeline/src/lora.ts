import { applyLoraWeights, loraLayers, loraNames, mergeLora, removeLora, setLoraScale, unmergeLora } from '@kiln/nn';
import type { LoraComponent, LoraWeights, Module } from '@kiln/nn';
import { PipelineError } from './errors.js';

/**
 * Options of `StableDiffusionPipeline.loadLoraWeights` (diffusers' `load_lora_weights` arguments).
 *
 * @example
 * ```ts
 * await pipe.loadLoraWeights('loras/', { weightName: 'watercolor.safetensors', adapterName: 'style', scale: 0.6 });
 * ```
 */
export interface LoadLoraOptions {
  /** Multiplier of the adapter (A1111's `<lora:name:0.8>`, diffusers' `set_adapters` weight; default 1). */
  scale?: number;
  /** Name to address it by (diffusers' `adapter_name`; default `default_N`, N the adapters already loaded). */
  adapterName?: string;
  /** File to read when the source is a folder (diffusers' `weight_name`; default `pytorch_lora_weights.safetensors`). */
  weightName?: string;
}

/**
 * One loaded adapter: its name, its scale, and the components it adapts.
 *
 * @example
 * ```ts
 * for (const { name, scale, components } of pipe.loraAdapters()) console.log(name, scale, components.join('+'));
 * ```
 */
export interface LoraAdapterInfo {
  name: string;
  scale: number;
  components: LoraComponent[];
  /** Whether it is folded into the base weights (`fuseLora`). */
  fused: boolean;
}

/**
 * The models a pipeline's LoRA files address, under their diffusers component names.
 *
 * @example
 * ```ts
 * const host: LoraHost = { unet: pipe.unet, text_encoder: pipe.textEncoder };
 * ```
 */
export type LoraHost = Readonly<Record<'unet' | 'text_encoder', Module>>;

const entries = (host: LoraHost): [LoraComponent, Module][] => [
  ['unet', host.unet],
  ['text_encoder', host.text_encoder],
];

/** Every adapter on the pipeline's models, in load order. */
export function listAdapters(host: LoraHost): LoraAdapterInfo[] {
  const out = new Map<string, LoraAdapterInfo>();
  for (const [component, model] of entries(host)) {
    for (const name of loraNames(model)) {
      const first = loraLayers(model, name)[0]![1];
      const info = out.get(name) ?? { name, scale: first.scale, components: [], fused: first.merged };
      info.components.push(component);
      out.set(name, info);
    }
  }
  return [...out.values()];
}

function checkScale(scale: number, what: string): void {
  if (!Number.isFinite(scale)) throw new PipelineError(`${what}: scale must be a finite number, got ${scale}`);
}

/**
 * Attaches `lora` to the pipeline's UNet and text encoder as one adapter, checked as a whole
 * first (nothing is attached when any layer does not fit). Returns the adapter's name.
 */
export function attachLora(host: LoraHost, lora: LoraWeights, file: string, options: LoadLoraOptions): string {
  const scale = options.scale ?? 1;
  checkScale(scale, `loadLoraWeights(${file})`);
  const taken = listAdapters(host).map((a) => a.name);
  const name = options.adapterName ?? `default_${taken.length}`;
  if (!/^[A-Za-z0-9_-]+$/.test(name))
    throw new PipelineError(`loadLoraWeights(${file}): adapterName '${name}' must be letters, digits, '_' or '-'`);
  if (taken.includes(name))
    throw new PipelineError(
      `loadLoraWeights(${file}): an adapter named '${name}' is already loaded; unload it (unloadLoraWeights('${name}')) or pick another adapterName`,
    );
  applyLoraWeights(host, lora, { name, scale, file });
  // An adapter built for inference: the models are in eval mode, the adapters follow them.
  for (const [, model] of entries(host)) for (const [, l] of loraLayers(model, name)) l.training = model.training;
  return name;
}

/** The components that hold adapter `name` (all adapters' components when `name` is undefined); throws if none. */
function holders(host: LoraHost, name: string | undefined, what: string): Module[] {
  const models = entries(host)
    .filter(([, m]) => (name === undefined ? loraNames(m).length > 0 : loraNames(m).includes(name)))
    .map(([, m]) => m);
  if (models.length === 0) {
    const loaded = listAdapters(host).map((a) => a.name);
    throw new PipelineError(
      `${what}: ${name === undefined ? 'no LoRA is loaded' : `no LoRA named '${name}' is loaded`}${loaded.length ? ` (loaded: ${loaded.join(', ')})` : ''}`,
    );
  }
  return models;
}

/** Sets adapter `name`'s multiplier (refused while it is fused). */
export function setAdapterScale(host: LoraHost, name: string, scale: number): void {
  checkScale(scale, `setLoraScale('${name}')`);
  const models = holders(host, name, `setLoraScale('${name}')`);
  if (listAdapters(host).find((a) => a.name === name)!.fused)
    throw new PipelineError(`setLoraScale('${name}'): the adapter is fused; unfuseLora('${name}') first`);
  for (const m of models) setLoraScale(m, name, scale);
}

/** Folds adapter `name` (or all) into the base weights at its current scale. */
export function fuse(host: LoraHost, name: string | undefined): void {
  for (const m of holders(host, name, 'fuseLora')) mergeLora(m, name);
}

/** Takes adapter `name` (or all) out of the base weights again. */
export function unfuse(host: LoraHost, name: string | undefined): void {
  for (const m of holders(host, name, 'unfuseLora')) unmergeLora(m, name);
}

/** Removes adapter `name` (or all; then a pipeline without adapters is no error) and frees its weights. */
export function unload(host: LoraHost, name: string | undefined): void {
  const models = name === undefined ? entries(host).map(([, m]) => m) : holders(host, name, `unloadLoraWeights('${name}')`);
  for (const m of models) if (loraNames(m).length > 0) removeLora(m, name);
}
