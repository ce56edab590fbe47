// Permanent failures fail at once with the error as the job's failure reason; transient ones are
// retried with backoff; cancellation and per-user rate limits. Against a real redis-server, with an
// in-process worker. Payloads go in through BullMQ directly where they must get past the client's
// own validation, as an old or hostile client's would.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, JobClient, KEY_PREFIX, LocalStorage, PoolWorker, RateLimitError, StoragePathError, jobOptions } from '@kiln/jobs';
import type { JobStatus } from '@kiln/jobs';
import { TrainerConfigError } from '@kiln/dreambooth-trainer';
import { REDIS_MISSING, startRedis } from './redis-server.js';
import type { RedisServer } from './redis-server.js';
import { tinyTrainConfig, tinyWorld, writeSubject } from './world.js';

/** A storage whose first look-up of `images/retry` fails as a flaky network volume would. */
class FlakyStorage extends LocalStorage {
  failures = 0;
  override async resolve(key: string, field?: string): Promise<string> {
    if (key === 'images/retry' && this.failures++ === 0)
      throw Object.assign(new Error('EIO: i/o error, stat images/retry'), { code: 'EIO' });
    return super.resolve(key, field);
  }
}

/** A PNG whose header says 20000×20000: a few bytes on disk, 4.8 GB decoded. */
function pngBomb(): Uint8Array {
  const b = new Uint8Array(64);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(b.buffer).setUint32(16, 20000);
  new DataView(b.buffer).setUint32(20, 20000);
  return b;
}

