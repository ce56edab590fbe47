// `kiln submit` and `kiln jobs` as a user runs them (the kiln binary from sources, the Redis URL
// in the environment), against a real redis-server with no worker, so jobs stay where they are put.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_PREFIX } from '@kiln/jobs';
import { REDIS_MISSING, startRedis } from './redis-server.js';
import type { RedisServer } from './redis-server.js';
import { tempDir } from './world.js';

const bin = fileURLToPath(new URL('../../cli/src/bin.ts', import.meta.url));

describe.skipIf(REDIS_MISSING !== null)(`kiln submit and kiln jobs${REDIS_MISSING ? ` (skipped: ${REDIS_MISSING})` : ''}`, () => {
  let redis: RedisServer;
  let queues: Record<'train' | 'generate', Queue>;
  const kiln = (...args: string[]): Promise<{ code: number; out: string; err: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        ['--conditions=kiln-source', '--import', 'tsx', bin, ...args],
        { env: { ...process.env, KILN_REDIS_URL: redis.url } },
        (error, out, err) => resolve({ code: error ? Number(error.code) : 0, out: out.trim(), err: err.trim() }),
      );
    });

  beforeAll(async () => {
    redis = await startRedis('cli-s3cret');
    const connection = { host: '127.0.0.1', port: redis.port, password: 'cli-s3cret' };
    queues = {
      train: new Queue('train', { connection, prefix: KEY_PREFIX }),
      generate: new Queue('generate', { connection, prefix: KEY_PREFIX }),
    };
  }, 180_000);
  afterAll(async () => {
    await Promise.all(Object.values(queues ?? {}).map((q) => q.close()));
    await redis?.stop();
  }, 60_000);

  it('submits a training job with trainer flags, shows its status, and cancels it', async () => {
    const train = [
      '--pretrained_model_name_or_path',
      'models/tiny',
      '--instance_data_dir',
      'subjects/dog',
      '--instance_prompt',
      'a photo of sks dog',
    ];
    const sub = await kiln('submit', 'train-dreambooth', '--user', 'ana', '--attempts', '5', ...train, '--max_train_steps', '3');
    expect(sub.err).toBe('');
    expect(sub.code).toBe(0);
    const id = sub.out;
    expect(id).toMatch(/^train-[0-9a-f-]{36}$/);
    const job = (await queues.train.getJob(id))!;
    expect(job.name).toBe('train-dreambooth');
    expect(job.data).toMatchObject({
      user: 'ana',
      config: { max_train_steps: 3, output_dir: `jobs/${id}`, instance_data_dir: 'subjects/dog' },
    });
    expect(job.opts.attempts).toBe(5);

    const status = await kiln('jobs', 'status', id);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ id, type: 'train-dreambooth', user: 'ana', state: 'waiting', attemptsStarted: 0 });
    expect(JSON.parse((await kiln('jobs', 'status')).out)).toMatchObject({ train: { waiting: 1 } });

    expect((await kiln('jobs', 'cancel', id)).out).toBe(`${id}: removed`);
    const gone = await kiln('jobs', 'logs', id);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/no such job/);
  }, 600_000);

  it('refuses a path out of the storage and a malformed option before queueing anything', async () => {
    const out = await kiln(
      'submit',
      'train-dreambooth',
      '--pretrained_model_name_or_path',
      'm',
      '--instance_data_dir',
      '../../home',
      '--instance_prompt',
      'x',
    );
    expect(out.code).toBe(1);
    expect(out.err).toMatch(/^kiln submit: config\.instance_data_dir = "\.\.\/\.\.\/home": leaves the storage root/);
    const bad = await kiln(
      'submit',
      'train-dreambooth',
      '--pretrained_model_name_or_path',
      'm',
      '--instance_data_dir',
      'd',
      '--instance_prompt',
      'x',
      '--max_train_steps',
      'lots',
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/max_train_steps/);
    expect(await queues.train.count()).toBe(0);
  }, 600_000);

  it('submits a generate-batch from a prompts file, the command line giving defaults', async () => {
    const file = join(tempDir('batch'), 'prompts.jsonl');
    writeFileSync(file, '{"prompt": "a fox", "seed": 1}\n\n{"prompt": "an owl", "steps": 5}\n');
    const sub = await kiln('submit', 'generate-batch', '--model', 'models/tiny', '--out', 'images/b', '--batch', file, '--steps', '3');
    expect(sub.code, sub.err).toBe(0);
    const job = (await queues.generate.getJob(sub.out))!;
    expect(job.data).toEqual({
      model: 'models/tiny',
      loras: [],
      out: 'images/b',
      requests: [
        { prompt: 'a fox', seed: 1, steps: '3' },
        { prompt: 'an owl', steps: 5 },
      ],
    });
    const worker = await kiln('worker', '--concurrency', '2');
    expect(worker.code).toBe(2);
    expect(worker.err).toMatch(/--storage DIR is required/);
    // The password given in the URL never shows.
    for (const r of [sub, worker]) expect(`${r.out}${r.err}`).not.toContain('cli-s3cret');
  }, 600_000);
});
