import { KilnError } from '@kiln/tensor-core';

/**
 * A job payload that cannot run: an unknown job type, a missing or mistyped field. Names the field.
 *
 * @example
 * ```ts
 * try {
 *   parsePayload('train-dreambooth', { config: {} });
 * } catch (e) {
 *   if (e instanceof JobPayloadError) console.error(e.field, e.message); // 'config.output_dir', …
 * }
 * ```
 */
export class JobPayloadError extends KilnError {
  override name = 'JobPayloadError';
  /** The field at fault (`config.instance_data_dir`, `jobs.2.steps`), when there is one. */
  readonly field?: string;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/**
 * A storage key that leaves the storage root (`../`, an absolute path, a symlink out) or is not a key at all.
 *
 * @example
 * ```ts
 * await new LocalStorage('/mnt/kiln').resolve('../etc/passwd').catch((e: StoragePathError) => e.key); // '../etc/passwd'
 * ```
 */
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

/**
 * A user submitted more jobs than their rate limit allows; `retryAfterMs` says when the next one is accepted.
 *
 * @example
 * ```ts
 * const e = await client.submit('generate', payload).catch((x: unknown) => x);
 * if (e instanceof RateLimitError) setTimeout(retry, e.retryAfterMs);
 * ```
 */
export class RateLimitError extends KilnError {
  override name = 'RateLimitError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/**
 * A job id that the queues do not know (never submitted, or removed).
 *
 * @example
 * ```ts
 * await client.status('train-unknown').catch((e) => e instanceof JobNotFoundError); // true
 * ```
 */
export class JobNotFoundError extends KilnError {
  override name = 'JobNotFoundError';
}

/**
 * A Redis URL that does not parse or names no Redis (the message never repeats its password).
 *
 * @example
 * ```ts
 * redisUrl('http://cache:6379'); // throws RedisUrlError: the Redis URL's scheme is http: …
 * ```
 */
export class RedisUrlError extends KilnError {
  override name = 'RedisUrlError';
}

/**
 * A job stopped by `kiln jobs cancel` (a training job's checkpoint of the step it stopped at is kept).
 *
 * @example
 * ```ts
 * await client.cancel(id); // 'stopping'
 * (await client.status(id)).failedReason; // 'JobCancelledError: cancelled by kiln jobs cancel: stopped at step 120; …'
 * ```
 */
export class JobCancelledError extends KilnError {
  override name = 'JobCancelledError';
}
