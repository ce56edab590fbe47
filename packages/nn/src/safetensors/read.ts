import * as k from '@kiln/tensor-core';
import { SafetensorsError } from '../errors.js';
import { LOADABLE_DTYPES, parseHeader, readHeaderLength } from './header.js';
import type { SafetensorsHeader, TensorInfo } from './header.js';

/** Where and as what a tensor is created when loaded. @example await file.tensor('conv_in.weight', { dtype: 'float32', device: 'wasm' }); // converted on the way */
export interface LoadTensorOptions {
  /** Convert to this dtype after decoding (default: the file's, see `LOADABLE_DTYPES`). */
  dtype?: k.DType;
  /** Backend to create it on (default: the selected one). */
  device?: string;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A copy of `bytes` whose element order is little-endian-native and whose offset is aligned. */
function native(bytes: Uint8Array, size: number): ArrayBuffer {
  const copy = bytes.slice();
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return copy.buffer;
}

/** Elements as a typed array view; copies only when misaligned or on a big-endian host. */
function view<T>(bytes: Uint8Array, size: number, make: (buf: ArrayBufferLike, offset: number, length: number) => T): T {
  if (LITTLE_ENDIAN && bytes.byteOffset % size === 0) return make(bytes.buffer, bytes.byteOffset, bytes.length / size);
  return make(native(bytes, size), 0, bytes.length / size);
}

/**
 * Turns one tensor's raw little-endian bytes into a Kiln tensor (see `LOADABLE_DTYPES` for the
 * dtype mapping). I64 values must fit in int32 unless a float dtype is requested.
 */
export function decodeTensor(info: TensorInfo, bytes: Uint8Array, options: LoadTensorOptions = {}, file?: string): k.Tensor {
  const natural = LOADABLE_DTYPES[info.dtype];
  if (!natural) {
    throw new SafetensorsError(
      'unsupported_dtype',
      `dtype ${info.dtype} cannot be loaded; Kiln loads ${Object.keys(LOADABLE_DTYPES).join(', ')}`,
      file,
      info.name,
    );
  }
  // Checked before decoding: a bad requested dtype must not leave a decoded tensor behind.
  if (options.dtype !== undefined) k.assertDType(options.dtype, `loading '${info.name}' as dtype`);
  const shape = info.shape;
  const device = options.device;
  const wanted = options.dtype ?? natural;
  let t: k.Tensor;
  switch (info.dtype) {
    case 'F32':
      t = k.tensor(
        view(bytes, 4, (b, o, n) => new Float32Array(b, o, n)),
        { dtype: 'float32', shape, device },
      );
      break;
    case 'F64':
      t = k.tensor(
        view(bytes, 8, (b, o, n) => new Float64Array(b, o, n)),
        { dtype: 'float64', shape, device },
      );
      break;
    case 'F16':
    case 'BF16': {
      // tensor-core takes numbers and re-encodes them; f16/bf16 → f32 → f16/bf16 is exact. When
      // float32 is wanted the widened values are the result: no half tensor in between.
      const bits = view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
      const decode = info.dtype === 'F16' ? k.f16BitsToF32 : k.bf16BitsToF32;
      const values = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) values[i] = decode(bits[i]);
      t = k.tensor(values, { dtype: wanted === 'float32' ? 'float32' : natural, shape, device });
      break;
    }
    case 'I32':
      t = k.tensor(
        view(bytes, 4, (b, o, n) => new Int32Array(b, o, n)),
        { dtype: 'int32', shape, device },
      );
      break;
    case 'I64': {
      const words = view(bytes, 8, (b, o, n) => new Int32Array(b, o, n * 2));
      const n = words.length / 2;
      if (k.isFloat(wanted)) {
        const values = new Float64Array(n);
        for (let i = 0; i < n; i++) values[i] = words[2 * i + 1] * 2 ** 32 + (words[2 * i] >>> 0);
        return k.tensor(values, { dtype: wanted, shape, device });
      }
      const values = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = words[2 * i];
        const hi = words[2 * i + 1];
        // Fits in int32 exactly when the high word is the sign extension of the low one.
        if (hi !== lo >> 31) {
          const value = BigInt(hi) * 2n ** 32n + BigInt(lo >>> 0);
          throw new SafetensorsError(
            'value_out_of_range',
            `I64 value ${value} at index ${i} does not fit in int32 (load it with { dtype: 'float64' })`,
            file,
            info.name,
          );
        }
        values[i] = lo;
      }
      t = k.tensor(values, { dtype: 'int32', shape, device });
      break;
    }
    case 'U8':
      t = k.tensor(Int32Array.from(bytes), { dtype: 'int32', shape, device });
      break;
    case 'BOOL':
      t = k.tensor(Uint8Array.from(bytes), { dtype: 'bool', shape, device });
      break;
    default:
      throw new SafetensorsError('unsupported_dtype', `dtype ${info.dtype} cannot be loaded`, file, info.name);
  }
  if (t.dtype === wanted) return t;
  const converted = k.noGrad(() => k.cast(t, wanted));
  t.dispose();
  return converted;
}

