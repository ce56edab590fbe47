/** The filesystem side of safetensors (Node only): exported from `@kiln/nn/node`. */
import type * as k from '@kiln/tensor-core';
import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { SafetensorsError } from '../errors.js';
import { writeAll, writeAtomic } from '../io/atomic.js';
import { parseHeader, readHeaderLength } from './header.js';
import type { SafetensorsHeader, TensorInfo } from './header.js';
import { decodeTensor } from './read.js';
import type { LoadTensorOptions } from './read.js';
import { encodeTensor, planSafetensors } from './write.js';
import type { TensorMap } from './write.js';

/** One read is at most 1 GiB: Node caps a single read well below multi-GB tensors. */
const CHUNK = 1 << 30;

function ioError(err: unknown, file: string, what: string): SafetensorsError {
  if (err instanceof SafetensorsError) return err;
  return new SafetensorsError('io', `${what}: ${(err as Error).message}`, file, undefined, { cause: err });
}

async function readExactly(fh: FileHandle, out: Uint8Array, position: number, file: string, tensor?: string): Promise<void> {
  let done = 0;
  while (done < out.length) {
    const len = Math.min(CHUNK, out.length - done);
    const { bytesRead } = await fh.read(out, done, len, position + done);
    if (bytesRead === 0)
      throw new SafetensorsError(
        'truncated',
        `file ended after ${position + done} bytes while reading ${out.length} bytes at ${position}`,
        file,
        tensor,
      );
    done += bytesRead;
  }
}

/**
 * The common interface of a single safetensors file and a sharded checkpoint.
 *
 * @example
 * ```ts
 * const f: SafetensorsReader = await openSafetensors(path);
 * for (const name of f.keys()) console.log(name, f.info(name).shape);
 * ```
 */
export interface SafetensorsReader {
  /** The file (or index file) path. */
  readonly path: string;
  /** The `__metadata__` map (of the first shard, for sharded checkpoints). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names. */
  keys(): string[];
  /** Whether a tensor of this name exists. */
  has(name: string): boolean;
  /** The dtype, shape and byte range of one tensor. */
  info(name: string): TensorInfo;
  /** Reads and decodes one tensor from disk. */
  tensor(name: string, options?: LoadTensorOptions): Promise<k.Tensor>;
  /** Closes the file handle(s). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * An open safetensors file whose header has been read and validated; tensors are read from disk
 * one at a time (positional reads of their byte ranges), so a multi-GB checkpoint is never held
 * in memory twice. Get one with {@link openSafetensors}.
 *
 * @example
 * ```ts
 * const f = await openSafetensors('model.safetensors'); // a SafetensorsFile
 * f.info('conv_in.weight'); // { dtype: 'F16', shape: [320, 4, 3, 3], … }
 * await f.close();
 * ```
 */
export class SafetensorsFile implements SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly header: SafetensorsHeader,
  ) {}

  /** @internal Use {@link openSafetensors}. */
  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw ioError(err, path, 'cannot open');
    }
    try {
      const size = (await fh.stat()).size;
      const prefix = new Uint8Array(Math.min(8, size));
      await readExactly(fh, prefix, 0, path);
      const n = readHeaderLength(prefix, size, path);
      const json = new Uint8Array(n);
      await readExactly(fh, json, 8, path);
      return new SafetensorsFile(path, fh, parseHeader(json, size, path));
    } catch (err) {
      await fh.close();
      throw ioError(err, path, 'cannot read header');
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError('missing_tensor', 'no such tensor in the file', this.path, name);
    return info;
  }

  async tensor(name: string, options: LoadTensorOptions = {}): Promise<k.Tensor> {
    const info = this.info(name);
    const bytes = new Uint8Array(info.dataOffsets[1] - info.dataOffsets[0]);
    try {
      await readExactly(this.fh, bytes, this.header.dataStart + info.dataOffsets[0], this.path, name);
    } catch (err) {
      throw ioError(err, this.path, `cannot read tensor '${name}'`);
    }
    return decodeTensor(info, bytes, options, this.path);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Parses a `*.safetensors.index.json` into its weight map (a `Map`, so a tensor named `__proto__`
 * is kept). Shard names must be plain file names in the index's folder: `../outside.safetensors`,
 * absolute paths and sub-folders are refused.
 *
 * @example
 * ```ts
 * parseShardIndex('{"weight_map":{"a.weight":"model-00001-of-00002.safetensors"}}', 'model.safetensors.index.json');
 * // Map { 'a.weight' => 'model-00001-of-00002.safetensors' }
 * ```
 */
export function parseShardIndex(text: string, indexPath: string): Map<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError('invalid_index', `index is not valid JSON: ${(err as Error).message}`, indexPath, undefined, { cause: err });
  }
  const map = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as { weight_map?: unknown }).weight_map : undefined;
  if (map === null || typeof map !== 'object' || Array.isArray(map))
    throw new SafetensorsError('invalid_index', 'weight_map: expected an object mapping tensor names to shard files', indexPath);
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string')
      throw new SafetensorsError(
        'invalid_index',
        `weight_map.${name}: expected a shard file name, got ${shard === null ? 'null' : typeof shard}`,
        indexPath,
        name,
      );
    // Shards live next to the index; a path that climbs out of that folder is refused.
    if (shard === '' || isAbsolute(shard) || /[\\/]/.test(shard) || shard === '..' || shard === '.') {
      throw new SafetensorsError(
        'invalid_index',
        `weight_map.${name}: shard '${shard}' is not a file name inside the index's folder`,
        indexPath,
        name,
      );
    }
    out.set(name, shard);
  }
  return out;
}

