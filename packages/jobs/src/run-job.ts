import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Job } from 'bullmq';
import type { TrainerConfig } from '@kiln/dreambooth-trainer';
import { writeReport } from '@kiln/tracking/node';
import { checkImageFolder } from './image-limits.js';
import type { ImageLimits } from './image-limits.js';
import { TRAINER_PATH_FIELDS } from './payloads.js';
import type { GeneratePayload, TrainPayload } from './payloads.js';
import type { GenerateProgress, GenerateResultValue, TrainProgress, TrainResultValue } from './progress.js';
import type { Storage } from './storage.js';
import type { GenerateTask } from './thread-protocol.js';
import { runInThread } from './thread-runner.js';

/** What a job runs with on a worker. */
export interface JobContext {
  job: Job;
  storage: Storage;
  backend: TrainerConfig['backend'];
  imageLimits: ImageLimits;
  /** Aborted to stop the job at its next step (a cancellation or the worker shutting down). */
  signal: AbortSignal;
  /** Appends a line to the job's log. */
  log: (line: string) => void;
}

/** A job's outcome: its return value, or why it stopped early (then nothing is returned). */
export type JobOutcome<T> = { value: T; interrupted?: undefined } | { value?: undefined; interrupted: string };

/** Progress updates at most this often (the last step and validation steps always go). */
const PROGRESS_EVERY_MS = 250;

const keyJoin = (...parts: string[]) => parts.join('/');
/** A finished PNG (the atomic writer's hidden temporary files are not images yet). */
const isImage = (key: string) => /\/[^./][^/]*\.png$/.test(key);

/**
 * A training job: paths resolved in the storage, images checked against the limits, and the
 * trainer run in a thread. Every try after the first resumes from the latest checkpoint of
 * output_dir (the trainer's exact resume), so a killed worker's steps up to its last checkpoint are
 * not run again. Ends by writing the run's HTML report next to its metrics.
 */
