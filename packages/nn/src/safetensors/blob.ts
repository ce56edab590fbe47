import type * as k from '@kiln/tensor-core';
import { SafetensorsError } from '../errors.js';
import { parseHeader, readHeaderLength } from './header.js';
import type { SafetensorsHeader, TensorInfo } from './header.js';
import { decodeTensor } from './read.js';
import type { LoadTensorOptions } from './read.js';

async function slice(blob: Blob, start: number, end: number, source?: string, tensor?: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await blob.slice(start, end).arrayBuffer());
  } catch (err) {
    throw new SafetensorsError('io', `cannot read bytes ${start}…${end}: ${(err as Error).message}`, source, tensor, { cause: err });
  }
}

/**
 * A safetensors file behind a `Blob` (a `File` from an `<input type="file">` or a drop, or Node's
 * `fs.openAsBlob`): only the header is read at open, and each tensor's byte range is read when
 * asked for, so a browser loads a multi-GB checkpoint without holding the file in memory (which
 * `parseSafetensors` needs). A {@link TensorSource} for `loadWeights`. Get one with
 * {@link openSafetensorsBlob}.
 *
 * @example
 * ```ts
 * const file = input.files[0]; // 'v1-5-pruned-emaonly.safetensors'
 * const st = await openSafetensorsBlob(file, { source: file.name });
 * await loadWeights(unet, prefixedSource(st, 'model.diffusion_model.'));
 * ```
 */
export class SafetensorsBlob {
  private constructor(
    private readonly blob: Blob,
    private readonly header: SafetensorsHeader,
    /** A name for error messages. */
    readonly path: string | undefined,
  ) {}

  /** @internal Use {@link openSafetensorsBlob}. */
  static async open(blob: Blob, source?: string): Promise<SafetensorsBlob> {
    const n = readHeaderLength(await slice(blob, 0, Math.min(8, blob.size), source), blob.size, source);
    return new SafetensorsBlob(blob, parseHeader(await slice(blob, 8, 8 + n, source), blob.size, source), source);
  }

  /** The `__metadata__` string map (a null-prototype record; empty when absent). */
  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  /** Whether a tensor of this name exists. */
  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** The dtype, shape and byte range of one tensor. */
  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError('missing_tensor', 'no such tensor in the file', this.path, name);
    return info;
  }

  /** Reads and decodes one tensor. */
  async tensor(name: string, options: LoadTensorOptions = {}): Promise<k.Tensor> {
    const info = this.info(name);
    const start = this.header.dataStart + info.dataOffsets[0];
    const bytes = await slice(this.blob, start, this.header.dataStart + info.dataOffsets[1], this.path, name);
    return decodeTensor(info, bytes, options, this.path);
  }
}

/**
 * Opens a safetensors `Blob`/`File` lazily: validates the header now, reads tensors on demand.
 * Browser-safe (also Node ≥ 20 with `fs.openAsBlob`).
 *
 * @example
 * ```ts
 * const st = await openSafetensorsBlob(new Blob([bytes]), { source: 'upload.safetensors' });
 * st.keys(); // ['conv_in.weight', …]
 * ```
 */
export async function openSafetensorsBlob(blob: Blob, options: { source?: string } = {}): Promise<SafetensorsBlob> {
  return SafetensorsBlob.open(blob, options.source);
}
