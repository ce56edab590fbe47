// Node only: reached through `@kiln/nn/node`. One place for the files of a model folder (diffusers'
// and transformers' layouts), used by every model package's fromPretrained/savePretrained.
import type * as k from '@kiln/tensor-core';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import { ConfigError, SafetensorsError, configIssueLines } from '../errors.js';
import { loadWeights } from '../load-weights.js';
import type { LoadWeightsOptions } from '../load-weights.js';
import type { Module } from '../module.js';
import { openSafetensors, saveSafetensors } from '../safetensors/node.js';
import type { SafetensorsReader } from '../safetensors/node.js';
import { SAFETENSORS_DTYPE_SIZES, SAVE_DTYPES } from '../safetensors/header.js';
import { skipInit } from '../skip-init.js';
import type { LoadStateDictResult } from '../state-dict.js';
import { entriesOf, nullRecord } from '../state-dict.js';
import { writeFileAtomic } from './atomic.js';
import { WEIGHTS_NAMES } from './weights-names.js';

export { WEIGHTS_NAMES };

/** Where in a model folder the weights are. @example await loadPretrained('./sd15', { subfolder: 'unet', variant: 'fp16', config: UNetConfigSchema, build: (c) => new UNet2DConditionModel(c) }); */
export interface WeightsLocation {
  /** A folder inside `dir` (`'unet'`, `'text_encoder'`). */
  subfolder?: string;
  /** A weights variant such as `'fp16'`: `model.fp16.safetensors`, `model.safetensors.index.fp16.json`. */
  variant?: string;
  /** Base name(s) to look for, in order (default: both of {@link WEIGHTS_NAMES}, diffusers' first). */
  weightsName?: string | readonly string[];
}

/**
 * A file name with a variant inserted before its last extension, as diffusers and transformers
 * name them (`_add_variant`).
 *
 * @example
 * ```ts
 * variantFileName('diffusion_pytorch_model.safetensors', 'fp16'); // 'diffusion_pytorch_model.fp16.safetensors'
 * variantFileName('model.safetensors.index.json', 'fp16'); // 'model.safetensors.index.fp16.json'
 * ```
 */
export function variantFileName(file: string, variant?: string): string {
  if (!variant) return file;
  const parts = file.split('.');
  parts.splice(parts.length - 1, 0, variant);
  return parts.join('.');
}

const isFile = async (p: string) => (await stat(p).catch(() => null))?.isFile() ?? false;

/**
 * `dir/subfolder`, or `dir`.
 *
 * @example
 * ```ts
 * modelRoot('sd15', 'unet'); // 'sd15/unet'
 * ```
 */
export function modelRoot(dir: string, subfolder?: string): string {
  return subfolder ? join(dir, subfolder) : dir;
}

/**
 * The weights file of a model folder: for each base name in order, `<name>[.<variant>].safetensors`
 * and then its sharded index `<name>.safetensors.index[.<variant>].json`. Throws a
 * `SafetensorsError` (`not_found`) that lists every file looked for.
 *
 * @example
 * ```ts
 * await findWeightsFile('sd15', { subfolder: 'unet', variant: 'fp16' }); // 'sd15/unet/diffusion_pytorch_model.fp16.safetensors'
 * ```
 */
export async function findWeightsFile(dir: string, location: WeightsLocation = {}): Promise<string> {
  const root = modelRoot(dir, location.subfolder);
  const names = location.weightsName === undefined ? [WEIGHTS_NAMES.diffusers, WEIGHTS_NAMES.transformers] : [location.weightsName].flat();
  const candidates = names.flatMap((n) => [
    variantFileName(`${n}.safetensors`, location.variant),
    variantFileName(`${n}.safetensors.index.json`, location.variant),
  ]);
  for (const c of candidates) if (await isFile(join(root, c))) return join(root, c);
  throw new SafetensorsError('not_found', `no weights file in this folder; looked for ${candidates.join(', ')}`, root);
}

/**
 * Opens a model folder's weights (single file or sharded, see {@link findWeightsFile}) for
 * `loadWeights`; only headers are read. Close it when done (or `await using`).
 *
 * @example
 * ```ts
 * await using weights = await openWeights('sd15', { subfolder: 'vae' });
 * await loadWeights(vae, weights);
 * ```
 */
export async function openWeights(dir: string, location: WeightsLocation = {}): Promise<SafetensorsReader> {
  return openSafetensors(await findWeightsFile(dir, location));
}

/** How a config is validated: a zod schema, or a function that throws its own typed error. @example await readConfig('unet/config.json', UNetConfigSchema); await readConfig('unet/config.json', (raw, file) => parseUNetConfig(raw, file)); */
export type ConfigParser<C> = z.ZodType<C> | ((raw: unknown, file: string) => C);

/**
 * Reads a JSON file (a model's `config.json`) and validates it. Missing, unreadable and non-JSON
 * files and schema failures are a {@link ConfigError} naming the file and each bad field.
 *
 * @example
 * ```ts
 * const config = await readConfig('sd15/unet/config.json', UNetConfigSchema);
 * ```
 */
export async function readConfig<C>(file: string, parse: ConfigParser<C>): Promise<C> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? (err as Error).message})`], { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid JSON: ${(err as Error).message}`], { cause: err });
  }
  if (typeof parse === 'function') return parse(raw, file);
  const r = parse.safeParse(raw);
  if (!r.success) throw new ConfigError(file, configIssueLines(r.error));
  return r.data;
}

