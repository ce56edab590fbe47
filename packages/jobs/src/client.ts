import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobNotFoundError, RateLimitError } from './errors.js';
import { JOB_TYPES, parsePayload } from './payloads.js';
import type { JobType } from './payloads.js';
import type { JobProgress } from './progress.js';
import { DEFAULT_RETRY, KEY_PREFIX, QUEUE_NAMES, QUEUE_OF, cancelKey, jobOptions, queueOfId, rateKey } from './queues.js';
import type { QueueName, RetryPolicy } from './queues.js';
import { connectRedis, redisUrl } from './redis.js';

/**
 * At most `max` submissions per user in each window of `windowMs`.
 *
 * @example
 * ```ts
 * const client = await JobClient.connect({ rateLimit: { max: 20, windowMs: 3_600_000 } }); // 20 jobs per user per hour
 * ```
 */
export interface UserRateLimit {
  max: number;
  windowMs: number;
}

/**
 * Options of {@link JobClient.connect}.
 *
 * @example
 * ```ts
 * const client = await JobClient.connect({ redis: 'redis://:secret@queue:6379', log: (line) => console.error(line) });
 * ```
 */
export interface JobClientOptions {
  /** Redis URL (default: `KILN_REDIS_URL`, then `REDIS_URL`). */
  redis?: string;
  /** Per-user submission limit (default: none). */
  rateLimit?: UserRateLimit;
  /** Where connection errors go (credentials removed). */
  log?: (line: string) => void;
}

/**
 * Options of one submission.
 *
 * @example
 * ```ts
 * await client.submit('train-dreambooth', payload, { priority: 1, retry: { attempts: 5, backoffMs: 30_000 } });
 * ```
 */
export interface SubmitOptions {
  /** Retries for transient failures (default {@link DEFAULT_RETRY}). */
  retry?: RetryPolicy;
  /** BullMQ priority: 1 is highest; jobs without one go first. */
  priority?: number;
}

/**
 * A job as `kiln jobs status` shows it.
 *
 * @example
 * ```ts
 * const s: JobStatus = await client.status(id);
 * if (s.state === 'failed') console.error(s.failedReason);
 * ```
 */
export interface JobStatus {
  id: string;
  type: JobType;
  user?: string;
  /** BullMQ's state: waiting, delayed, prioritized, active, completed, failed (or unknown). */
  state: string;
  progress: JobProgress | null;
  /** Tries started (a killed worker's try counts) and tries that ended in failure. */
  attemptsStarted: number;
  attemptsMade: number;
  failedReason?: string;
  result?: unknown;
  createdAt: string;
  finishedAt?: string;
}

/**
 * Submits jobs to a pool and looks after them: status, cancellation, logs. Payloads are validated
 * here as the workers will validate them, so a bad one is refused at once instead of failing later.
 *
 * @example
 * ```ts
 * const client = await JobClient.connect({ redis: 'redis://localhost:6379' });
 * const id = await client.submit('train-dreambooth', {
 *   config: { pretrained_model_name_or_path: 'models/sd15', instance_data_dir: 'subjects/dog', instance_prompt: 'a photo of sks dog', output_dir: 'runs/dog', max_train_steps: 400 },
 * });
 * console.log(await client.status(id)); // { state: 'waiting', … }
 * await client.close();
 * ```
 */
export class JobClient {
  private constructor(
    private readonly redis: Redis,
    private readonly queues: Record<QueueName, Queue>,
    private readonly rateLimit?: UserRateLimit,
  ) {}

  /** Connects to the pool's Redis. */
  static async connect(options: JobClientOptions = {}): Promise<JobClient> {
    const url = redisUrl(options.redis);
    const redis = connectRedis(url, options.log ?? ((line) => process.stderr.write(`${line}\n`)));
    const queues = Object.fromEntries(QUEUE_NAMES.map((q) => [q, new Queue(q, { connection: redis, prefix: KEY_PREFIX })])) as Record<
      QueueName,
      Queue
    >;
    return new JobClient(redis, queues, options.rateLimit);
  }

