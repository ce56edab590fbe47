/**
 * The tiled GEMM behind matmul and the three convolutions: 64×64 output tiles, 16-deep K steps
 * staged in workgroup memory, `gemmRegs`² outputs per invocation, and split-K (f32 partials
 * summed in a fixed order by a second kernel) when the output has too few tiles to fill the GPU.
 * Callers supply only how operands are read (`loadA`, `loadB`) and where outputs go (`outIndex`).
 */
import type { View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import type { Bound, GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta, roundUp } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { linearMain } from '../wgsl.js';
import { fill } from './elementwise.js';

type GV = View<GpuStorage>;

/** How a GEMM's A tile is staged: `k` reads along K, `m` along M, `v` as vec4 along K. */
export type ATile = 'k' | 'm' | 'v';
/** How B is staged: `n` along N, `k` along K, `v` as vec4 along N. */
export type BTile = 'n' | 'k' | 'v';

/** out[z] = A[z] (M×K) · B[z] (K×N) for `batch` independent problems. */
export interface GemmSpec {
  /** Names the variant together with `loads` (kernel cache key). */
  tag: string;
  M: number;
  N: number;
  K: number;
  /** Independent problems (matmul batch, conv groups): workgroup z. */
  batch: number;
  /** Read bindings the load functions use. */
  inputs: Bound[];
  outDtype: DType;
  outSize: number;
  /**
   * WGSL defining `loadA(z, m, k) -> f32` (or `loadA4` for tile `v`), `loadB(z, k, n) -> f32` (or
   * `loadB4`) and `outIndex(z, m, n) -> u32`, reading the fields that `meta` adds.
   */
  loads: string;
  /** The caller's metadata (fields its `loads` read); the GEMM adds its own. */
  meta: Meta;
  aTile: ATile;
  bTile: BTile;
}

/** Output tiles below which the K range is split over several workgroups. */
function splitCount(ctx: GpuContext, s: GemmSpec): { splits: number; kchunk: number } {
  const tiles = Math.ceil(s.M / 64) * Math.ceil(s.N / 64) * s.batch;
  const below = ctx.tuning.splitKBelowTiles;
  let splits = 1;
  if (tiles < below && s.K >= 512)
    splits = Math.max(1, Math.min(Math.floor((2 * below) / tiles), Math.ceil(s.K / 256), Math.floor(65535 / s.batch)));
  let kchunk = roundUp(Math.ceil(s.K / splits), 16);
  splits = Math.ceil(s.K / kchunk);
  if (splits === 1) kchunk = s.K;
  return { splits, kchunk };
}

/** WGSL that stages one 64×16 A tile and one 16×64 B tile with T invocations. */
function tileLoads(aTile: ATile, bTile: BTile, T: number): { a: string; b: string } {
  const a =
    aTile === 'v'
      ? `for (var t = 0u; t < ${256 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let am = e / 4u;
      let aq = e % 4u;
      var va = vec4<f32>(0.0);
      if (m0 + am < M && kt + aq * 4u < ke) { va = loadA4(z, m0 + am, kt + aq * 4u); }
      for (var c = 0u; c < 4u; c = c + 1u) { As[(aq * 4u + c) * 16u + am / 4u][am % 4u] = va[c]; }
    }`
      : `for (var t = 0u; t < ${1024 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let am = ${aTile === 'k' ? 'e / TK' : 'e % TM'};
      let ak = ${aTile === 'k' ? 'e % TK' : 'e / TM'};
      var va = 0.0;
      if (m0 + am < M && kt + ak < ke) { va = loadA(z, m0 + am, kt + ak); }
      As[ak * 16u + am / 4u][am % 4u] = va;
    }`;
  const b =
    bTile === 'v'
      ? `for (var t = 0u; t < ${256 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let bk = e / 16u;
      let bq = e % 16u;
      var vb = vec4<f32>(0.0);
      if (n0 + bq * 4u < N && kt + bk < ke) { vb = loadB4(z, kt + bk, n0 + bq * 4u); }
      Bs[bk * 16u + bq] = vb;
    }`
      : `for (var t = 0u; t < ${1024 / T}u; t = t + 1u) {
      let e = li + t * ${T}u;
      let bn = ${bTile === 'n' ? 'e % TN' : 'e / TK'};
      let bk = ${bTile === 'n' ? 'e / TN' : 'e % TK'};
      var vb = 0.0;
      if (n0 + bn < N && kt + bk < ke) { vb = loadB(z, kt + bk, n0 + bn); }
      Bs[bk * 16u + bn / 4u][bn % 4u] = vb;
    }`;
  return { a, b };
}

/** The main GEMM kernel body for R×R register tiles; `split` stores f32 partials per K chunk. */
function gemmMain(R: number, aTile: ATile, bTile: BTile, split: boolean): string {
  const V = R / 4;
  const T = (64 / R) ** 2;
  const { a, b } = tileLoads(aTile, bTile, T);
  const accs: string[] = [];
  const fmas: string[] = [];
  const stores: string[] = [];
  for (let u = 0; u < V; u++) fmas.push(`let a${u} = As[kk * 16u + ty * ${V}u + ${u}u];`, `let b${u} = Bs[kk * 16u + tx * ${V}u + ${u}u];`);
  for (let i = 0; i < R; i++)
    for (let v = 0; v < V; v++) {
      accs.push(`var c${i}_${v} = vec4<f32>(0.0);`);
      fmas.push(`c${i}_${v} = c${i}_${v} + a${i >> 2}[${i & 3}] * b${v};`);
    }
  const stOne = split ? 'st_part(sp * md_outSize() + outIndex(z, m, n), v);' : 'st_out(outIndex(z, m, n), v);';
  for (let i = 0; i < R; i++) {
    const body: string[] = [];
    for (let v = 0; v < V; v++)
      body.push(
        `for (var j = 0u; j < 4u; j = j + 1u) { let n = n0 + tx * ${R}u + ${v * 4}u + j; if (n < N) { let v = c${i}_${v}[j]; ${stOne} } }`,
      );
    stores.push(`{ let m = m0 + ty * ${R}u + ${i}u; if (m < M) { ${body.join(' ')} } }`);
  }
  return `const TM = 64u;
const TN = 64u;
const TK = 16u;
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = md_M(); let N = md_N(); let K = md_K(); let splits = md_splits(); let kchunk = md_kchunk();
  let z = wid.z / splits;
  let sp = wid.z % splits;
  let kb = sp * kchunk;
  let ke = min(K, kb + kchunk);
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let tx = li % ${64 / R}u;
  let ty = li / ${64 / R}u;
  ${accs.join('\n  ')}
  for (var kt = kb; kt < ke; kt = kt + TK) {
    ${a}
    ${b}
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk = kk + 1u) {
      ${fmas.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}`;
}

export function gemm(ctx: GpuContext, s: GemmSpec): GpuStorage {
  if (s.outSize === 0) return ctx.alloc(s.outDtype, 0);
  if (s.K === 0) return fill(ctx, s.outDtype, s.outSize, 0);
  const out = ctx.alloc(s.outDtype, s.outSize);
  const { splits, kchunk } = splitCount(ctx, s);
  const split = splits > 1;
  const part = split ? ctx.alloc('float32', splits * s.outSize) : null;
  const meta = s.meta.u32s({ M: s.M, N: s.N, K: s.K, splits, kchunk, outSize: s.outSize });
  const R = ctx.tuning.gemmRegs;
  const target: Bound = part
    ? { name: 'part', storage: part, dtype: 'float32', access: 'write' }
    : { name: 'out', storage: out, dtype: s.outDtype, access: 'write' };
  ctx.run({
    name: `gemm${R}:${s.tag}:${s.aTile}${s.bTile}`,
    bindings: [...s.inputs, target],
    meta,
    code: () => s.loads + gemmMain(R, s.aTile, s.bTile, split),
    groups: [Math.ceil(s.N / 64), Math.ceil(s.M / 64), s.batch * splits],
  });
  if (part) {
    ctx.run({
      name: 'splitsum',
      bindings: [
        { name: 'p', storage: part, dtype: 'float32', access: 'read' },
        { name: 'out', storage: out, dtype: s.outDtype, access: 'write' },
      ],
      meta: new Meta().u32s({ n: s.outSize, splits }),
      code: () =>
        linearMain(
          WG,
          `  if (gid >= md_n()) { return; }
  var s = 0.0;
  for (var j = 0u; j < md_splits(); j = j + 1u) { s = s + ld_p(j * md_n() + gid); }
  st_out(gid, s);`,
        ),
      groups: ctx.linear(s.outSize),
    });
    ctx.free(part);
  }
  return out;
}

/** a: [B, M, K], b: [B, K, N], any strides; vec4 loads along a contiguous, 16-byte aligned dim. */
export function matmul(ctx: GpuContext, a: GV, b: GV): GpuStorage {
  const [B, M, K] = a.shape;
  const N = b.shape[2];
  const al4 = (x: number) => x % 4 === 0;
  const aVec = a.dtype === 'float32' && a.strides[2] === 1 && al4(K) && al4(a.offset) && al4(a.strides[1]) && al4(a.strides[0]);
  const bVec = b.dtype === 'float32' && b.strides[2] === 1 && al4(N) && al4(b.offset) && al4(b.strides[1]) && al4(b.strides[0]);
  const meta = new Meta().u32s({
    aOff: a.offset,
    aSz: a.strides[0],
    aSm: a.strides[1],
    aSk: a.strides[2],
    bOff: b.offset,
    bSz: b.strides[0],
    bSk: b.strides[1],
    bSn: b.strides[2],
  });
  const loads = `
${
  aVec
    ? 'fn loadA4(z: u32, m: u32, k: u32) -> vec4<f32> { return a[(md_aOff() + z * md_aSz() + m * md_aSm() + k) / 4u]; }'
    : 'fn loadA(z: u32, m: u32, k: u32) -> f32 { return ld_a(md_aOff() + z * md_aSz() + m * md_aSm() + k * md_aSk()); }'
}
${
  bVec
    ? 'fn loadB4(z: u32, k: u32, n: u32) -> vec4<f32> { return b[(md_bOff() + z * md_bSz() + k * md_bSk() + n) / 4u]; }'
    : 'fn loadB(z: u32, k: u32, n: u32) -> f32 { return ld_b(md_bOff() + z * md_bSz() + k * md_bSk() + n * md_bSn()); }'
}
fn outIndex(z: u32, m: u32, n: u32) -> u32 { return (z * md_M() + m) * md_N() + n; }
`;
  return gemm(ctx, {
    tag: 'mm',
    M,
    N,
    K,
    batch: B,
    inputs: [
      { name: 'a', storage: a.storage, dtype: a.dtype, access: 'read', vec4: aVec },
      { name: 'b', storage: b.storage, dtype: b.dtype, access: 'read', vec4: bVec },
    ],
    outDtype: a.dtype,
    outSize: B * M * N,
    loads,
    meta,
    // Scalar tiles follow whichever dim of the operand is unit-stride.
    aTile: aVec ? 'v' : a.strides[2] === 1 || a.strides[1] !== 1 ? 'k' : 'm',
    bTile: bVec ? 'v' : b.strides[2] === 1 || b.strides[1] !== 1 ? 'n' : 'k',
  });
}
