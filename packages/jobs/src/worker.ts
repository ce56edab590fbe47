import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { TrainerConfig } from '@kiln/dreambooth-trainer';
import { JobCancelledError } from './errors.js';
import { DEFAULT_IMAGE_LIMITS } from './image-limits.js';
import type { ImageLimits } from './image-limits.js';
import { isPermanent } from './failures.js';
import { parsePayload } from './payloads.js';
import { KEY_PREFIX, QUEUE_NAMES, cancelKey } from './queues.js';
import type { QueueName } from './queues.js';
import { connectRedis, redactRedisUrl, redisUrl } from './redis.js';
import type { Storage } from './storage.js';
import { runGenerateJob, runTrainJob } from './run-job.js';
import type { JobContext } from './run-job.js';

/**
 * Options of {@link PoolWorker.start}.
 *
 * @example
 * ```ts
 * const options: PoolWorkerOptions = { storage: new LocalStorage('/mnt/kiln'), backend: 'wasm', concurrency: { generate: 2 }, lockDurationMs: 60_000 };
 * await PoolWorker.start(options);
 * ```
 */
export interface PoolWorkerOptions {
  /** Redis URL (default: `KILN_REDIS_URL`, then `REDIS_URL`). */
  redis?: string;
  /** Where payload paths point: the shared storage every worker mounts. */
  storage: Storage;
  /** The Kiln backend jobs run on here: `wasm`, `cpu` or `webgpu` (it overrides a payload's `backend`). */
  backend: TrainerConfig['backend'];
  /** Jobs run at once, per queue (default 1 each). */
  concurrency?: Partial<Record<QueueName, number>>;
  /** The queues this worker serves (default both). */
  queues?: readonly QueueName[];
  /**
   * How long a job's lock lasts without renewal (default 30 s; renewed every half of it). A
   * killed worker's job is taken over by another worker within about this long.
   */
  lockDurationMs?: number;
  /** How many times a job may be taken over from dead workers before it fails (default 3). */
  maxStalledCount?: number;
  /** Limits on training images (default {@link DEFAULT_IMAGE_LIMITS}). */
  imageLimits?: ImageLimits;
  /** This worker's messages (default stderr); never shows Redis credentials. */
  log?: (line: string) => void;
}

/**
 * A worker of the pool: takes jobs from the `train` and `generate` queues of a Redis and runs them
 * on this machine, each in its own thread (so the worker keeps renewing its BullMQ lock while a
 * long step runs). A training job always resumes from its latest checkpoint when it is tried
 * again, whether the last try failed or its worker died; permanent failures (bad config, bad
 * images, paths outside the storage) fail at once, anything else is retried with backoff.
 *
 * @example
 * ```ts
 * const worker = await PoolWorker.start({ redis: 'redis://localhost:6379', storage: new LocalStorage('/mnt/kiln'), backend: 'wasm', concurrency: { train: 1, generate: 2 } });
 * process.on('SIGTERM', () => void worker.close());
 * ```
 */
export class PoolWorker {
  private shuttingDown = false;
  private readonly active = new Map<string, AbortController>();
  /** Jobs whose lock this worker lost: another worker may be running them now. */
  private readonly lost = new Set<string>();

  private constructor(
    private readonly workers: Worker[],
    private readonly connections: Redis[],
    private readonly log: (line: string) => void,
  ) {}

