import type { JobsOptions } from 'bullmq';
import type { JobType } from './payloads.js';

/**
 * The queues of a pool: training and generation are served (and limited) apart.
 *
 * @example
 * ```ts
 * await PoolWorker.start({ storage, backend: 'webgpu', queues: QUEUE_NAMES.filter((q) => q === 'train') });
 * ```
 */
export const QUEUE_NAMES = ['train', 'generate'] as const;
/**
 * A queue of the pool.
 *
 * @example
 * ```ts
 * const gpuQueues: QueueName[] = ['train'];
 * ```
 */
export type QueueName = (typeof QUEUE_NAMES)[number];

/**
 * Which queue a job type goes to.
 *
 * @example
 * ```ts
 * QUEUE_OF['generate-batch']; // 'generate'
 * ```
 */
export const QUEUE_OF: Record<JobType, QueueName> = { 'train-dreambooth': 'train', generate: 'generate', 'generate-batch': 'generate' };

/**
 * The Redis key prefix of every queue (`kiln:train:…`), so a pool can share a Redis with other apps.
 *
 * @example
 * ```ts
 * const queue = new Queue('train', { connection, prefix: KEY_PREFIX }); // BullMQ's own Queue on the pool's keys
 * ```
 */
export const KEY_PREFIX = 'kiln';

/**
 * How transient failures are retried: `attempts` tries in all, waiting `backoffMs`, 2×, 4×… between them.
 *
 * @example
 * ```ts
 * await client.submit('generate', payload, { retry: { attempts: 5, backoffMs: 60_000 } });
 * ```
 */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

/**
 * Three tries, 15 s then 30 s apart: long enough for a restarted Redis or a remounted volume.
 *
 * @example
 * ```ts
 * await client.submit('generate', payload, { retry: { ...DEFAULT_RETRY, attempts: 5 } });
 * ```
 */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoffMs: 15_000 };

/**
 * BullMQ's options for a new job with this retry policy; finished jobs stay for `kiln jobs status` a week (failed: 30 days).
 *
 * @example
 * ```ts
 * await queue.add('generate', payload, { ...jobOptions(DEFAULT_RETRY), jobId: 'generate-1' });
 * ```
 */
export function jobOptions(retry: RetryPolicy): JobsOptions {
  return {
    attempts: retry.attempts,
    backoff: { type: 'exponential', delay: retry.backoffMs },
    removeOnComplete: { age: 7 * 86_400 },
    removeOnFail: { age: 30 * 86_400 },
  };
}

/**
 * Job ids carry their queue (`train-…`, `generate-…`), so one id finds its job.
 *
 * @example
 * ```ts
 * queueOfId('train-0b5c…'); // 'train'
 * ```
 */
export function queueOfId(id: string): QueueName | null {
  const q = id.split('-')[0];
  return (QUEUE_NAMES as readonly string[]).includes(q) ? (q as QueueName) : null;
}

/** The Redis key a cancellation request for a running job is left in (the worker checks it at every step). */
export const cancelKey = (id: string) => `${KEY_PREFIX}:cancel:${id}`;

/** The Redis key counting a user's submissions in a rate-limit window. */
export const rateKey = (user: string, window: number) => `${KEY_PREFIX}:rate:${user}:${window}`;
