/**
 * Fused attention forward, flash-attention style: one invocation per query row, key/value tiles
 * staged in workgroup memory, online softmax (running max and sum) so memory never grows with
 * Lq × Lk.
 */
import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import type { Bound, GpuContext } from '../context.js';
import { Meta } from '../meta.js';
import type { GpuStorage } from '../pool.js';

type GV = View<GpuStorage>;

/** Query rows per workgroup (one invocation each). */
const TQ = 64;
/** Workgroup memory the kernel allows itself: 16 KiB is WebGPU's guaranteed minimum, less room for locals. */
export const workgroupBudget = (ctx: GpuContext): number => Math.min(ctx.limits.maxWorkgroupStorage, 16384) - 1024;

/** Reads element `i` of a head-dim array as f32, whether it holds vec4s (W = 4) or scalars. */
export const component =
  (W: number) =>
  (arr: string, i: string): string =>
    W === 4 ? `${arr}[${i} / 4u][${i} % 4u]` : `${arr}[${i}]`;

/**
 * WGSL that stages rows [r0, r0 + tile) of batch `b` of binding `src` ([B, rows, dim]) into the
 * workgroup array `dst`, `wg` invocations cooperating, with zeros past the last row.
 */
export function stageRows(
  W: number,
  dst: string,
  src: string,
  r0: string,
  tile: string,
  rows: string,
  dim: string,
  wg: string,
  scale = '',
): string {
  return `for (var t = li; t < ${tile} * ${dim}; t = t + ${wg}) {
      let rr = ${r0} + t / ${dim};
      var val = 0.0;
      if (rr < ${rows}) { val = ld_${src}(idx_${src}((b * ${rows} + rr) * ${dim} + t % ${dim}))${scale}; }
      ${component(W)(dst, 't')} = val;
    }`;
}

/** WGSL that loads row `row` of batch `b` of `src` ([B, rows, dim]) into the private array `dst` (zeros when `valid` is false). */
export function loadRow(W: number, dst: string, src: string, row: string, rows: string, dim: string, scale = ''): string {
  return `for (var e = 0u; e < ${dim}; e = e + 1u) {
    var val = 0.0;
    if (valid) { val = ld_${src}(idx_${src}((b * ${rows} + ${row}) * ${dim} + e))${scale}; }
    ${component(W)(dst, 'e')} = val;
  }`;
}

/** The q/k/v/mask read bindings and their metadata (views, sizes, scale, causal). */
export function attentionInputs(q: GV, k: GV, v: GV, mask: GV | null, causal: boolean, scale: number): { meta: Meta; bindings: Bound[] } {
  const [B, Lq] = q.shape;
  const Lk = k.shape[1];
  const meta = new Meta().u32s({ B, Lq, Lk, causal: causal ? 1 : 0 }).f32('scale', scale);
  const named: [string, GV][] = [['q', q], ['k', k], ['v', v], ...(mask ? [['mk', mask] as [string, GV]] : [])];
  const bindings: Bound[] = named.map(([name, view]) => {
    meta.strided(name, view);
    return { name, storage: view.storage, dtype: view.dtype, access: 'read' };
  });
  return { meta, bindings };
}

export function attention(ctx: GpuContext, q: GV, k: GV, v: GV, mask: GV | null, causal: boolean, scale: number): GpuStorage {
  const [B, Lq, E] = q.shape;
  const Ev = v.shape[2];
  if (B * Lq * Ev === 0) return ctx.alloc(q.dtype, 0);
  const budget = workgroupBudget(ctx);
  if ((E + Ev) * 4 > budget) {
    throw new BackendError(
      `webgpu: attention head dims E=${E}, Ev=${Ev} need ${(E + Ev) * 4} bytes of workgroup memory per key, more than the ${budget} this kernel budgets; use head dims up to ${Math.floor(budget / 8)} or the cpu/wasm backend`,
    );
  }
  const TK = Math.max(1, Math.min(32, Math.floor(budget / ((E + Ev) * 4))));
  const out = ctx.alloc(q.dtype, B * Lq * Ev);
  const { meta, bindings } = attentionInputs(q, k, v, mask, causal, scale);
  // vec4 registers and tiles when both head dims allow it.
  const W = E % 4 === 0 && Ev % 4 === 0 ? 4 : 1;
  const T = W === 4 ? 'vec4<f32>' : 'f32';
  const [EW, EVW] = [E / W, Ev / W];
  const comp = component(W);
  const code = () => `const E = ${E}u;
const EV = ${Ev}u;
const EW = ${EW}u;
const EVW = ${EVW}u;
const TK = ${TK}u;
const TQ = ${TQ}u;
var<workgroup> Ks: array<${T}, ${TK * EW}>;
var<workgroup> Vs: array<${T}, ${TK * EVW}>;
@compute @workgroup_size(${TQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let Lq = md_Lq(); let Lk = md_Lk();
  let scale = md_scale();
  let causal = md_causal() != 0u;
  let b = wid.y;
  let row = wid.x * TQ + li;
  let valid = row < Lq;
  var qr: array<${T}, ${EW}>;
  var acc: array<${T}, ${EVW}>;
  ${loadRow(W, 'qr', 'q', 'row', 'Lq', 'E', ' * scale')}
  for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = ${T}(0.0); }
  var m = ninf_f();
  var l = 0.0;
  var s: array<f32, ${TK}>;
  for (var j0 = 0u; j0 < Lk; j0 = j0 + TK) {
    ${stageRows(W, 'Ks', 'k', 'j0', 'TK', 'Lk', 'E', 'TQ')}
    ${stageRows(W, 'Vs', 'v', 'j0', 'TK', 'Lk', 'EV', 'TQ')}
    workgroupBarrier();
    if (valid) {
      let jn = min(TK, Lk - j0);
      var tmax = ninf_f();
      for (var jj = 0u; jj < jn; jj = jj + 1u) {
        var d = ${T}(0.0);
        for (var e = 0u; e < EW; e = e + 1u) { d = d + qr[e] * Ks[jj * EW + e]; }
        var sc = ${W === 4 ? 'd.x + d.y + d.z + d.w' : 'd'};
        ${mask ? 'sc = sc + ld_mk(idx_mk((b * Lq + row) * Lk + j0 + jj));' : ''}
        if (causal && j0 + jj > row) { sc = ninf_f(); }
        s[jj] = sc;
        tmax = max(tmax, sc);
      }
      let mn = max(m, tmax);
      if (mn != ninf_f()) {
        let corr = select(exp(m - mn), 0.0, m == ninf_f());
        l = l * corr;
        for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = acc[e] * corr; }
        for (var jj = 0u; jj < jn; jj = jj + 1u) {
          let p = select(exp(s[jj] - mn), 0.0, s[jj] == ninf_f());
          l = l + p;
          for (var e = 0u; e < EVW; e = e + 1u) { acc[e] = acc[e] + p * Vs[jj * EVW + e]; }
        }
        m = mn;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    for (var e = 0u; e < EV; e = e + 1u) {
      let o = select(${comp('acc', 'e')} / l, nan_f(), l == 0.0);
      st_out((b * Lq + row) * EV + e, o);
    }
  }
}`;
  ctx.run({
    name: `attn${W}:${E}:${Ev}:${TK}`,
    bindings: [...bindings, { name: 'out', storage: out, dtype: q.dtype, access: 'write' }],
    meta,
    code,
    groups: [Math.ceil(Lq / TQ), B],
  });
  return out;
}
