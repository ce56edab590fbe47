import type { AdamWHyper } from '../backend.js';
import { KilnError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { backendOf } from './dispatch.js';
import { add, clone, div, mul, sqrt } from './elementwise.js';

/**
 * One AdamW step (decoupled weight decay, PyTorch's update rule), in place on `param`, `m` and
 * `v`: a single fused kernel on backends that have one.
 *
 * @example
 * ```ts
 * k.adamwUpdate(p, p.grad!, m, v, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step: 1 });
 * ```
 */
export function adamwUpdate(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, hp: AdamWHyper): void {
  const b = backendOf('adamwUpdate', param, grad, m, v);
  for (const t of [grad, m, v]) {
    if (t.shape.join() !== param.shape.join() || t.dtype !== param.dtype) {
      throw new KilnError(
        `adamwUpdate: ${t.dtype} [${t.shape.join(', ')}] does not match param ${param.dtype} [${param.shape.join(', ')}]`,
      );
    }
  }
  // The fused kernel writes in place: only into storage that no other tensor (a view, a state-dict
  // copy a caller kept) can see. A shared one is first copied into fresh storage, updated there and
  // swapped in, which keeps the single fused pass (the composite below makes a dozen full-size
  // temporaries: at 100M parameters it was ~100× slower, most of it page faults).
  const owned = (t: Tensor) => t.isContiguous() && t.offset === 0 && t._buf.size === t.numel() && t._buf.refs === 1;
  const fused = b.adamw;
  if (fused) {
    noGrad(() =>
      tidy(() => {
        const [p2, m2, v2] = [param, m, v].map((t) => (owned(t) ? t : clone(t)));
        fused.call(b, p2._view().storage, grad._view(), m2._view().storage, v2._view().storage, param.numel(), param.dtype, hp);
        if (p2 !== param) param.assign_(p2);
        if (m2 !== m) m.assign_(m2);
        if (v2 !== v) v.assign_(v2);
      }),
    );
    return;
  }
  noGrad(() =>
    tidy(() => {
      const bc1 = 1 - hp.beta1 ** hp.step;
      const bc2 = 1 - hp.beta2 ** hp.step;
      const m2 = add(mul(m, hp.beta1), mul(grad, 1 - hp.beta1));
      const v2 = add(mul(v, hp.beta2), mul(mul(grad, grad), 1 - hp.beta2));
      const step = div(mul(m2, hp.lr / bc1), add(sqrt(mul(v2, 1 / bc2)), hp.eps));
      const p2 = add(mul(param, 1 - hp.lr * hp.weightDecay), mul(step, -1));
      param.assign_(p2);
      m.assign_(m2);
      v.assign_(v2);
    }),
  );
}
