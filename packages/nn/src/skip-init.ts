import * as k from '@kiln/tensor-core';

let depth = 0;
const placeholders = new WeakSet<k.Tensor>();

/**
 * Builds a module without initialising it, for weights that are loaded next
 * (`torch.nn.utils.skip_init`, accelerate's `init_empty_weights`). Inside `build`, the initialisers
 * (`uniform`, `normal`, `kaimingUniform`) draw nothing, and every parameter and persistent buffer
 * that a module registers becomes a placeholder: a tensor of the right shape, dtype and backend
 * whose storage is a single element. {@link loadWeights} (or `loadStateDict`) then swaps each
 * placeholder's storage for the loaded tensor's, so a model loads in its own size instead of
 * twice it. Non-persistent buffers (computed, never saved, such as `position_ids`) keep their values.
 *
 * Until every placeholder is loaded the module computes with zeros; {@link uninitializedKeys} lists
 * what is still missing. `build` runs without gradient recording.
 *
 * @example
 * ```ts
 * const model = skipInit(() => new CLIPTextModel(config));
 * uninitializedKeys(model).length; // every parameter
 * await loadWeights(model, await openSafetensors('text_encoder/model.safetensors'));
 * uninitializedKeys(model).length; // 0
 * ```
 */
export function skipInit<T>(build: () => T): T {
  depth++;
  try {
    return k.noGrad(build);
  } finally {
    depth--;
  }
}

/** @internal Whether a {@link skipInit} build is running. */
export function initSkipped(): boolean {
  return depth > 0;
}

/**
 * A tensor of `shape` that holds no data of its own: a broadcast (0-stride) view of one zero
 * element, so it costs one element whatever its shape. `assign_` replaces its storage.
 *
 * @internal Made by {@link skipInit} builds; exported for layers that create tensors themselves.
 */
export function placeholder(shape: readonly number[], options: { dtype?: k.DType; device?: string } = {}): k.Tensor {
  return k.noGrad(() => {
    const one = k.zeros([1], { dtype: options.dtype ?? 'float32', device: options.device });
    const t = shape.length === 0 ? one.reshape([]) : one.expand(shape);
    one.dispose(); // the view keeps the storage
    placeholders.add(t);
    return t;
  });
}

/**
 * Whether `t` is still a placeholder from a {@link skipInit} build (its storage was never loaded).
 *
 * @example
 * ```ts
 * isPlaceholder(skipInit(() => new Linear(2, 2)).weight); // true
 * ```
 */
export function isPlaceholder(t: k.Tensor): boolean {
  return placeholders.has(t);
}

/** @internal Loaders call this after assigning real storage to a tensor. */
export function markLoaded(t: k.Tensor): void {
  placeholders.delete(t);
}

/** @internal Replaces a tensor registered during a skipInit build by a placeholder (disposing it). */
export function deferred(t: k.Tensor): k.Tensor {
  if (placeholders.has(t)) return t;
  const p = placeholder(t.shape, { dtype: t.dtype, device: t.device });
  t.dispose();
  return p;
}

/**
 * The state-dict keys of `module` whose tensors are still placeholders of a {@link skipInit}
 * build, i.e. not loaded yet.
 *
 * @example
 * ```ts
 * const { missingKeys } = await loadWeights(model, source, { strict: false });
 * uninitializedKeys(model); // the same keys: they still hold no weights
 * ```
 */
export function uninitializedKeys(module: { stateDict(): Record<string, k.Tensor> }): string[] {
  return Object.entries(module.stateDict())
    .filter(([, t]) => isPlaceholder(t))
    .map(([key]) => key);
}
