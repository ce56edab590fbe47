import { createHash } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline, formatParameters } from '@kiln/pipeline';
import { writePng } from '@kiln/pipeline/node';
import { z } from 'zod';
import { describeIssues, parseGenerateArgs, parseJob } from './generate-options.js';
import { DEFAULT_STRENGTH, GENERATE_USAGE } from './generate-usage.js';
import type { Job } from './generate-options.js';
import { decodeInitImage, initImageTensor } from './init-image.js';
import type { RgbImage } from '@kiln/dreambooth-trainer';
import { downloadReporter, progressLine } from './progress.js';
import { appendResult, readResults } from './results-log.js';
import type { ResultLine } from './results-log.js';
import { UsageError } from './usage-error.js';

export { GENERATE_USAGE };

/** Where a command writes besides its result: messages, and a progress line that may be redrawn in place. */
export interface CommandIO {
  err: (s: string) => void;
  /** Redraws the progress line (a terminal); without it, progress goes to `err` now and then. */
  progress?: (line: string) => void;
}

const FLAG_OF: Record<string, string> = {
  negativePrompt: '--negative-prompt',
  guidanceScale: '--guidance-scale',
  numImages: '--num-images',
};
const flagOf = (field: string) => FLAG_OF[field] ?? `--${field}`;
const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

interface Input {
  line: number;
  /** The line's text (batch) or the command line's fields as JSON. */
  text: string;
  /** sha-256 of model + text: what a result must match to count as done. */
  hash: string;
}

