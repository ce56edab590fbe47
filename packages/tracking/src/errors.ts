import { KilnError } from '@kiln/tensor-core';

/**
 * A tracking input Kiln cannot use: a bad metric value, an image of the wrong size, a run folder
 * with no logs, or a corrupt log line. The message names the file, line or field.
 *
 * @example
 * ```ts
 * openRun('runs/x', { reportTo: ['wandb'] as never }); // throws TrackingError: unknown reportTo
 * ```
 */
export class TrackingError extends KilnError {
  override name = 'TrackingError';
}
