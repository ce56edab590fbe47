import { KilnError } from '@kiln/tensor-core';

/**
 * Guidance given arguments it cannot use: a non-finite scale, a rescale factor outside [0, 1],
 * conditional and unconditional embeddings whose shapes do not pair up, or a model output whose
 * batch is not the guided batch. The message names the argument and the shapes.
 *
 * @example
 * ```ts
 * new ClassifierFreeGuidance({ guidanceRescale: 2 }); // GuidanceError: guidanceRescale must be in [0, 1], got 2
 * ```
 */
export class GuidanceError extends KilnError {
  override name = 'GuidanceError';
}
