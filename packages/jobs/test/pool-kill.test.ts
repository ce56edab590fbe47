// Done-when of issue 16: 3 worker processes (`kiln worker`), 6 tiny training jobs, one worker
// SIGKILLed mid-job after a checkpoint; all 6 finish, the killed job resumes from its last
// checkpoint on another worker, nothing committed runs twice, and its weights equal an
// uninterrupted run's byte for byte.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobClient } from '@kiln/jobs';
import type { JobStatus, TrainProgress, TrainResultValue } from '@kiln/jobs';
import { REDIS_MISSING, startRedis } from './redis-server.js';
import type { RedisServer } from './redis-server.js';
import { tinyTrainConfig, tinyWorld, writeSubject } from './world.js';

const bin = fileURLToPath(new URL('../../cli/src/bin.ts', import.meta.url));
const STEPS = 8;
const PASSWORD = 'kiln-test-s3cret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface WorkerProcess {
  p: ChildProcess;
  log: string;
}

function startWorker(redisUrl: string, storage: string): WorkerProcess {
  const p = spawn(
    process.execPath,
    [
      '--conditions=kiln-source',
      '--import',
      'tsx',
      bin,
      'worker',
      '--storage',
      storage,
      '--backend',
      'wasm',
      '--concurrency',
      '1',
      '--lock-ms',
      '3000',
    ],
    // The URL (and so any password in it) comes from the environment, as in production.
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KILN_REDIS_URL: redisUrl } },
  );
  const w: WorkerProcess = { p, log: '' };
  p.stdout!.setEncoding('utf8').on('data', (s: string) => (w.log += s));
  p.stderr!.setEncoding('utf8').on('data', (s: string) => (w.log += s));
  return w;
}

describe.skipIf(REDIS_MISSING !== null)(
  `a pool of 3 workers on a real redis-server${REDIS_MISSING ? ` (skipped: ${REDIS_MISSING})` : ''}`,
  () => {
    let redis: RedisServer;
    let root: string;
    let client: JobClient;
    const workers: WorkerProcess[] = [];

    beforeAll(async () => {
      redis = await startRedis(PASSWORD);
      root = await tinyWorld();
      client = await JobClient.connect({ redis: redis.url });
    }, 180_000);
    afterAll(async () => {
      await client?.close();
      await Promise.all(
        workers.map(({ p }) => {
          if (p.exitCode !== null || p.signalCode !== null) return;
          const exited = new Promise((r) => p.once('exit', r));
          p.kill('SIGTERM');
          return exited;
        }),
      );
      await redis?.stop();
    }, 60_000);

    it('finishes 6 training jobs after one worker is SIGKILLed mid-job, resuming it exactly', async () => {
      // Jobs i and i + 3 train the same subject with the same seed: each killed job has an uninterrupted twin.
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const s = i % 3;
        writeSubject(root, `subjects/s${s}`, 2, s);
        ids.push(
          await client.submit('train-dreambooth', {
            user: 'test',
            config: tinyTrainConfig(`subjects/s${s}`, `runs/job${i}`, 10 + s, STEPS),
          }),
        );
      }
      for (let i = 0; i < 3; i++) workers.push(startWorker(redis.url, root));

      // Kill the worker of the first job seen past checkpoint-2 and before its end.
      let killed: { id: string; pid: number; step: number } | null = null;
      const deadline = Date.now() + 240_000;
      while (!killed && Date.now() < deadline) {
        for (const id of ids) {
          const s = await client.status(id);
          const step = (s.progress as TrainProgress | null)?.step ?? 0;
          if (s.state !== 'active' || step < 3 || step > STEPS - 3) continue;
          const pid = Number(/on worker [^:]+:(\d+)$/.exec((await client.logs(id)).filter((l) => l.includes('on worker')).at(-1)!)![1]);
          const victim = workers.find((w) => w.p.pid === pid)!;
          victim.p.kill('SIGKILL');
          killed = { id, pid, step };
          break;
        }
        await sleep(200);
      }
      expect(killed, 'no job was seen between checkpoint-2 and its last steps').not.toBeNull();
      const { id: killedId, step: seenAt } = killed!;

      const final = new Map<string, JobStatus>();
      while (final.size < ids.length && Date.now() < deadline + 480_000) {
        for (const id of ids) {
          const s = await client.status(id);
          if (s.state === 'completed' || s.state === 'failed') final.set(id, s);
        }
        await sleep(500);
      }
      const allLogs = async () => (await Promise.all(ids.map(async (id) => `${id}:\n${(await client.logs(id)).join('\n')}`))).join('\n\n');
      for (const id of ids)
        expect(final.get(id)?.state, `${id}: ${final.get(id)?.failedReason ?? 'unfinished'}\n${await allLogs()}`).toBe('completed');

      const result = (id: string) => final.get(id)!.result as TrainResultValue;
      const k = ids.indexOf(killedId);
      const twin = ids[(k + 3) % 6];
      const r = result(killedId);
      // Taken over by another worker and resumed from the checkpoint the dead one had committed.
      const logs = await client.logs(killedId);
      const tries = final.get(killedId)!.attemptsStarted;
      expect(tries, `${killedId} killed at step ${seenAt}\n${await allLogs()}`).toBeGreaterThanOrEqual(2);
      expect(logs.filter((l) => / try \d+ of \d+ on worker /.test(l)).length).toBe(tries);
      expect(r.resumedFrom).toBeGreaterThanOrEqual(Math.floor(seenAt / 2) * 2);
      expect(r.step).toBe(STEPS);
      // Nothing committed ran twice: the last try ran only the steps after its checkpoint, the same as the twin's.
      expect(r.losses).toEqual(result(twin).losses.slice(r.resumedFrom!));
      expect(logs.some((l) => l.startsWith(`Resuming from checkpoint runs/job${k}/checkpoint-${r.resumedFrom}`))).toBe(true);
      // Every other job ran once, from the start, unless a loaded machine starved its worker past the
      // lock (the worker says so): then it too went on from its last checkpoint, not from the start.
      const workerLogs = workers.map((w) => w.log).join('\n');
      for (const id of ids.filter((x) => x !== killedId)) {
        if (final.get(id)!.attemptsStarted === 1) {
          expect(result(id).resumedFrom, id).toBeNull();
          expect(result(id).losses, id).toHaveLength(STEPS);
        } else {
          expect(workerLogs, id).toContain(`job ${id}: lost its lock`);
          expect(result(id).losses, id).toHaveLength(STEPS - (result(id).resumedFrom ?? 0));
        }
      }
      // The resumed run's weights are the uninterrupted run's, byte for byte.
      const weights = (i: number) => readFileSync(join(root, `runs/job${i}`, 'unet', 'diffusion_pytorch_model.safetensors'));
      expect(weights(k).equals(weights((k + 3) % 6))).toBe(true);
      // The report is stored with the job.
      expect(readFileSync(join(root, r.report), 'utf8')).toContain('<html');
      // Redis asks for a password here; it never reached a worker's output.
      for (const w of workers) {
        expect(w.log).toContain('redis://:***@127.0.0.1');
        expect(w.log).not.toContain(PASSWORD);
      }
    }, 900_000);
  },
);
