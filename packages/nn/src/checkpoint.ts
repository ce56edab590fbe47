import * as k from '@kiln/tensor-core';
import { Module } from './module.js';

/**
 * What may be passed through {@link checkpoint} to the function: tensors (tracked, and given
 * gradients) and plain values (passed as they are, e.g. `null` for an absent mask or a scale).
 *
 * @example
 * ```ts
 * checkpoint(block, hiddenStates, context, null); // tensors, and plain values such as null
 * ```
 */
export type CheckpointArg = k.Tensor | number | boolean | string | null | undefined;

/** A module or function that checkpointing can re-run with the same arguments. @example checkpoint(resnet, h, temb); checkpoint((x: k.Tensor) => k.silu(x).mul(2), h); */
export type Checkpointable<A extends CheckpointArg[] = k.Tensor[]> = { forward(...inputs: A): k.Tensor } | ((...inputs: A) => k.Tensor);

/** Options of {@link checkpoint}, passed as its last argument. @example checkpoint((x: k.Tensor) => k.linear(x, w), h, { params: [w] }); // closed-over weights get gradients */
export interface CheckpointOptions {
  /**
   * Tensors a plain function reads besides its inputs (closed-over weights) that should get
   * gradients. A module's own parameters are found automatically.
   */
  params?: readonly k.Tensor[];
}

const isOptions = (value: unknown): value is CheckpointOptions => {
  if (value === null || typeof value !== 'object' || value instanceof k.Tensor) return false;
  const proto = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && Object.keys(value).every((key) => key === 'params');
};

function describeArg(value: unknown): string {
  if (value === null || typeof value !== 'object') return typeof value;
  return Array.isArray(value) ? 'an array' : (value.constructor?.name ?? 'an object');
}

/**
 * Gradient checkpointing (`torch.utils.checkpoint`, reentrant flavour): runs `fn` without
 * recording the graph and frees its intermediates at once, keeping only the output; backward
 * re-runs `fn` with gradients on and back-propagates through the recomputed graph. Memory for
 * activations drops from all of `fn`'s intermediates to its inputs and output, at the cost of a
 * second forward.
 *
 * Every argument after `fn` goes to `fn` (or the module's `forward`), in order, both times: a
 * ResNet block gets `(hiddenStates, temb)`, a transformer block `(hiddenStates, context, null)`.
 * Tensor arguments get gradients through the outer graph; plain values (`null`, numbers, strings)
 * pass through unchanged. Objects and arrays are refused (tensors inside them would silently get
 * no gradient), except a trailing {@link CheckpointOptions}. Gradients of the parameters (a
 * module's, or `options.params`) are accumulated into their `.grad` during the recomputation.
 * The function must be deterministic: dropout inside it draws new masks on recomputation
 * (tensor-core's global generator cannot be rewound), so give such ops a fixed seed or keep them outside.
 *
 * @example
 * ```ts
 * for (const block of blocks) h = checkpoint(block, h, temb); // instead of block.forward(h, temb)
 * loss(h).backward();
 * ```
 */
export function checkpoint<A extends CheckpointArg[]>(fn: Checkpointable<A>, ...args: A | [...A, CheckpointOptions]): k.Tensor {
  const all = args as readonly unknown[];
  const last = all[all.length - 1];
  const options: CheckpointOptions = isOptions(last) ? last : {};
  const callArgs = isOptions(last) ? all.slice(0, -1) : all;
  callArgs.forEach((a, i) => {
    if (a !== null && typeof a === 'object' && !(a instanceof k.Tensor)) {
      throw new k.ArgumentError(
        `checkpoint: argument ${i + 1} is ${describeArg(a)}; pass tensors and plain values (numbers, strings, booleans, null) as separate arguments, so that every tensor is recomputed and gets its gradient`,
      );
    }
  });
  const isModule = typeof fn !== 'function';
  const name = isModule ? fn.constructor.name : (fn as { name?: string }).name || 'function';
  const call = (xs: readonly unknown[]): k.Tensor => {
    const y = isModule ? (fn as { forward(...a: unknown[]): unknown }).forward(...xs) : (fn as (...a: unknown[]) => unknown)(...xs);
    if (!(y instanceof k.Tensor)) throw new k.ArgumentError(`checkpoint: ${name} must return one tensor, got ${describeArg(y)}`);
    return y;
  };
  const tensorAt = callArgs.flatMap((a, i) => (a instanceof k.Tensor ? [i] : []));
  const inputs = tensorAt.map((i) => callArgs[i] as k.Tensor);
  const params = [...(fn instanceof Module ? fn.parameters() : []), ...(options.params ?? [])].filter((p) => p.requiresGrad);

  let out = k.noGrad(() => k.tidy(() => call(callArgs)));
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
    const replayArgs = [...callArgs];
    tensorAt.forEach((at, j) => (replayArgs[at] = leaves[j]));
    const inputGrads = k.tidy(() => {
      const y = k.enableGrad(() => call(replayArgs));
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
