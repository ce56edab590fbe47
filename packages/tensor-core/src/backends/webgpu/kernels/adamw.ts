/** One fused AdamW step, in place on param, m and v (f32 math whatever the storage type). */
import type { AdamWHyper, View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import type { GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { linearMain } from '../wgsl.js';

export function adamw(
  ctx: GpuContext,
  param: GpuStorage,
  grad: View<GpuStorage>,
  m: GpuStorage,
  v: GpuStorage,
  size: number,
  dtype: DType,
  hp: AdamWHyper,
): void {
  const meta = new Meta()
    .u32('size', size)
    .f32('decay', 1 - hp.lr * hp.weightDecay)
    .f32('beta1', hp.beta1)
    .f32('oneMinusBeta1', 1 - hp.beta1)
    .f32('beta2', hp.beta2)
    .f32('oneMinusBeta2', 1 - hp.beta2)
    .f32('lr', hp.lr)
    .f32('bc1', 1 - hp.beta1 ** hp.step)
    .f32('bc2', 1 - hp.beta2 ** hp.step)
    .f32('eps', hp.eps)
    .strided('g', grad);
  ctx.run({
    name: 'adamw',
    bindings: [
      { name: 'p', storage: param, dtype, access: 'rw' },
      { name: 'g', storage: grad.storage, dtype: grad.dtype, access: 'read' },
      { name: 'm1', storage: m, dtype, access: 'rw' },
      { name: 'm2', storage: v, dtype, access: 'rw' },
    ],
    meta,
    code: () =>
      linearMain(
        WG,
        `  if (gid >= md_size()) { return; }
  let g = ld_g(idx_g(gid));
  var p = ld_p(gid) * md_decay();
  let mm = md_beta1() * ld_m1(gid) + md_oneMinusBeta1() * g;
  let vv = md_beta2() * ld_m2(gid) + md_oneMinusBeta2() * g * g;
  p = p - (md_lr() * (mm / md_bc1())) / (sqrt(vv / md_bc2()) + md_eps());
  st_p(gid, p);
  st_m1(gid, mm);
  st_m2(gid, vv);`,
      ),
    groups: ctx.linear(size),
  });
}
