import * as k from '@kiln/tensor-core';
import { SafetensorsError } from '../errors.js';
import { SAFETENSORS_DTYPE_SIZES, SAVE_DTYPES, buildHeader } from './header.js';
import type { SafetensorsDType, TensorInfo } from './header.js';

/** Tensors to save: a state dict or a map of names to tensors. @example await serializeSafetensors({ weight: w }); await serializeSafetensors(new Map([['weight', w]])); */
export type TensorMap = Readonly<Record<string, k.Tensor>> | ReadonlyMap<string, k.Tensor>;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function leBytes(values: ArrayBufferView, size: number): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (LITTLE_ENDIAN || size === 1) return bytes;
  const copy = bytes.slice();
  for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  return copy;
}

/** One tensor's data in safetensors layout (little-endian, row-major); reads it back from its backend. */
export async function encodeTensor(t: k.Tensor): Promise<Uint8Array> {
  const data = await t.data();
  switch (t.dtype) {
    case 'float16':
    case 'bfloat16': {
      // data() widens halves to f32, which converts back to the same bits exactly.
      const enc = t.dtype === 'float16' ? k.f32ToF16Bits : k.f32ToBf16Bits;
      const bits = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) bits[i] = enc(data[i]);
      return leBytes(bits, 2);
    }
    default:
      return leBytes(data, SAFETENSORS_DTYPE_SIZES[SAVE_DTYPES[t.dtype]]);
  }
}

/**
 * The header layout for `tensors`: entries sorted by element size (largest first) then name, so
 * every tensor's data is aligned to its element size, as the reference writer arranges it.
 */
export function planSafetensors(
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): { prefix: Uint8Array; infos: (TensorInfo & { tensor: k.Tensor })[]; dataBytes: number } {
  const entries: [string, k.Tensor][] =
    tensors instanceof Map
      ? [...(tensors as ReadonlyMap<string, k.Tensor>).entries()]
      : Object.entries(tensors as Readonly<Record<string, k.Tensor>>);
  for (const [name, t] of entries) {
    if (!(t instanceof k.Tensor)) throw new SafetensorsError('invalid_header', 'value is not a tensor', undefined, name);
    if (t.isDisposed) throw new SafetensorsError('invalid_header', 'tensor was disposed', undefined, name);
  }
  const list = entries
    .map(([name, t]) => ({ name, dtype: SAVE_DTYPES[t.dtype] as SafetensorsDType, shape: t.shape, tensor: t }))
    .sort(
      (a, b) => SAFETENSORS_DTYPE_SIZES[b.dtype] - SAFETENSORS_DTYPE_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  const { prefix, infos, dataBytes } = buildHeader(list, metadata);
  return { prefix, infos: infos.map((info, i) => ({ ...info, tensor: list[i].tensor })), dataBytes };
}

/**
 * A complete safetensors file in memory (for browsers: download it as a Blob). Async because it
 * reads tensor data back from the backend.
 *
 * @example
 * ```ts
 * const bytes = await serializeSafetensors(model.stateDict(), { format: 'pt' });
 * ```
 */
export async function serializeSafetensors(tensors: TensorMap, metadata?: Readonly<Record<string, string>>): Promise<Uint8Array> {
  const { prefix, infos, dataBytes } = planSafetensors(tensors, metadata);
  const out = new Uint8Array(prefix.length + dataBytes);
  out.set(prefix, 0);
  for (const info of infos) out.set(await encodeTensor(info.tensor), prefix.length + info.dataOffsets[0]);
  return out;
}