/** `kiln generate`: resolves to a one-line summary. */
export async function generate(args: readonly string[], io: CommandIO): Promise<string> {
  const a = parseGenerateArgs(args);
  // Bad flag values are usage errors before anything loads (batch mode checks them with a stand-in prompt).
  const check = parseJobSafe(a.batch ? { ...a.fields, prompt: '' } : a.fields);
  if (!check.ok) throw new UsageError(`${describeIssues(check.error).replace(/^(\w+)/gm, (f) => flagOf(f))}\n\n${GENERATE_USAGE}`);
  if (!k.listBackends().includes(a.backend)) throw new UsageError(`--backend ${a.backend}: not one of ${k.listBackends().join(', ')}`);

  for (const { file } of a.loras) if (!(await exists(file))) throw new UsageError(`--lora ${file}: no such file or folder`);
  if (!a.batch && a.fields.strength !== undefined && a.fields.image === undefined)
    throw new UsageError(`--strength is for image to image: give --image FILE too\n\n${GENERATE_USAGE}`);
  // Decoded images by absolute path; the command line's is checked before anything is written.
  const images = new Map<string, RgbImage>();
  const decoded = async (path: string) => {
    if (!images.has(path)) images.set(path, await decodeInitImage(path));
    return images.get(path)!;
  };
  if (a.fields.image !== undefined) await decoded(resolve(a.fields.image));
  // The LoRAs are part of what an input means: a rerun with other ones does not skip it.
  const loraKey = a.loras.map((l) => `\n--lora ${resolve(l.file)}:${l.scale}`).join('');
  // So is a starting image's content: a rerun after the image changed is not skipped.
  const imageKey = async (text: string) => {
    const path = imagePathOf(text) ?? (a.fields.image === undefined ? undefined : resolve(a.fields.image));
    if (path === undefined) return '';
    const bytes = await readFile(path).catch(() => null);
    return `\n--image ${bytes ? createHash('sha256').update(bytes).digest('hex') : 'unreadable'}`;
  };
  const imagePathOf = (text: string) => {
    if (!a.batch) return undefined;
    const line: unknown = JSON.parse(text);
    const image = typeof line === 'object' && line !== null ? (line as { image?: unknown }).image : undefined;
    return typeof image === 'string' ? resolve(dirname(a.batch), image) : undefined;
  };
  const hash = async (text: string) => {
    let key = '';
    try {
      key = await imageKey(text);
    } catch {
      // A line that is not JSON: its error is reported when it runs.
    }
    return createHash('sha256').update(`${a.model}${loraKey}${key}\n${text}`).digest('hex');
  };
  let inputs: Input[];
  if (a.batch) {
    let text: string;
    try {
      text = await readFile(a.batch, 'utf8');
    } catch (e) {
      throw new UsageError(`--batch ${a.batch}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    inputs = [];
    for (const [i, t] of text.split(/\r?\n/).entries()) if (t.trim() !== '') inputs.push({ line: i + 1, text: t, hash: await hash(t) });
  } else {
    const t = JSON.stringify(a.fields);
    inputs = [{ line: 1, text: t, hash: await hash(t) }];
  }

  await mkdir(a.out, { recursive: true });
  const resultsPath = join(a.out, 'results.jsonl');
  const done = new Set<string>();
  for (const r of await readResults(resultsPath)) {
    if (!r.error && r.files && (await Promise.all(r.files.map((f) => exists(join(a.out, f))))).every(Boolean))
      done.add(`${r.line}:${r.input}`);
  }

  let pipe: StableDiffusionPipeline | undefined;
  const counts = { images: 0, failed: 0, skipped: 0 };
  try {
    for (const [n, input] of inputs.entries()) {
      if (done.has(`${input.line}:${input.hash}`)) {
        counts.skipped++;
        continue;
      }
      const base: ResultLine = { line: input.line, input: input.hash };
      let job: Job;
      try {
        const line = a.batch ? parseLine(input.text) : undefined;
        job = parseJob(a.fields, line);
        // The command line's --image is relative to the working folder, a line's to the batch file's.
        if (job.image !== undefined) job.image = resolve(typeof line?.image === 'string' ? dirname(a.batch!) : '.', job.image);
        if (job.strength !== undefined && job.image === undefined) throw new Error('strength: is for image to image; give image too');
      } catch (e) {
        const error = e instanceof z.ZodError ? describeIssues(e) : (e as Error).message;
        io.err(`kiln generate: ${a.batch ?? 'prompt'}:${input.line}: ${error}`);
        await appendResult(resultsPath, { ...base, error });
        counts.failed++;
        continue;
      }
      if (!pipe) {
        await k.useBackend(a.backend);
        pipe = await StableDiffusionPipeline.fromPretrained(a.model, {
          onDownload: ({ path, index, count, cached }) =>
            io.err(`kiln generate: ${cached ? 'in the cache' : 'downloading'} ${path} (${index + 1}/${count})`),
          onDownloadProgress: downloadReporter(io, 'kiln generate: '),
        });
        for (const { file, scale } of a.loras) await pipe.loadLoraWeights(file, { scale });
      }
      const stem = a.batch ? `${String(input.line).padStart(5, '0')}-${input.hash.slice(0, 8)}` : input.hash.slice(0, 8);
      try {
        const result = await runJob(pipe, job, {
          model: a.model,
          out: a.out,
          stem,
          io,
          job: n + 1,
          jobs: inputs.length,
          image: job.image === undefined ? undefined : await decoded(job.image),
        });
        await appendResult(resultsPath, { ...base, prompt: job.prompt, ...result });
        counts.images += result.files.length;
      } catch (e) {
        if (!(e instanceof k.KilnError) || !a.batch) throw e;
        io.err(`kiln generate: ${a.batch}:${input.line}: ${e.message}`);
        await appendResult(resultsPath, { ...base, prompt: job.prompt, error: e.message });
        counts.failed++;
      }
    }
  } finally {
    pipe?.dispose();
  }
  const parts = [`${counts.images} image${counts.images === 1 ? '' : 's'} to ${a.out}`];
  if (counts.skipped) parts.push(`${counts.skipped} already done`);
  if (counts.failed) parts.push(`${counts.failed} failed (see ${resultsPath})`);
  return parts.join(', ');
}

function parseJobSafe(fields: Record<string, unknown>): { ok: true } | { ok: false; error: z.ZodError } {
  try {
    parseJob(fields);
    return { ok: true };
  } catch (e) {
    if (e instanceof z.ZodError) return { ok: false, error: e };
    throw e;
  }
}

/** One batch line as an object (a JSON syntax error or a non-object is the line's error). */
function parseLine(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
  return value as Record<string, unknown>;
}

interface JobContext {
  model: string;
  out: string;
  stem: string;
  io: CommandIO;
  job: number;
  jobs: number;
  /** img2img's decoded starting image (job.image). */
  image?: RgbImage;
}

/** Generates a job's images one at a time (image i from seed + i), each written atomically before the next starts. */
async function runJob(
  pipe: StableDiffusionPipeline,
  job: Job,
  c: JobContext,
): Promise<Required<Pick<ResultLine, 'files' | 'seeds' | 'timings'>>> {
  const first = job.seed ?? Math.floor(Math.random() * (2 ** 32 - job.numImages));
  const files: string[] = [];
  const seeds: number[] = [];
  const imagesMs: number[] = [];
  let stepsMs = 0;
  let stepsRun = 0;
  for (let i = 0; i < job.numImages; i++) {
    const seed = first + i;
    const start = performance.now();
    let lastReport = start;
    let loopEnd = start;
    let ran = 0;
    const common = {
      prompt: job.prompt,
      negativePrompt: job.negativePrompt,
      numInferenceSteps: job.steps,
      guidanceScale: job.guidanceScale,
      scheduler: job.scheduler,
      seed,
      callback: ({ step, numSteps }: { step: number; numSteps: number }) => {
        const now = (loopEnd = performance.now());
        ran = step + 1;
        const line = progressLine({
          job: c.job,
          jobs: c.jobs,
          image: i + 1,
          images: job.numImages,
          step: step + 1,
          steps: numSteps,
          elapsedMs: now - start,
        });
        if (c.io.progress) c.io.progress(line);
        else if (step + 1 === numSteps || now - lastReport > 5000) {
          c.io.err(line);
          lastReport = now;
        }
      },
    };
    let result: Awaited<ReturnType<StableDiffusionPipeline['txt2img']>>;
    if (c.image) {
      // The output size: --width/--height, else the model's (as for text to image); the image is resized to it.
      const size = (pipe.unet.config.sample_size ?? 64) * pipe.vaeScaleFactor;
      const image = initImageTensor(c.image, job.width ?? size, job.height ?? size);
      try {
        result = await pipe.img2img({ ...common, image, strength: job.strength ?? DEFAULT_STRENGTH });
      } finally {
        image.dispose();
      }
    } else result = await pipe.txt2img({ ...common, width: job.width, height: job.height });
    const { rgba, images, scheduler } = result;
    const [W, H] = [rgba[0].width, rgba[0].height];
    images.dispose();
    const file = `${c.stem}-${i}.png`;
    const parameters = formatParameters({
      prompt: job.prompt,
      negativePrompt: job.negativePrompt,
      steps: job.steps,
      scheduler,
      guidanceScale: job.guidanceScale,
      seed,
      width: W,
      height: H,
      model: basename(c.model),
      ...(c.image ? { denoisingStrength: job.strength ?? DEFAULT_STRENGTH } : {}),
    });
    await writePng(join(c.out, file), rgba[0], { parameters });
    const ms = performance.now() - start;
    stepsMs += loopEnd - start; // prompt encoding counts towards the first step, as in diffusers' progress bar
    stepsRun += ran;
    files.push(file);
    seeds.push(seed);
    imagesMs.push(Math.round(ms));
  }
  return { files, seeds, timings: { imagesMs, stepMs: Math.round((stepsMs / Math.max(stepsRun, 1)) * 100) / 100 } };
}
