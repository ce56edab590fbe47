import * as k from '@kiln/tensor-core';
import { z } from 'zod';
import { SafetensorsError } from '../errors.js';

/**
 * The element types of the safetensors format with their sizes in bytes. All of them are accepted
 * in a header (so a file's layout can be checked and its other tensors read); only
 * {@link LOADABLE_DTYPES} can become Kiln tensors.
 *
 * @example
 * ```ts
 * SAFETENSORS_DTYPE_SIZES.BF16; // 2
 * ```
 */
export const SAFETENSORS_DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

/** A safetensors dtype name. @example file.info('conv_in.weight').dtype; // 'F16', 'BF16', 'F32', … */
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_SIZES;

/**
 * How each loadable safetensors dtype becomes a Kiln dtype. Kiln has no 64-bit or 8-bit integer
 * tensors: I64 loads as int32 (an error names the tensor if a value does not fit) and U8 as
 * int32 (values 0…255, no information lost; pass `{ dtype: 'bool' }` for masks).
 *
 * @example
 * ```ts
 * LOADABLE_DTYPES.I64; // 'int32'
 * ```
 */
export const LOADABLE_DTYPES: Readonly<Partial<Record<SafetensorsDType, k.DType>>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I32: 'int32',
  I64: 'int32',
  U8: 'int32',
  BOOL: 'bool',
};

/**
 * The safetensors dtype each Kiln dtype is saved as.
 *
 * @example
 * ```ts
 * SAVE_DTYPES.bfloat16; // 'BF16'
 * ```
 */
export const SAVE_DTYPES: Readonly<Record<k.DType, SafetensorsDType>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int32: 'I32',
  bool: 'BOOL',
};

/** Where one tensor's bytes are, relative to the start of the data region. @example const { dtype, shape } = parseSafetensors(bytes).info('conv_in.weight'); */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte range [begin, end) in the data region. */
  readonly dataOffsets: readonly [number, number];
}

/** A validated header: tensors in file order and the `__metadata__` string map. */
export interface SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Bytes before the data region: 8 + the JSON header length. */
  readonly dataStart: number;
}

/**
 * Larger headers are refused, as by the reference implementation: no real file comes close.
 *
 * @example
 * ```ts
 * MAX_HEADER_BYTES; // 100_000_000
 * ```
 */
export const MAX_HEADER_BYTES = 100_000_000;

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
  data_offsets: z.tuple([
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  ]),
});

/**
 * A string → string map as a null-prototype record. Built by hand rather than with `z.record`,
 * which assigns into a plain object and so drops a key named `__proto__`.
 */
export function stringMap(value: unknown, what: string, file?: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError('invalid_header', `${what} must be an object mapping strings to strings`, file);
  }
  const out = Object.create(null) as Record<string, string>;
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      throw new SafetensorsError(
        'invalid_header',
        `${what} must map strings to strings: ${key}: expected string, got ${v === null ? 'null' : typeof v}`,
        file,
      );
    out[key] = v;
  }
  return out;
}

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/**
 * Reads the 8-byte little-endian header length at the start of a file of `fileSize` bytes and
 * checks it against the file and {@link MAX_HEADER_BYTES}.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file?: string): number {
  if (fileSize < 8 || prefix.length < 8)
    throw new SafetensorsError('truncated', `file is ${fileSize} bytes, too short for the 8-byte header length`, file);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES)
    throw new SafetensorsError('header_too_large', `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, file);
  if (8 + n > fileSize) throw new SafetensorsError('truncated', `header length ${n} runs past the end of the ${fileSize}-byte file`, file);
  if (n < 2) throw new SafetensorsError('invalid_header', `header length ${n} is too short for a JSON object`, file);
  return n;
}

/**
 * Parses and validates the JSON header against a file of `fileSize` bytes: every entry well
 * formed, dtypes known, byte sizes matching shapes, and data offsets tiling the data region
 * contiguously from 0 to its end (in file order, no gaps, no overlaps), as the reference
 * implementation requires.
 */
