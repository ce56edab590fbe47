import * as k from '@kiln/tensor-core';

/**
 * A trainable tensor held by a module. It is a plain `k.Tensor` (a leaf that requires grad), so
 * every op takes it directly; the type alias documents intent in signatures.
 *
 * @example
 * ```ts
 * const w: Parameter = parameter(k.randn([4, 4])); // a leaf tensor that requires grad
 * ```
 */
export type Parameter = k.Tensor;

const parameters = new WeakSet<k.Tensor>();

/**
 * Marks `tensor` as a module parameter: a leaf that requires grad (unless `requiresGrad` is
 * false) and that outlives any `k.tidy` scope it was created in, since the module owns it.
 *
 * @example
 * ```ts
 * const w = parameter(k.randn([4, 3], { seed: 0 }));
 * w.requiresGrad; // true
 * isParameter(w); // true
 * ```
 */
export function parameter(tensor: k.Tensor, options: { requiresGrad?: boolean } = {}): Parameter {
  // A tensor made by ops on tracked inputs would drag its graph along; a parameter is a leaf.
  const leaf = tensor.isLeaf ? tensor : k.keep(tensor.detach());
  if (leaf !== tensor) tensor.dispose();
  leaf.requiresGrad_(options.requiresGrad ?? k.isFloat(leaf.dtype));
  parameters.add(leaf);
  return k.keep(leaf);
}

/**
 * Whether `value` was made by {@link parameter}.
 *
 * @example
 * ```ts
 * isParameter(new Linear(2, 2).weight); // true
 * ```
 */
export function isParameter(value: unknown): value is Parameter {
  return value instanceof k.Tensor && parameters.has(value);
}