/**
 * A sharded checkpoint (`*.safetensors.index.json` with a `weight_map` from tensor name to shard
 * file, as transformers and diffusers write them); shards are opened and validated up front.
 *
 * @example
 * ```ts
 * const f = await openSafetensors('text_encoder/model.safetensors.index.json'); // a ShardedSafetensors
 * const w = await f.tensor('text_model.final_layer_norm.weight');
 * await f.close();
 * ```
 */
export class ShardedSafetensors implements SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly weightMap: ReadonlyMap<string, SafetensorsFile>,
    private readonly shards: readonly SafetensorsFile[],
  ) {}

  /** @internal Use {@link openSafetensors}. */
  static async open(indexPath: string): Promise<ShardedSafetensors> {
    let text: string;
    try {
      text = await readFile(indexPath, 'utf8');
    } catch (err) {
      throw ioError(err, indexPath, 'cannot read index');
    }
    const index = parseShardIndex(text, indexPath);
    const dir = dirname(indexPath);
    const opened = new Map<string, SafetensorsFile>();
    try {
      for (const s of new Set(index.values())) opened.set(s, await SafetensorsFile.open(join(dir, s)));
      const weightMap = new Map<string, SafetensorsFile>();
      for (const [name, s] of index) {
        const shard = opened.get(s)!;
        if (!shard.has(name))
          throw new SafetensorsError('missing_tensor', `the index maps it to ${s}, which does not contain it`, indexPath, name);
        weightMap.set(name, shard);
      }
      return new ShardedSafetensors(indexPath, weightMap, [...opened.values()]);
    } catch (err) {
      await Promise.all([...opened.values()].map((f) => f.close()));
      throw err;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.shards[0]?.metadata ?? (Object.create(null) as Record<string, string>);
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  #shard(name: string): SafetensorsFile {
    const shard = this.weightMap.get(name);
    if (!shard) throw new SafetensorsError('missing_tensor', 'not in the weight_map', this.path, name);
    return shard;
  }

  info(name: string): TensorInfo {
    return this.#shard(name).info(name);
  }

  tensor(name: string, options: LoadTensorOptions = {}): Promise<k.Tensor> {
    return this.#shard(name).tensor(name, options);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Opens a `.safetensors` file, or a sharded checkpoint through its index (a `.json` path), reading and
 * validating only the header(s). Close it when done (or `await using`).
 *
 * @example
 * ```ts
 * await using f = await openSafetensors('unet/diffusion_pytorch_model.safetensors');
 * f.keys().length; // 686
 * const w = await f.tensor('conv_in.weight', { dtype: 'float32' });
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsReader> {
  // `model.safetensors.index.json`, or a variant's `model.safetensors.index.fp16.json`.
  return path.endsWith('.json') ? ShardedSafetensors.open(path) : SafetensorsFile.open(path);
}

/**
 * Loads every tensor of a `.safetensors` file (or sharded `.index.json` checkpoint), reading them
 * one by one from disk (`safetensors.torch.load_file`).
 *
 * @example
 * ```ts
 * vae.loadStateDict(await loadSafetensors('vae/diffusion_pytorch_model.safetensors'));
 * ```
 */
export async function loadSafetensors(path: string, options: LoadTensorOptions = {}): Promise<Record<string, k.Tensor>> {
  const f = await openSafetensors(path);
  const out = Object.create(null) as Record<string, k.Tensor>; // any tensor name is a key, `__proto__` too
  try {
    for (const name of f.keys()) out[name] = await f.tensor(name, options);
  } catch (err) {
    for (const t of Object.values(out)) t.dispose();
    throw err;
  } finally {
    await f.close();
  }
  return out;
}

/**
 * Writes `tensors` (and an optional `__metadata__` string map) as a safetensors file, one tensor
 * at a time. Atomic: the data goes to a temporary file next to `path`, which is fsynced and
 * renamed over `path` only when complete, and removed on any error, so `path` is never half-written.
 *
 * @example
 * ```ts
 * await saveSafetensors('lora.safetensors', model.stateDict(), { format: 'pt' });
 * ```
 */
export async function saveSafetensors(path: string, tensors: TensorMap, metadata?: Readonly<Record<string, string>>): Promise<void> {
  const { prefix, infos } = planSafetensors(tensors, metadata);
  try {
    await writeAtomic(path, async (fh) => {
      await writeAll(fh, prefix, 0);
      for (const info of infos) await writeAll(fh, await encodeTensor(info.tensor), prefix.length + info.dataOffsets[0]);
    });
  } catch (err) {
    throw ioError(err, path, 'cannot write');
  }
}