export function parseHeader(json: Uint8Array, fileSize: number, file?: string): SafetensorsHeader {
  const dataStart = 8 + json.length;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (err) {
    throw new SafetensorsError('invalid_header', `header is not valid UTF-8 JSON: ${(err as Error).message}`, file, undefined, {
      cause: err,
    });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new SafetensorsError('invalid_header', 'header is not a JSON object', file);

  // JSON.parse makes every key an own property (even `__proto__`), and entries go into a Map.
  let metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: TensorInfo[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === '__metadata__') {
      metadata = stringMap(value, '__metadata__', file);
      continue;
    }
    const e = entrySchema.safeParse(value);
    if (!e.success) throw new SafetensorsError('invalid_header', `bad header entry: ${describe(e.error)}`, file, name);
    const { dtype, shape, data_offsets: offsets } = e.data;
    if (!(dtype in SAFETENSORS_DTYPE_SIZES)) {
      throw new SafetensorsError(
        'unknown_dtype',
        `unknown dtype '${dtype}'; expected one of ${Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ')}`,
        file,
        name,
      );
    }
    const size = SAFETENSORS_DTYPE_SIZES[dtype as SafetensorsDType];
    let bytes = size;
    for (const d of shape) {
      bytes *= d;
      if (!Number.isSafeInteger(bytes))
        throw new SafetensorsError('shape_mismatch', `shape [${shape.join(', ')}] is too large`, file, name);
    }
    if (offsets[1] < offsets[0])
      throw new SafetensorsError('invalid_offsets', `data_offsets [${offsets.join(', ')}] end before they begin`, file, name);
    if (offsets[1] - offsets[0] !== bytes) {
      throw new SafetensorsError(
        'shape_mismatch',
        `${dtype} [${shape.join(', ')}] needs ${bytes} bytes, data_offsets [${offsets.join(', ')}] span ${offsets[1] - offsets[0]}`,
        file,
        name,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDType, shape, dataOffsets: [offsets[0], offsets[1]] });
  }

  // The reference implementation requires the tensors, sorted by offset, to tile the data region.
  const sorted = [...entries].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const t of sorted) {
    if (t.dataOffsets[0] !== cursor) {
      const what = t.dataOffsets[0] < cursor ? 'overlap the previous tensor' : `leave a gap after byte ${cursor}`;
      throw new SafetensorsError('invalid_offsets', `data_offsets [${t.dataOffsets.join(', ')}] ${what}`, file, t.name);
    }
    cursor = t.dataOffsets[1];
  }
  const dataBytes = fileSize - dataStart;
  if (cursor !== dataBytes) {
    const last = sorted[sorted.length - 1]?.name;
    if (cursor > dataBytes)
      throw new SafetensorsError('truncated', `tensors need ${cursor} data bytes, the file has ${dataBytes}`, file, last);
    throw new SafetensorsError('invalid_offsets', `tensors cover ${cursor} data bytes, the file has ${dataBytes} (trailing bytes)`, file);
  }
  return { tensors: new Map(entries.map((t) => [t.name, t])), metadata, dataStart };
}

/**
 * The bytes before the data region for tensors of the given dtypes and shapes, in the given
 * order: the 8-byte length and the JSON header, padded with spaces to a multiple of 8 so that
 * data stays aligned (as the reference writer does).
 */
export function buildHeader(
  tensors: readonly { name: string; dtype: SafetensorsDType; shape: readonly number[] }[],
  metadata: Readonly<Record<string, string>> | undefined,
): { prefix: Uint8Array; infos: TensorInfo[]; dataBytes: number } {
  // No prototype: a tensor named `__proto__` must become a JSON key, not the object's prototype.
  const header = Object.create(null) as Record<string, unknown>;
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = stringMap(metadata, 'metadata');
  const infos: TensorInfo[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__')
      throw new SafetensorsError('invalid_header', "'__metadata__' cannot be a tensor name", undefined, t.name);
    const bytes = t.shape.reduce((a, b) => a * b, SAFETENSORS_DTYPE_SIZES[t.dtype]);
    const info: TensorInfo = { name: t.name, dtype: t.dtype, shape: [...t.shape], dataOffsets: [offset, offset + bytes] };
    infos.push(info);
    header[t.name] = { dtype: t.dtype, shape: info.shape, data_offsets: info.dataOffsets };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8);
  prefix.set(json, 8);
  new DataView(prefix.buffer).setUint32(0, padded, true);
  return { prefix, infos, dataBytes: offset };
}
