// Progress through BullMQ events (step, loss, ETA, validation images), the stored HTML report, and
// cancelling a running training job. A real redis-server and an in-process worker.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobClient, KEY_PREFIX, LocalStorage, PoolWorker } from '@kiln/jobs';
import type { JobStatus, TrainProgress, TrainResultValue } from '@kiln/jobs';
import { REDIS_MISSING, startRedis } from './redis-server.js';
import type { RedisServer } from './redis-server.js';
import { tinyTrainConfig, tinyWorld, writeSubject } from './world.js';

describe.skipIf(REDIS_MISSING !== null)(
  `progress and cancellation on a real redis-server${REDIS_MISSING ? ` (skipped: ${REDIS_MISSING})` : ''}`,
  () => {
    let redis: RedisServer;
    let root: string;
    let client: JobClient;
    let worker: PoolWorker;
    let events: QueueEvents;

    beforeAll(async () => {
      redis = await startRedis();
      root = await tinyWorld();
      writeSubject(root, 'subjects/dog', 2, 4);
      client = await JobClient.connect({ redis: redis.url });
      worker = await PoolWorker.start({ redis: redis.url, storage: new LocalStorage(root), backend: 'wasm', log: () => {} });
      events = new QueueEvents('train', { connection: { host: '127.0.0.1', port: redis.port }, prefix: KEY_PREFIX });
      await events.waitUntilReady();
    }, 180_000);
    afterAll(async () => {
      await events?.close();
      await worker?.close();
      await client?.close();
      await redis?.stop();
    }, 60_000);

    const settled = async (id: string): Promise<JobStatus> => {
      for (const end = Date.now() + 540_000; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) {
        const s = await client.status(id);
        if (s.state === 'completed' || s.state === 'failed') return s;
      }
      throw new Error(`${id} did not finish`);
    };

    it('streams step, loss, ETA and validation images as progress events, and stores the report', async () => {
      const seen: TrainProgress[] = [];
      events.on('progress', ({ data }) => seen.push(data as unknown as TrainProgress));
      const config = {
        ...tinyTrainConfig('subjects/dog', 'runs/progress', 3, 4),
        validation_prompt: 'a photo of sks dog',
        validation_steps: 2,
        num_validation_images: 1,
      };
      const id = await client.submit('train-dreambooth', { config });
      const s = await settled(id);
      expect(s.state, s.failedReason).toBe('completed');
      expect(seen.length).toBeGreaterThan(0);
      const last = seen.at(-1)!;
      expect(last).toMatchObject({ kind: 'train', step: 4, maxSteps: 4, etaSeconds: 0 });
      for (const p of seen) {
        expect(Number.isFinite(p.loss) && p.loss > 0).toBe(true);
        expect(p.etaSeconds).toBeGreaterThanOrEqual(0);
      }
      const images = seen.flatMap((p) => p.validationImages ?? []);
      expect(images.length).toBeGreaterThan(0);
      for (const key of images) {
        expect(key).toMatch(/^runs\/progress\/logs\/images\/validation\/\d{8}_0\.png$/);
        expect(existsSync(join(root, key))).toBe(true);
      }
      const r = s.result as TrainResultValue;
      expect(r).toMatchObject({ outputDir: 'runs/progress', report: 'runs/progress/logs/report.html', step: 4, resumedFrom: null });
      expect(r.losses).toHaveLength(4);
      const html = readFileSync(join(root, r.report), 'utf8');
      expect(html).toContain('<html');
      expect(html).toContain('a photo of sks dog');
      expect(s.progress).toEqual(last);
    }, 600_000);

    it('cancels a running training job at its next step, keeping a checkpoint of that step', async () => {
      const id = await client.submit('train-dreambooth', { config: tinyTrainConfig('subjects/dog', 'runs/cancel', 4, 200) });
      for (;;) {
        const s = await client.status(id);
        if (s.state === 'active' && ((s.progress as TrainProgress | null)?.step ?? 0) >= 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await client.cancel(id)).toBe('stopping');
      const s = await settled(id);
      expect(s.state).toBe('failed');
      expect(s.failedReason).toMatch(
        /^JobCancelledError: cancelled by kiln jobs cancel: stopped at step (\d+); checkpoint-\1 is in runs\/cancel$/,
      );
      expect(s.attemptsStarted).toBe(1);
      const step = Number(/step (\d+)/.exec(s.failedReason!)![1]);
      expect(step).toBeLessThan(200);
      expect(existsSync(join(root, 'runs/cancel', `checkpoint-${step}`))).toBe(true);
      expect(await client.cancel(id)).toBe('already finished');
    }, 600_000);
  },
);
