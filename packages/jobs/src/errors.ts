import { KilnError } from '@kiln/tensor-core';

/** A job payload that cannot run: an unknown job type, a missing or mistyped field. Names the field. */
export class JobPayloadError extends KilnError {
  override name = 'JobPayloadError';
  /** The field at fault (`config.instance_data_dir`, `jobs.2.steps`), when there is one. */
  readonly field?: string;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** A storage key that leaves the storage root (`../`, an absolute path, a symlink out) or is not a key at all. */
export class StoragePathError extends KilnError {
  override name = 'StoragePathError';
  constructor(
    message: string,
    /** The key as it was given. */
    readonly key: string,
  ) {
    super(message);
  }
}

/** A user submitted more jobs than their rate limit allows; `retryAfterMs` says when the next one is accepted. */
export class RateLimitError extends KilnError {
  override name = 'RateLimitError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** A job id that the queues do not know (never submitted, or removed). */
export class JobNotFoundError extends KilnError {
  override name = 'JobNotFoundError';
}

/** A Redis URL that does not parse or names no Redis (the message never repeats its password). */
export class RedisUrlError extends KilnError {
  override name = 'RedisUrlError';
}

/** A job stopped by `kiln jobs cancel` (a training job's checkpoint of the step it stopped at is kept). */
export class JobCancelledError extends KilnError {
  override name = 'JobCancelledError';
}