  /**
   * Validates and enqueues a job; resolves to its id (`train-…` or `generate-…`). A training job
   * without `config.output_dir` gets `jobs/<id>`. A bad payload is
   * a {@link JobPayloadError}, {@link StoragePathError} or the trainer's `TrainerConfigError`; a user
   * over the rate limit a {@link RateLimitError}.
   */
  async submit(type: JobType, payload: unknown, options: SubmitOptions = {}): Promise<string> {
    if (!(JOB_TYPES as readonly string[]).includes(type)) parsePayload(type, payload); // throws the unknown-type error
    const queue = QUEUE_OF[type];
    const id = `${queue}-${randomUUID()}`;
    const data = withDefaultOutput(type, payload, id);
    const parsed = parsePayload(type, data);
    if (parsed.user && this.rateLimit) await this.charge(parsed.user, this.rateLimit);
    await this.queues[queue].add(type, data, { ...jobOptions(options.retry ?? DEFAULT_RETRY), jobId: id, priority: options.priority });
    return id;
  }

  /** Fixed-window counter in Redis: the submission that goes over the limit is refused, not queued. */
  private async charge(user: string, limit: UserRateLimit): Promise<void> {
    const window = Math.floor(Date.now() / limit.windowMs);
    const key = rateKey(user, window);
    const [[, count]] = (await this.redis.multi().incr(key).pexpire(key, limit.windowMs).exec()) as [[null, number], [null, number]];
    if (count > limit.max) {
      const retryAfterMs = (window + 1) * limit.windowMs - Date.now();
      throw new RateLimitError(
        `user ${user}: ${limit.max} jobs per ${limit.windowMs / 1000} s is the limit; the next is accepted in ${Math.ceil(retryAfterMs / 1000)} s`,
        retryAfterMs,
      );
    }
  }

  private async job(id: string): Promise<Job> {
    const queue = queueOfId(id);
    const job = queue ? await this.queues[queue].getJob(id) : undefined;
    if (!job)
      throw new JobNotFoundError(`job ${id}: no such job (ids look like train-… or generate-…; finished jobs are kept 7 days, failed 30)`);
    return job;
  }

  /** A job's state, progress, tries, failure reason or result. */
  async status(id: string): Promise<JobStatus> {
    // The state first, then the job's data: a job that finishes in between is read with its
    // result or failure reason (the other order could report 'failed' without the reason).
    const queue = queueOfId(id);
    const state = queue ? await this.queues[queue].getJobState(id) : 'unknown';
    const job = await this.job(id);
    const progress = typeof job.progress === 'object' ? (job.progress as unknown as JobProgress) : null;
    return {
      id,
      type: job.name as JobType,
      user: (job.data as { user?: string }).user,
      state,
      progress,
      attemptsStarted: job.attemptsStarted,
      attemptsMade: job.attemptsMade,
      ...(job.failedReason ? { failedReason: job.failedReason } : {}),
      ...(job.returnvalue !== undefined && job.returnvalue !== null ? { result: job.returnvalue } : {}),
      createdAt: new Date(job.timestamp).toISOString(),
      ...(job.finishedOn ? { finishedAt: new Date(job.finishedOn).toISOString() } : {}),
    };
  }

  /**
   * Cancels a job: one not started yet is removed; a running one is asked to stop, and its worker
   * stops it at the next step (a training job saves a checkpoint first) and fails it as cancelled.
   */
  async cancel(id: string): Promise<'removed' | 'stopping' | 'already finished'> {
    const job = await this.job(id);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'already finished';
    if (state !== 'active') {
      try {
        await job.remove();
        return 'removed';
      } catch {
        // It became active between the two calls (a worker holds its lock): stop it instead.
      }
    }
    await this.redis.set(cancelKey(id), '1', 'EX', 7 * 86_400);
    return 'stopping';
  }

  /** The job's log lines (the trainer's messages, each try's start and end), oldest first. */
  async logs(id: string): Promise<string[]> {
    const job = await this.job(id);
    const queue = queueOfId(id)!;
    return (await this.queues[queue].getJobLogs(job.id!, 0, -1, true)).logs;
  }

  /** Jobs counts per queue and state. */
  async counts(): Promise<Record<QueueName, Record<string, number>>> {
    const out = {} as Record<QueueName, Record<string, number>>;
    for (const q of QUEUE_NAMES) out[q] = await this.queues[q].getJobCounts();
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
    await this.redis.quit().catch(() => {});
  }
}

/** A training payload without `config.output_dir` trains into `jobs/<id>` of the storage. */
function withDefaultOutput(type: JobType, payload: unknown, id: string): unknown {
  if (type !== 'train-dreambooth' || typeof payload !== 'object' || payload === null) return payload;
  const config = (payload as { config?: unknown }).config;
  if (typeof config !== 'object' || config === null || 'output_dir' in config) return payload;
  return { ...payload, config: { ...config, output_dir: `jobs/${id}` } };
}