/** Options of {@link loadPretrained}. @example const { model } = await loadPretrained(dir, { subfolder: 'vae', config: VAEConfigSchema, build: (c) => new AutoencoderKL(c) }); */
export interface LoadPretrainedOptions<C, M extends Module> extends WeightsLocation, Omit<LoadWeightsOptions, 'prefix'> {
  /** Validates `config.json`. */
  config: ConfigParser<C>;
  /** Makes the model from its config; it runs inside `skipInit`, so nothing is initialised. */
  build: (config: C) => M;
}

/**
 * The whole of a `fromPretrained`: reads and validates `config.json`, builds the model without
 * initialising it, and loads the weights file (single or sharded, any variant) tensor by tensor,
 * converting to the dtype the model was built with. Peak memory is the model's size. On any error
 * the half-built model is disposed.
 *
 * @example
 * ```ts
 * static async fromPretrained(dir: string, o: { subfolder?: string; variant?: string; dtype?: k.DType } = {}) {
 *   const { model } = await loadPretrained(dir, {
 *     ...o,
 *     weightsName: 'diffusion_pytorch_model',
 *     config: UNetConfigSchema,
 *     build: (config) => new UNet2DConditionModel(config, { dtype: o.dtype }),
 *   });
 *   return model;
 * }
 * ```
 */
export async function loadPretrained<C, M extends Module>(
  dir: string,
  options: LoadPretrainedOptions<C, M>,
): Promise<{ model: M; config: C; weightsFile: string } & LoadStateDictResult> {
  const root = modelRoot(dir, options.subfolder);
  const config = await readConfig(join(root, 'config.json'), options.config);
  const weights = await openWeights(dir, options);
  try {
    const model = skipInit(() => options.build(config));
    try {
      const result = await loadWeights(model, weights, options);
      return { model, config, weightsFile: weights.path, ...result };
    } catch (err) {
      model.dispose();
      throw err;
    }
  } finally {
    await weights.close();
  }
}

/** Options of {@link savePretrained}. @example await savePretrained('out/unet', { config: unet.config, weights: unet.stateDict(), variant: 'fp16' }); */
export interface SavePretrainedOptions {
  /** Written as `config.json` (pretty-printed). */
  config: object;
  /** The tensors to save, usually `model.stateDict()`. */
  weights: Readonly<Record<string, k.Tensor>> | ReadonlyMap<string, k.Tensor>;
  /** Base name of the weights file (default `diffusion_pytorch_model`; transformers models use `model`). */
  weightsName?: string;
  /** Inserted into the file names, e.g. `fp16`. */
  variant?: string;
  /** Above this many bytes, weights are split into shards with an index (diffusers' `max_shard_size`; default 10 GB). */
  maxShardBytes?: number;
  /** The `__metadata__` of each file (default `{ format: 'pt' }`, which diffusers and transformers expect). */
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Writes a model folder: the weights (one file, or shards and an index above `maxShardBytes`) and
 * `config.json`, each atomically (temporary file, fsync, rename), the index and the config last,
 * so a reader never sees a folder that points at missing or half-written data.
 *
 * @example
 * ```ts
 * await savePretrained('out/unet', { config: unet.config, weights: unet.stateDict() });
 * // out/unet/config.json, out/unet/diffusion_pytorch_model.safetensors
 * ```
 */
export async function savePretrained(dir: string, options: SavePretrainedOptions): Promise<string[]> {
  const base = options.weightsName ?? WEIGHTS_NAMES.diffusers;
  const metadata = options.metadata ?? { format: 'pt' };
  const max = options.maxShardBytes ?? 10e9;
  const entries = entriesOf(options.weights);
  const bytes = (t: k.Tensor) => t.numel() * SAFETENSORS_DTYPE_SIZES[SAVE_DTYPES[t.dtype]];
  const shards: [string, k.Tensor][][] = [[]];
  let size = 0;
  for (const entry of entries) {
    const b = bytes(entry[1]);
    if (size > 0 && size + b > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(entry);
    size += b;
  }
  const written: string[] = [];
  if (shards.length === 1) {
    const file = join(dir, variantFileName(`${base}.safetensors`, options.variant));
    await saveSafetensors(file, new Map(entries), metadata);
    written.push(file);
  } else {
    const weightMap = nullRecord<string>();
    const pad = (n: number) => String(n).padStart(5, '0');
    for (let i = 0; i < shards.length; i++) {
      const name = variantFileName(`${base}.safetensors`, options.variant).replace(
        /\.safetensors$/,
        `-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`,
      );
      await saveSafetensors(join(dir, name), new Map(shards[i]), metadata);
      for (const [key] of shards[i]) weightMap[key] = name;
      written.push(join(dir, name));
    }
    const index = join(dir, variantFileName(`${base}.safetensors.index.json`, options.variant));
    const totalSize = entries.reduce((n, [, t]) => n + bytes(t), 0);
    await writeFileAtomic(index, `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
    written.push(index);
  }
  const config = join(dir, 'config.json');
  await writeFileAtomic(config, `${JSON.stringify(options.config, null, 2)}\n`);
  written.push(config);
  return written;
}
