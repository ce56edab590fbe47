/**
 * @kiln/jobs: a worker pool for Kiln on BullMQ and Redis. Submit DreamBooth training and
 * generation jobs from anywhere; workers on any number of machines take them, run them, report
 * progress (step, loss, ETA, validation images) through BullMQ events, and store their models,
 * images and HTML reports in a shared storage. A worker killed mid-run loses nothing that was
 * checkpointed: another worker resumes its job from the last checkpoint, bit for bit.
 *
 * @example
 * ```ts
 * import { JobClient, LocalStorage, PoolWorker } from '@kiln/jobs';
 *
 * const worker = await PoolWorker.start({ redis: 'redis://localhost:6379', storage: new LocalStorage('/mnt/kiln'), backend: 'wasm' });
 * const client = await JobClient.connect({ redis: 'redis://localhost:6379' });
 * const id = await client.submit('generate', { model: 'models/sd15', out: 'images/fox', request: { prompt: 'a fox', seed: 1 } });
 * ```
 * @packageDocumentation
 */
export { JobPayloadError, StoragePathError, RateLimitError, JobNotFoundError, RedisUrlError, JobCancelledError } from './errors.js';
export { LocalStorage, keySegments } from './storage.js';
export type { Storage } from './storage.js';
export { JOB_TYPES, TRAINER_PATH_FIELDS, parsePayload } from './payloads.js';
export type { JobType, JobPayload, TrainPayload, GeneratePayload } from './payloads.js';
export { PERMANENT_ERRORS, isPermanent } from './failures.js';
export { DEFAULT_IMAGE_LIMITS, checkImageFolder, imageSize } from './image-limits.js';
export type { ImageLimits } from './image-limits.js';
export { QUEUE_NAMES, QUEUE_OF, KEY_PREFIX, DEFAULT_RETRY, jobOptions, queueOfId } from './queues.js';
export type { QueueName, RetryPolicy } from './queues.js';
export { REDIS_URL_ENV, redisUrl, redactRedisUrl, redactSecrets, connectRedis } from './redis.js';
export { JobClient } from './client.js';
export type { JobClientOptions, SubmitOptions, JobStatus, UserRateLimit } from './client.js';
export { PoolWorker } from './worker.js';
export type { PoolWorkerOptions } from './worker.js';
export type { JobProgress, TrainProgress, GenerateProgress, TrainResultValue, GenerateResultValue } from './progress.js';
