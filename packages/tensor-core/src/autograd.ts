import { KilnError } from './errors.js';
import { keep, noGrad, tidy } from './runtime.js';
import type { Tensor } from './tensor.js';
import { add, detach, fullLike } from './ops/index.js';

function freed(op: string): NonNullable<Tensor['_node']> {
  return {
    op,
    inputs: [],
    backward: () => {
      throw new KilnError(
        `backward(): the graph through '${op}' was already freed by an earlier backward(); pass { retainGraph: true } to the first call`,
      );
    },
  };
}

/** Tensors reachable from `root` through tracked inputs, inputs before outputs. */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const i of t._node?.inputs ?? []) if (i.requiresGrad && !seen.has(i)) stack.push([i, false]);
  }
  return order;
}

/**
 * Reverse-mode differentiation from `root`. Gradient rules run without recording; each
 * intermediate gradient is freed once consumed, and leaf gradients accumulate into `.grad`.
 */
export function backward(root: Tensor, grad: Tensor | undefined, retainGraph: boolean): void {
  if (!root.requiresGrad) {
    throw new KilnError('backward(): this tensor does not require grad (no input had requiresGrad, or it was made under noGrad)');
  }
  if (!grad && root.numel() !== 1) {
    throw new KilnError(`backward(): a gradient must be given for a non-scalar output of shape [${root.shape.join(', ')}]`);
  }
  if (grad && grad.shape.join() !== root.shape.join()) {
    throw new KilnError(`backward(): gradient shape [${grad.shape.join(', ')}] does not match output shape [${root.shape.join(', ')}]`);
  }
  noGrad(() => {
    const order = topoOrder(root);
    const grads = new Map<Tensor, Tensor>();
    grads.set(root, grad ? detach(grad) : fullLike(root, 1));
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t._node;
      if (!node) {
        // A leaf: accumulate into .grad, which outlives every tidy scope.
        const acc = t.grad ? add(t.grad, g) : g.isContiguous() ? g : g.contiguous();
        if (t.grad && acc !== t.grad) t.grad.dispose();
        t.grad = keep(acc);
        if (acc !== g) g.dispose();
        continue;
      }
      // In a tidy scope: the rule's intermediates (recomputed activations, partial products) are
      // freed as soon as it returns; only the input gradients it returns survive.
      const inputGrads = tidy(() => node.backward(g));
      node.inputs.forEach((input, j) => {
        let gi = inputGrads[j];
        if (!gi || !input.requiresGrad) return;
        if (gi === g) gi = detach(g);
        const prev = grads.get(input);
        if (prev) {
          grads.set(input, add(prev, gi));
          prev.dispose();
          gi.dispose();
        } else grads.set(input, gi);
      });
      for (const gi of inputGrads) if (gi && !node.inputs.some((inp, j) => inputGrads[j] === gi && inp.requiresGrad)) gi.dispose();
      g.dispose();
      if (!retainGraph) {
        t._node = freed(node.op);
        node.release?.();
      }
    }
  });
}
