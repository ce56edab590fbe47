import * as k from '@kiln/tensor-core';
import { SafetensorsError } from './errors.js';
import type { Module } from './module.js';
import { LOADABLE_DTYPES, SAFETENSORS_DTYPE_SIZES } from './safetensors/header.js';
import type { SafetensorsDType } from './safetensors/header.js';
import type { LoadTensorOptions } from './safetensors/read.js';
import { markLoaded } from './skip-init.js';
import { checkLoad, entriesOf } from './state-dict.js';
import type { Described, KeyPattern, LoadStateDictResult } from './state-dict.js';

/**
 * Where weights are read from, one tensor at a time: an open safetensors file or sharded
 * checkpoint (`openSafetensors` in `@kiln/nn/node`), a file in memory (`parseSafetensors`), or a
 * view of one of these ({@link prefixedSource}, {@link renamedSource}). `info` gives a tensor's
 * shape without reading it, so every shape is checked before any data is read.
 *
 * @example
 * ```ts
 * const source: TensorSource = await openSafetensors('unet/diffusion_pytorch_model.safetensors');
 * source.info('conv_in.weight').shape; // [320, 4, 3, 3]
 * ```
 */
export interface TensorSource {
  /** The file it reads, named in errors. */
  readonly path?: string;
  /** Tensor names. */
  keys(): readonly string[];
  /** Whether a tensor of this name exists. */
  has(name: string): boolean;
  /** The stored shape and dtype (a safetensors dtype name such as `F16`, or a Kiln dtype). */
  info(name: string): { readonly shape: readonly number[]; readonly dtype: string };
  /** Reads one tensor, converted to `options.dtype` on `options.device`. */
  tensor(name: string, options?: LoadTensorOptions): k.Tensor | Promise<k.Tensor>;
}

/**
 * The tensors of `source` whose names start with `prefix`, with the prefix removed: candle's
 * `vb.pp(prefix)`. Use it to load one model out of a single-file checkpoint.
 *
 * @example
 * ```ts
 * const file = await openSafetensors('v1-5-pruned-emaonly.safetensors');
 * const unetPart = prefixedSource(file, 'model.diffusion_model.'); // still LDM names
 * ```
 */
export function prefixedSource(source: TensorSource, prefix: string): TensorSource {
  if (prefix === '') return source;
  return {
    path: source.path,
    keys: () => source.keys().flatMap((key) => (key.startsWith(prefix) ? [key.slice(prefix.length)] : [])),
    has: (name) => source.has(prefix + name),
    info: (name) => source.info(prefix + name),
    tensor: (name, options) => source.tensor(prefix + name, options),
  };
}

/** How {@link renamedSource} maps one stored name: a new name, optionally with a new shape. @example renamedSource(file, (key) => (key.startsWith('old.') ? key.replace('old.', 'new.') : key)); */
export type Rename = string | { readonly key: string; readonly shape?: readonly number[] } | null | undefined;

/**
 * `source` under new names, for checkpoints whose keys differ from the module's (diffusers'
 * conversion of the VAE's old `query/key/value/proj_attn` names, an LDM single file). `rename`
 * maps each stored name to the module's name, or to `null` to hide it; `{ key, shape }` also
 * reshapes on the read (a 1×1 conv weight [C, C, 1, 1] loaded into a linear [C, C]; same element
 * count). Two stored names mapped to one key are an error.
 *
 * @example
 * ```ts
 * const old = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' } as const;
 * const converted = renamedSource(file, (name) => name.replace(/\.(query|key|value|proj_attn)\./, (_, p: keyof typeof old) => `.${old[p]}.`));
 * await loadWeights(vae, converted);
 * ```
 */
export function renamedSource(source: TensorSource, rename: (storedName: string) => Rename): TensorSource {
  const table = new Map<string, { from: string; shape?: readonly number[] }>();
  for (const from of source.keys()) {
    const r = rename(from);
    if (r === null || r === undefined) continue;
    const to = typeof r === 'string' ? { from, key: r } : { from, key: r.key, shape: r.shape };
    const clash = table.get(to.key);
    if (clash)
      throw new SafetensorsError('invalid_header', `both '${clash.from}' and '${from}' are renamed to '${to.key}'`, source.path, from);
    if (to.shape && to.shape.reduce((a, b) => a * b, 1) !== source.info(from).shape.reduce((a, b) => a * b, 1)) {
      throw new SafetensorsError(
        'shape_mismatch',
        `cannot reshape [${source.info(from).shape.join(', ')}] to [${to.shape.join(', ')}] for '${to.key}'`,
        source.path,
        from,
      );
    }
    table.set(to.key, { from, shape: to.shape });
  }
  const entry = (name: string) => {
    const e = table.get(name);
    if (!e) throw new SafetensorsError('missing_tensor', 'no stored tensor is renamed to it', source.path, name);
    return e;
  };
  return {
    path: source.path,
    keys: () => [...table.keys()],
    has: (name) => table.has(name),
    info: (name) => {
      const e = entry(name);
      const info = source.info(e.from);
      return { shape: e.shape ?? info.shape, dtype: info.dtype };
    },
    tensor: async (name, options) => {
      const e = entry(name);
      const t = await source.tensor(e.from, options);
      if (!e.shape) return t;
      const view = k.noGrad(() => t.reshape(e.shape!));
      if (view !== t) t.dispose(); // the view keeps the storage; a same-shape reshape is `t` itself
      return view;
    },
  };
}

