import * as k from '@kiln/tensor-core';
import { Module } from './module.js';
import type { UnaryModule } from './module.js';

/** A module or function that checkpointing can re-run. */
export type Checkpointable = UnaryModule | ((...inputs: k.Tensor[]) => k.Tensor);

/** Options of {@link checkpoint}. */
export interface CheckpointOptions {
  /**
   * Tensors a plain function reads besides its inputs (closed-over weights) that should get
   * gradients. A module's own parameters are found automatically.
   */
  params?: readonly k.Tensor[];
}

/**
 * Gradient checkpointing (`torch.utils.checkpoint`, reentrant flavour): runs `fn` without
 * recording the graph and frees its intermediates at once, keeping only the output; backward
 * re-runs `fn` with gradients on and back-propagates through the recomputed graph. Memory for
 * activations drops from all of `fn`'s intermediates to its inputs and output, at the cost of a
 * second forward.
 *
 * Gradients of the inputs flow on through the outer graph; gradients of the parameters (a module's,
 * or `options.params`) are accumulated into their `.grad` during the recomputation. The function
 * must be deterministic: dropout inside it draws new masks on recomputation (tensor-core's global
 * generator cannot be rewound), so give such ops a fixed seed or keep them outside.
 *
 * @example
 * ```ts
 * for (const block of blocks) h = checkpoint(block, h); // instead of block.forward(h)
 * loss(h).backward();
 * ```
 */
export function checkpoint(fn: Checkpointable, ...args: [...inputs: k.Tensor[]] | [...inputs: k.Tensor[], CheckpointOptions]): k.Tensor {
  const last = args[args.length - 1];
  const options: CheckpointOptions = last !== undefined && !(last instanceof k.Tensor) ? last : {};
  const inputs = (args as readonly unknown[]).filter((a): a is k.Tensor => a instanceof k.Tensor);
  const run = fn instanceof Module ? (...xs: k.Tensor[]) => fn.forward(xs[0]) : (fn as (...xs: k.Tensor[]) => k.Tensor);
  const params = [...(fn instanceof Module ? fn.parameters() : []), ...(options.params ?? [])].filter((p) => p.requiresGrad);

  let out = k.noGrad(() => k.tidy(() => run(...inputs)));
  // The gradient rule is attached to `out`; never attach it to a caller's tensor passed through.
  if (inputs.includes(out)) out = k.noGrad(() => k.clone(out));
  if (!k.isGradEnabled()) return out;

  const tracked = [...inputs, ...params];
  return k.recordGrad(out, 'checkpoint', tracked, (grad) => {
    const leaves = inputs.map((x) => {
      const leaf = x.detach();
      if (x.requiresGrad) leaf.requiresGrad_(true);
      return leaf;
    });
    const inputGrads = k.tidy(() => {
      const y = k.enableGrad(() => run(...leaves));
      // Nested backward: parameters are real leaves, so their .grad accumulates here directly.
      if (y.requiresGrad) y.backward(grad);
      return leaves.map((leaf) => leaf.grad);
    });
    for (const leaf of leaves) {
      leaf.grad = null;
      leaf.dispose();
    }
    // Parameter gradients were already accumulated by the nested backward: give none here.
    return [...inputGrads, ...params.map(() => null)];
  });
}