describe.skipIf(REDIS_MISSING !== null)(`job failures on a real redis-server${REDIS_MISSING ? ` (skipped: ${REDIS_MISSING})` : ''}`, () => {
  let redis: RedisServer;
  let root: string;
  let client: JobClient;
  let raw: Queue;
  let worker: PoolWorker | undefined;
  let storage: FlakyStorage;
  const workerLog: string[] = [];

  beforeAll(async () => {
    redis = await startRedis('failures-s3cret');
    root = await tinyWorld();
    writeSubject(root, 'subjects/ok', 2, 1);
    writeSubject(root, 'subjects/bomb', 1, 2);
    writeFileSync(join(root, 'subjects/bomb/huge.png'), pngBomb());
    writeSubject(root, 'subjects/broken', 1, 3);
    writeFileSync(join(root, 'subjects/broken/bad.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
    client = await JobClient.connect({ redis: redis.url, rateLimit: { max: 2, windowMs: 60_000 } });
    raw = new Queue('train', { connection: { host: '127.0.0.1', port: redis.port, password: 'failures-s3cret' }, prefix: KEY_PREFIX });
    storage = new FlakyStorage(root);
  }, 180_000);
  afterAll(async () => {
    await worker?.close();
    await raw?.close();
    await client?.close();
    await redis?.stop();
  }, 60_000);

  const startWorker = async () => {
    worker ??= await PoolWorker.start({ redis: redis.url, storage, backend: 'wasm', log: (l) => workerLog.push(l) });
  };
  const settled = async (id: string, ms = 540_000): Promise<JobStatus> => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) {
      const s = await client.status(id);
      if (s.state === 'completed' || s.state === 'failed') return s;
    }
    throw new Error(`${id} did not finish`);
  };
  const enqueue = async (name: string, data: unknown) => {
    const id = `train-${Math.random().toString(36).slice(2)}`;
    await raw.add(name, data, { ...jobOptions({ attempts: 3, backoffMs: 100 }), jobId: id });
    return id;
  };

  it('cancels a waiting job and limits submissions per user (before any worker runs)', async () => {
    const id = await client.submit('train-dreambooth', { user: 'bo', config: tinyTrainConfig('subjects/ok', 'runs/cancelled', 1) });
    expect(id).toMatch(/^train-/);
    expect((await client.status(id)).state).toBe('waiting');
    expect(await client.cancel(id)).toBe('removed');
    await expect(client.status(id)).rejects.toThrow(/no such job/);
    const id2 = await client.submit('train-dreambooth', { user: 'bo', config: tinyTrainConfig('subjects/ok', 'runs/second', 1) });
    const over = await client
      .submit('train-dreambooth', { user: 'bo', config: tinyTrainConfig('subjects/ok', 'runs/third', 1) })
      .catch((e) => e);
    expect(over).toBeInstanceOf(RateLimitError);
    expect((over as Error).message).toMatch(/user bo: 2 jobs per 60 s is the limit/);
    // Another user has a budget of their own.
    const other = await client.submit('train-dreambooth', { user: 'cy', config: tinyTrainConfig('subjects/ok', 'runs/other', 1) });
    for (const x of [id2, other]) expect(await client.cancel(x)).toBe('removed');
  });

  it('refuses bad payloads at submission with the same errors', async () => {
    const bad = (config: Record<string, unknown>) => client.submit('train-dreambooth', { config }).catch((e: unknown) => e);
    expect(await bad({ ...tinyTrainConfig('subjects/ok', 'runs/x', 1), instance_data_dir: '../../etc' })).toBeInstanceOf(StoragePathError);
    expect(await bad({ ...tinyTrainConfig('subjects/ok', 'runs/x', 1), resolution: 'big' })).toBeInstanceOf(TrainerConfigError);
  });

  it.each([
    [
      'a ../ path',
      { config: { ...tinyTrainConfig('subjects/ok', 'runs/a', 1), instance_data_dir: '../../etc' } },
      /^StoragePathError: config\.instance_data_dir = "\.\.\/\.\.\/etc": leaves the storage root/,
    ],
    [
      'an oversized image',
      { config: tinyTrainConfig('subjects/bomb', 'runs/b', 1) },
      /^DatasetError: instance image huge\.png: 20000×20000 \(400\.0 megapixels\) is over the limit/,
    ],
    [
      'a malformed config',
      { config: { ...tinyTrainConfig('subjects/ok', 'runs/c', 1), max_train_steps: 0 } },
      /^TrainerConfigError: config: max_train_steps = 0 is invalid/,
    ],
    ['an unknown job type', { config: {} }, /^JobPayloadError: unknown job type "train-lora"/],
  ])(
    'fails %s at once, without retries, with the error as the failure reason',
    async (what, data, reason) => {
      await startWorker();
      const id = await enqueue(what === 'an unknown job type' ? 'train-lora' : 'train-dreambooth', data);
      const s = await settled(id);
      expect(s.state).toBe('failed');
      expect(s.failedReason).toMatch(reason);
      expect(s.attemptsStarted, (await client.logs(id)).join('\n')).toBe(1); // 3 were allowed
      expect((await client.logs(id)).at(-1)).toMatch(/failed \(permanent, no retry\)/);
    },
    300_000,
  );

  it("fails at once on the trainer's DatasetError raised inside the task thread (an image that does not decode)", async () => {
    await startWorker();
    const id = await enqueue('train-dreambooth', { config: tinyTrainConfig('subjects/broken', 'runs/d', 1, 2) });
    const s = await settled(id);
    expect(s.state).toBe('failed');
    expect(s.failedReason).toMatch(/^DatasetError: .*bad\.png/);
    expect(s.attemptsStarted).toBe(1);
  }, 600_000);

  it('retries a transient failure with backoff and then succeeds', async () => {
    await startWorker();
    const id = await client.submit(
      'generate',
      { model: 'models/tiny', out: 'images/retry', request: { prompt: 'a fox', steps: 2, seed: 5 } },
      { retry: { attempts: 3, backoffMs: 200 } },
    );
    const s = await settled(id);
    expect(s.state, s.failedReason).toBe('completed');
    expect(s.attemptsStarted, (await client.logs(id)).join('\n')).toBe(2);
    const logs = await client.logs(id);
    expect(logs.some((l) => /failed \(will retry if tries are left\): Error: EIO: i\/o error/.test(l))).toBe(true);
    expect(s.result).toEqual({ results: [{ files: [expect.stringMatching(/^images\/retry\/.*-00000-0\.png$/)], seeds: [5] }], skipped: 0 });
    expect(DEFAULT_RETRY.attempts).toBeGreaterThan(1);
    // Redis asked for a password; no log line shows it.
    expect(workerLog.join('\n')).not.toContain('failures-s3cret');
  }, 600_000);
});