/** Options of {@link loadWeights}. @example await loadWeights(model, file, { prefix: 'model.diffusion_model.', strict: true, onProgress: (done, total) => bar(done / total) }); */
export interface LoadWeightsOptions {
  /** Fail on missing and unexpected keys (default true); mis-shaped keys always fail. */
  strict?: boolean;
  /** Read `prefix + key` for each module key (see {@link prefixedSource}). */
  prefix?: string;
  /** Stored keys that are dropped silently (e.g. CLIP's legacy `text_model.embeddings.position_ids`). */
  ignoreUnexpected?: readonly KeyPattern[];
  /** Called after each tensor is loaded, with the bytes loaded so far and in all (for a progress bar). */
  onProgress?: (loadedBytes: number, totalBytes: number, key: string) => void;
}

/** Why a stored tensor cannot be read at all (a format dtype Kiln does not load), before reading. */
function unloadable(dtype: string): string | null {
  if (!(dtype in SAFETENSORS_DTYPE_SIZES)) return null; // a Kiln dtype from a custom source
  return LOADABLE_DTYPES[dtype as SafetensorsDType]
    ? null
    : `dtype ${dtype} cannot be loaded; Kiln loads ${Object.keys(LOADABLE_DTYPES).join(', ')}`;
}

/**
 * Loads a module's weights from `source` tensor by tensor, in the module's own size: each stored
 * tensor is read, converted to the dtype of the module's tensor on its backend (e.g. an `fp16`
 * file into a float32 model) and swapped in, so the peak is the weights plus one tensor in flight.
 * Build the module with {@link skipInit} first and nothing is ever initialised twice: this is
 * candle's `VarBuilder` (load or initialise, never both).
 *
 * Every key, shape and dtype is checked before anything is read: missing and unexpected keys
 * (unless `strict: false`), mis-shaped tensors and unloadable dtypes are listed in one
 * {@link StateDictError} that names the file, and the module is untouched. A read that fails
 * after that (an I/O error) leaves the module partly loaded, with a `SafetensorsError` naming the
 * file and tensor. Tied weights are read once.
 *
 * @example
 * ```ts
 * import { loadWeights, skipInit } from '@kiln/nn';
 * import { openSafetensors } from '@kiln/nn/node';
 *
 * const model = skipInit(() => new CLIPTextModel(config, { dtype: 'float16' }));
 * await using file = await openSafetensors('text_encoder/model.safetensors');
 * await loadWeights(model, file, { ignoreUnexpected: ['text_model.embeddings.position_ids'] });
 * ```
 */
export async function loadWeights(module: Module, source: TensorSource, options: LoadWeightsOptions = {}): Promise<LoadStateDictResult> {
  const src = prefixedSource(source, options.prefix ?? '');
  const expected = new Map(entriesOf(module.stateDict()));
  const describe = (key: string): Described => {
    const info = src.info(key);
    const why = unloadable(info.dtype);
    return why ? { invalid: why } : info;
  };
  const result = checkLoad(expected, src.keys(), describe, {
    strict: options.strict ?? true,
    module: module.constructor.name,
    file: source.path,
    ignoreUnexpected: options.ignoreUnexpected,
  });
  const done = new Set<k.Tensor>();
  const bytes = (t: k.Tensor) => t.numel() * k.itemSize(t.dtype);
  const todo = [...expected].filter(([key]) => src.has(key));
  const totalBytes = [...new Set(todo.map(([, t]) => t))].reduce((n, t) => n + bytes(t), 0);
  let loadedBytes = 0;
  for (const [key, target] of todo) {
    if (done.has(target)) continue;
    const value = await src.tensor(key, { dtype: target.dtype, device: target.device });
    try {
      if (value.shape.join() !== target.shape.join()) {
        throw new SafetensorsError(
          'shape_mismatch',
          `read shape [${value.shape.join(', ')}], its header said [${target.shape.join(', ')}]`,
          source.path,
          key,
        );
      }
      // assign_ swaps storage: the loaded tensor's buffer becomes the parameter's, no copy.
      const converted = value.dtype === target.dtype ? value : k.noGrad(() => k.cast(value, target.dtype));
      target.assign_(converted);
      if (converted !== value) converted.dispose();
    } finally {
      value.dispose();
    }
    markLoaded(target);
    done.add(target);
    loadedBytes += bytes(target);
    options.onProgress?.(loadedBytes, totalBytes, key);
  }
  return result;
}