  static async start(o: PoolWorkerOptions): Promise<PoolWorker> {
    const url = redisUrl(o.redis);
    const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const name = `${hostname()}:${process.pid}`;
    const lockDuration = o.lockDurationMs ?? 30_000;
    const connections: Redis[] = [];
    const self = new PoolWorker([], connections, log);
    const control = connectRedis(url, log);
    connections.push(control);
    for (const queue of o.queues ?? QUEUE_NAMES) {
      const connection = connectRedis(url, log);
      connections.push(connection);
      const worker = new Worker(queue, (job: Job, token?: string) => self.process(job, token, { ...o, control, log, worker: name }), {
        connection,
        prefix: KEY_PREFIX,
        concurrency: o.concurrency?.[queue] ?? 1,
        lockDuration,
        stalledInterval: lockDuration,
        maxStalledCount: o.maxStalledCount ?? 3,
        name,
      });
      worker.on('error', (e) => log(`worker ${name} (${queue}): ${e.message}`));
      // A lock that could not be renewed (Redis unreachable, this process starved for longer than
      // the lock) lets another worker take the job: stop this run, the other one resumes it.
      worker.on('lockRenewalFailed', (ids) => {
        for (const id of ids) {
          log(`job ${id}: lost its lock; stopping here, another worker takes it over`);
          self.lost.add(id);
          self.active.get(id)?.abort();
        }
      });
      worker.on('failed', (job, e) => log(`job ${job?.id}: failed: ${e.message}`));
      worker.on('completed', (job) => log(`job ${job.id}: completed`));
      self.workers.push(worker);
      log(
        `worker ${name}: serving queue ${queue} (concurrency ${o.concurrency?.[queue] ?? 1}) from ${redactRedisUrl(url)}, storage ${o.storage.description}, backend ${o.backend}`,
      );
    }
    await Promise.all(self.workers.map((w) => w.waitUntilReady()));
    return self;
  }

  private async process(
    job: Job,
    token: string | undefined,
    o: PoolWorkerOptions & { control: Redis; log: (line: string) => void; worker: string },
  ): Promise<unknown> {
    const id = job.id!;
    const controller = new AbortController();
    this.active.set(id, controller);
    let cancelled = false;
    // The cancellation flag is polled from this thread, which a running task never blocks.
    const poll = setInterval(() => {
      o.control.exists(cancelKey(id)).then(
        (n) => {
          if (n > 0 && !cancelled) {
            cancelled = true;
            controller.abort();
          }
        },
        () => {},
      );
    }, 1000);
    let logs = Promise.resolve();
    const jobLog = (line: string) => {
      logs = logs.then(() =>
        job.log(line).then(
          () => {},
          () => {},
        ),
      );
    };
    jobLog(`${new Date().toISOString()} try ${job.attemptsStarted} of ${job.opts.attempts ?? 1} on worker ${o.worker}`);
    const ctx: JobContext = {
      job,
      storage: o.storage,
      backend: o.backend,
      imageLimits: o.imageLimits ?? DEFAULT_IMAGE_LIMITS,
      signal: controller.signal,
      log: jobLog,
    };
    try {
      const payload = parsePayload(job.name, job.data);
      const out = payload.type === 'train-dreambooth' ? await runTrainJob(ctx, payload) : await runGenerateJob(ctx, payload);
      if (out.interrupted) {
        if (this.lost.has(id)) throw new Error(`lost the job's lock: ${out.interrupted}`);
        if (cancelled) throw new JobCancelledError(`cancelled by kiln jobs cancel: ${out.interrupted}`);
        // Shutting down: back to the queue without using up a try; the next worker resumes it.
        jobLog(`${new Date().toISOString()} worker ${o.worker} shut down: ${out.interrupted}; the job goes back to the queue`);
        await logs;
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      }
      jobLog(`${new Date().toISOString()} done`);
      await logs;
      return out.value;
    } catch (e) {
      if (e instanceof DelayedError) throw e;
      const err = e instanceof Error ? e : new Error(String(e));
      const reason = `${err.name}: ${err.message}`;
      jobLog(
        `${new Date().toISOString()} ${isPermanent(err) ? 'failed (permanent, no retry)' : 'failed (will retry if tries are left)'}: ${reason}`,
      );
      await logs;
      if (isPermanent(err)) throw new UnrecoverableError(reason);
      throw new Error(reason, { cause: e });
    } finally {
      clearInterval(poll);
      this.active.delete(id);
      this.lost.delete(id);
      if (cancelled) await o.control.del(cancelKey(id)).catch(() => {});
    }
  }

  /**
   * Stops taking jobs, asks running ones to stop at their next step (training saves a checkpoint),
   * puts them back in the queue for another worker, and closes the connections.
   */
  async close(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const c of this.active.values()) c.abort();
    await Promise.all(this.workers.map((w) => w.close()));
    await Promise.all(this.connections.map((c) => c.quit().catch(() => {})));
    this.log('worker closed');
  }
}
