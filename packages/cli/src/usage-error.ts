import { KilnError } from '@kiln/tensor-core';

/** A command line Kiln cannot run: an unknown command or flag, a missing argument. */
export class UsageError extends KilnError {
  override name = 'UsageError';
}
