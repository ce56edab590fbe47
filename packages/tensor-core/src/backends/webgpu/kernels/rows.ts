/** Row gather (embedding lookup) and its gradient, scatter-add of rows by index. */
import type { View } from '../../../backend.js';
import type { GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { linearMain } from '../wgsl.js';
import { fill, isIntish } from './elementwise.js';

type GV = View<GpuStorage>;

/**
 * One invocation per (index position n, column c) over `src` ([*, C]) and `index` (int32 [N]);
 * `body` sees `n`, `c`, the row id `r`, and `src_at(j, c)` / `id_at(j)` for any position j.
 */
function indexedRows(ctx: GpuContext, name: string, src: GV, index: GV, out: GpuStorage, rows: number, body: string): void {
  const Nn = index.shape[0];
  const C = src.shape[1];
  const meta = new Meta().u32s({
    n: Nn * C,
    cols: C,
    rows,
    ids: Nn,
    sOff: src.offset,
    sSr: src.strides[0],
    sSc: src.strides[1],
    ixOff: index.offset,
    ixS: index.strides[0],
  });
  ctx.run({
    name,
    bindings: [
      { name: 's', storage: src.storage, dtype: src.dtype, access: 'read' },
      { name: 'ix', storage: index.storage, dtype: index.dtype, access: 'read' },
      { name: 'out', storage: out, dtype: src.dtype, access: 'write' },
    ],
    meta,
    code: () =>
      `fn src_at(j: u32, c: u32) -> u32 { return md_sOff() + j * md_sSr() + c * md_sSc(); }
fn id_at(j: u32) -> i32 { return ldi_ix(md_ixOff() + j * md_ixS()); }
` + linearMain(WG, `  if (gid >= md_n()) { return; }\n  let n = gid / md_cols(); let c = gid % md_cols();\n  let r = id_at(n);\n${body}`),
    groups: ctx.linear(Nn * C),
  });
}

/** table: [R, C], index: int32 [N] → [N, C]; out-of-range ids give zero rows. */
export function gatherRows(ctx: GpuContext, table: GV, index: GV): GpuStorage {
  const out = ctx.alloc(table.dtype, index.shape[0] * table.shape[1]);
  const int = isIntish(table.dtype);
  indexedRows(
    ctx,
    'gather',
    table,
    index,
    out,
    table.shape[0],
    `
  if (r < 0 || u32(r) >= md_rows()) { ${int ? 'sti_out(gid, 0)' : 'st_out(gid, 0.0)'}; return; }
  ${int ? 'sti_out(gid, ldi_s' : 'st_out(gid, ld_s'}(src_at(u32(r), c)));`,
  );
  return out;
}

/** src: [N, C], index: int32 [N] → [rows, C] holding the sums of src rows at their index. */
export function scatterAddRows(ctx: GpuContext, src: GV, index: GV, rows: number): GpuStorage {
  const out = fill(ctx, src.dtype, rows * src.shape[1], 0);
  // One invocation per (first occurrence of a row id, column): it sums every source row with
  // that id in order, so no two invocations write the same element and no atomics are needed.
  indexedRows(
    ctx,
    'scatter',
    src,
    index,
    out,
    rows,
    `
  if (r < 0 || u32(r) >= md_rows()) { return; }
  for (var j = 0u; j < n; j = j + 1u) { if (id_at(j) == r) { return; } }
  var acc = 0.0;
  for (var j = n; j < md_ids(); j = j + 1u) {
    if (id_at(j) == r) { acc = acc + ld_s(src_at(j, c)); }
  }
  st_out(u32(r) * md_cols() + c, acc);`,
  );
  return out;
}