export async function runTrainJob(ctx: JobContext, payload: TrainPayload): Promise<JobOutcome<TrainResultValue>> {
  const c = payload.config;
  const resolved: Record<string, string> = {};
  for (const field of TRAINER_PATH_FIELDS) {
    const key = c[field];
    if (field !== 'logging_dir' && key !== null) resolved[field] = await ctx.storage.resolve(key, `config.${field}`);
  }
  await checkImageFolder(resolved.instance_data_dir, ctx.imageLimits, 'instance');
  if (resolved.class_data_dir) await checkImageFolder(resolved.class_data_dir, ctx.imageLimits, 'class');
  const { job } = ctx;
  const retried = job.attemptsStarted > 1 || job.attemptsMade > 0;
  const resume = retried || c.resume_from_checkpoint === 'latest' ? 'latest' : null;
  const config: TrainerConfig = { ...c, ...resolved, backend: ctx.backend, resume_from_checkpoint: resume };
  const logKey = keyJoin(c.output_dir, c.logging_dir);
  // Where @kiln/tracking puts the trainer's validation images (tag 'validation'); written in the
  // background, so each progress update looks for new ones.
  const imagesKey = keyJoin(logKey, 'images', 'validation');
  const seenImages = new Set(c.validation_prompt === null ? [] : await ctx.storage.list(imagesKey));
  // The trainer's messages name local paths; the job's log shows storage keys, the same on every machine.
  const rootPrefix = `${await ctx.storage.resolve('.')}/`;
  let resumedFrom: number | null = null;
  let lastProgress = 0;
  let progressChain = Promise.resolve();
  const result = await runInThread(
    { kind: 'train', config },
    (m) => {
      if (m.type === 'log') {
        const resumed = /^Resuming from checkpoint .* at step (\d+)$/.exec(m.line);
        if (resumed) resumedFrom = Number(resumed[1]);
        ctx.log(m.line.split(rootPrefix).join(''));
      } else if (m.type === 'train-step') {
        const validated = c.validation_prompt !== null && m.step % c.validation_steps === 0;
        const now = Date.now();
        if (!validated && m.step !== m.maxSteps && now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        progressChain = progressChain.then(async () => {
          const progress: TrainProgress = {
            kind: 'train',
            step: m.step,
            maxSteps: m.maxSteps,
            epoch: m.epoch,
            loss: m.loss,
            lr: m.lr,
            itPerSec: m.itPerSec,
            etaSeconds: m.itPerSec > 0 ? (m.maxSteps - m.step) / m.itPerSec : 0,
          };
          if (c.validation_prompt !== null) {
            const fresh = (await ctx.storage.list(imagesKey)).filter((k) => isImage(k) && !seenImages.has(k));
            for (const k of fresh) seenImages.add(k);
            if (fresh.length) progress.validationImages = fresh;
          }
          await job.updateProgress(progress as unknown as object).catch(() => {});
        });
      }
    },
    ctx.signal,
  );
  await progressChain;
  if (!result) throw new Error('the training thread returned nothing');
  if (result.interrupted) return { interrupted: `stopped at step ${result.step}; checkpoint-${result.step} is in ${c.output_dir}` };
  const logDir = await ctx.storage.resolve(logKey, 'config.logging_dir');
  await writeReport([logDir]);
  return {
    value: {
      outputDir: c.output_dir,
      report: keyJoin(logKey, 'report.html'),
      step: result.step,
      resumedFrom,
      losses: result.losses,
    },
  };
}

/** A request's first seed when it has none: fixed by the job id, so a retry draws the same images. */
function seedFor(jobId: string, index: number, numImages: number): number {
  const h = createHash('sha256').update(`${jobId}:${index}`).digest();
  return h.readUInt32BE(0) % (2 ** 32 - numImages);
}

/**
 * A generation job: the model loaded once in a thread, each request's images written atomically
 * into `out` as `<job>-<request>-<image>.png` with their generation parameters. Images an earlier
 * try already wrote are kept, not drawn again.
 */
export async function runGenerateJob(ctx: JobContext, payload: GeneratePayload): Promise<JobOutcome<GenerateResultValue>> {
  const { job } = ctx;
  const model = await ctx.storage.resolve(payload.model, 'model');
  const out = await ctx.storage.resolve(payload.out, 'out');
  const loras = [];
  for (const [i, l] of payload.loras.entries()) loras.push({ file: await ctx.storage.resolve(l.file, `loras.${i}.file`), scale: l.scale });
  await mkdir(out, { recursive: true });
  const short = job.id!.replace(/^generate-/, '').slice(0, 8);
  const requests: GenerateTask['requests'] = payload.requests.map((o, i) => ({
    options: { ...o, seed: o.seed ?? seedFor(job.id!, i, o.numImages) },
    stem: `${short}-${String(i).padStart(5, '0')}`,
  }));
  const totalImages = requests.reduce((n, r) => n + r.options.numImages, 0);
  const results: GenerateResultValue['results'] = requests.map(() => ({ files: [], seeds: [] }));
  let skipped = 0;
  let done = 0;
  let lastProgress = 0;
  let stepsRun = 0;
  const started = Date.now();
  let aborted = false;
  ctx.signal.addEventListener('abort', () => (aborted = true));
  try {
    await runInThread(
      { kind: 'generate', backend: ctx.backend, model, loras, out, modelName: basename(payload.model), requests },
      (m) => {
        if (m.type === 'log') ctx.log(m.line);
        else if (m.type === 'image') {
          results[m.request].files.push(keyJoin(payload.out, m.file));
          results[m.request].seeds.push(m.seed);
          done++;
          if (m.skipped) skipped++;
        } else if (m.type === 'generate-step') {
          stepsRun++;
          const now = Date.now();
          if (now - lastProgress < PROGRESS_EVERY_MS && m.step !== m.steps) return;
          lastProgress = now;
          const stepsLeft =
            requests.slice(m.request).reduce((n, r, j) => n + r.options.steps * (r.options.numImages - (j === 0 ? m.image : 0)), 0) -
            m.step;
          const progress: GenerateProgress = {
            kind: 'generate',
            request: m.request + 1,
            requests: requests.length,
            imagesDone: done,
            images: totalImages,
            step: m.step,
            steps: m.steps,
            etaSeconds: (((now - started) / 1000) * Math.max(stepsLeft, 0)) / stepsRun,
          };
          void job.updateProgress(progress as unknown as object).catch(() => {});
        }
      },
      ctx.signal,
    );
  } catch (e) {
    if (aborted && (e as Error).name === 'JobCancelledError') return { interrupted: `stopped after ${done} of ${totalImages} images` };
    throw e;
  }
  return { value: { results, skipped } };
}