/**
 * A safetensors file held in memory (an `ArrayBuffer` from `fetch`, a file read in a browser):
 * the header is validated at once, tensors are decoded one at a time on demand.
 *
 * @example
 * ```ts
 * const st = parseSafetensors(new Uint8Array(await (await fetch(url)).arrayBuffer()));
 * st.keys(); // ['conv_in.weight', …]
 * const w = st.tensor('conv_in.weight', { dtype: 'float32' });
 * ```
 */
export class SafetensorsBytes {
  readonly #bytes: Uint8Array;
  readonly #header: SafetensorsHeader;

  constructor(
    bytes: Uint8Array | ArrayBuffer,
    /** A name for error messages (a URL or file name). */
    readonly source?: string,
  ) {
    this.#bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const n = readHeaderLength(this.#bytes, this.#bytes.length, source);
    this.#header = parseHeader(this.#bytes.subarray(8, 8 + n), this.#bytes.length, source);
  }

  /** The `__metadata__` string map (empty when absent). */
  get metadata(): Readonly<Record<string, string>> {
    return this.#header.metadata;
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.#header.tensors.keys()];
  }

  /** Whether a tensor of this name exists. */
  has(name: string): boolean {
    return this.#header.tensors.has(name);
  }

  /** The name given for error messages (a {@link TensorSource}'s `path`). */
  get path(): string | undefined {
    return this.source;
  }

  /** The dtype, shape and byte range of one tensor. */
  info(name: string): TensorInfo {
    const info = this.#header.tensors.get(name);
    if (!info) throw new SafetensorsError('missing_tensor', 'no such tensor in the file', this.source, name);
    return info;
  }

  /** Decodes one tensor. */
  tensor(name: string, options: LoadTensorOptions = {}): k.Tensor {
    const info = this.info(name);
    const start = this.#header.dataStart + info.dataOffsets[0];
    return decodeTensor(info, this.#bytes.subarray(start, this.#header.dataStart + info.dataOffsets[1]), options, this.source);
  }

  /** Decodes every tensor, in header order (a null-prototype record: any name is a key). */
  tensors(options: LoadTensorOptions = {}): Record<string, k.Tensor> {
    const out = Object.create(null) as Record<string, k.Tensor>;
    try {
      for (const name of this.keys()) out[name] = this.tensor(name, options);
    } catch (err) {
      for (const t of Object.values(out)) t.dispose();
      throw err;
    }
    return out;
  }
}

/**
 * Validates a safetensors file in memory and returns a lazy view of it; throws a
 * `SafetensorsError` for anything malformed.
 *
 * @example
 * ```ts
 * const weights = parseSafetensors(bytes).tensors();
 * model.loadStateDict(weights);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer, options: { source?: string } = {}): SafetensorsBytes {
  return new SafetensorsBytes(bytes, options.source);
}
