/**
 * Kernel metadata: the per-dispatch numbers (sizes, scalars, strided views) that kernels read from
 * the metadata arena instead of having them compiled in, so that one pipeline serves every shape.
 *
 * A kernel declares its fields by name; `Meta` lays them out as u32 words and generates a WGSL
 * accessor per field (`md_rows()`, `md_eps()`) and an indexer per strided view (`idx_x(i)`), so
 * no kernel reads a raw `md[23]`.
 */
import type { View } from '../../backend.js';
import { BackendError } from '../../errors.js';
import { MAX_RANK, VIEW_WORDS, indexer } from './wgsl.js';

const f32Bits = (() => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return (v: number) => {
    f[0] = v;
    return u[0];
  };
})();

/** The u32 words of `v` as WGSL reads them through `bitcast<f32>` (f32) or `bitcast<i32>`/`i32()` (i32). */
export function wordOf(kind: 'u32' | 'i32' | 'f32', v: number): number {
  return kind === 'f32' ? f32Bits(v) : v >>> 0;
}

/** Merges dims that are contiguous in every stride list and drops size-1 dims. */
export function coalesce(shape: readonly number[], stridesList: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const st: number[][] = stridesList.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && stridesList.every((s, v) => st[v][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      stridesList.forEach((s, v) => (st[v][last] = s[d]));
    } else {
      dims.push(shape[d]);
      stridesList.forEach((s, v) => st[v].push(s[d]));
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    st.forEach((s) => s.push(1));
  }
  return { shape: dims, strides: st };
}

/** A coalesced view is one run of unit stride: its kernels index it as `offset + i`. */
export const isContig = (shape: readonly number[], strides: readonly number[]): boolean => shape.length === 1 && strides[0] === 1;

type Kind = 'u32' | 'i32' | 'f32';

/** The metadata of one dispatch: named scalar fields and strided views, in declaration order. */
export class Meta {
  private readonly words: number[] = [];
  /** WGSL per field and view, generated only when a pipeline is compiled. */
  private readonly wgslParts: (() => string)[] = [];
  private readonly layout: string[] = [];

  private field(kind: Kind, name: string, v: number): this {
    const at = this.words.length;
    this.words.push(wordOf(kind, v));
    const read = kind === 'u32' ? `md[${at}u]` : `bitcast<${kind}>(md[${at}u])`;
    this.wgslParts.push(() => `fn md_${name}() -> ${kind} { return ${read}; }`);
    this.layout.push(`${name}:${kind}`);
    return this;
  }

  u32(name: string, v: number): this {
    return this.field('u32', name, v);
  }

  i32(name: string, v: number): this {
    return this.field('i32', name, v);
  }

  f32(name: string, v: number): this {
    return this.field('f32', name, v);
  }

  /** Several u32 fields at once, in the object's key order. */
  u32s(fields: Record<string, number>): this {
    for (const [name, v] of Object.entries(fields)) this.u32(name, v);
    return this;
  }

  /**
   * A strided view already coalesced (see `coalesce`): WGSL gets `idx_NAME(i)`, the storage index
   * of logical element `i`. Contiguous views get the cheap indexer (part of the pipeline key).
   */
  view(name: string, offset: number, shape: readonly number[], strides: readonly number[]): this {
    if (shape.length > MAX_RANK) {
      throw new BackendError(`webgpu: views of rank ${shape.length} (after merging contiguous dims) exceed the supported ${MAX_RANK}`);
    }
    const at = this.words.length;
    const w = new Array<number>(VIEW_WORDS).fill(0);
    w[0] = offset;
    w[1] = shape.length;
    shape.forEach((s, i) => (w[2 + i] = s));
    strides.forEach((s, i) => (w[2 + MAX_RANK + i] = s));
    this.words.push(...w);
    const contig = isContig(shape, strides);
    this.wgslParts.push(() => indexer(name, at, contig));
    this.layout.push(`${name}:view${contig ? 'c' : 's'}`);
    return this;
  }

  /** A view coalesced on its own (for kernels that index each input separately). */
  strided(name: string, v: View): this {
    const c = coalesce(v.shape, [v.strides]);
    return this.view(name, v.offset, c.shape, c.strides[0]);
  }

  /** The words written into the metadata arena. */
  get data(): readonly number[] {
    return this.words;
  }

  /** WGSL accessors for every field and view. */
  get wgsl(): string {
    return this.wgslParts.map((part) => part()).join('\n') + '\n';
  }

  /** What the generated WGSL depends on (field names and kinds, view contiguity): part of the pipeline key. */
  get signature(): string {
    return this.layout.join(',');
  }
}

/** Splits `groups` workgroups over x and y when x alone would exceed the device limit. */
export function grid(groups: number, maxDim: number): [number, number] {
  if (groups <= maxDim) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxDim);
  return [Math.ceil(groups / y), y];
}

export const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;
