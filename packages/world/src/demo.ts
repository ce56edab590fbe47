// The built-in DreamBooth demo behind `npm start`: the base model learns the subject from a few
// images, with prior preservation, and the run is measured as the DreamBooth paper measures it.
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { LORA_LEARNING_RATE } from '@kiln/dreambooth-trainer';
import { trainDreamBooth } from '@kiln/dreambooth-trainer/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import type { RgbaImage } from '@kiln/pipeline';
import { writePng } from '@kiln/pipeline/node';
import { openRun } from '@kiln/tracking/node';
import { z } from 'zod';
import { describe } from './caption.js';
import { renderScene } from './render.js';
import { gridImage, samplePrompt } from './sampling.js';
import { COLOR_NAMES, CONTEXTS, SHAPES } from './scene.js';
import { dreamboothMetrics, metricsTable } from './metrics.js';
import type { DreamBoothMetrics, SamplePrompt, ScoredSample } from './metrics.js';
import { chwBatch, rgbaToChw } from './scorer.js';
import type { WorldScorer } from './scorer.js';
import { loadWorldScorer } from './scorer-node.js';
import type { Context } from './scene.js';
import { CLASS_NOUN, INSTANCE_CONTEXTS, instanceScenes, SUBJECT_NOUN } from './subject.js';
import { rgbToPng } from './png.js';

/** The built-in base model's folder (diffusers layout), shipped in the package. */
export const BASE_MODEL_DIR = fileURLToPath(new URL('../model/', import.meta.url));

/** The demo's options (`npm start -- --help`). */
export const DemoOptionsSchema = z
  .object({
    steps: z.number().int().min(1).default(400),
    backend: z.enum(['wasm', 'cpu', 'webgpu']).default('wasm'),
    /** A folder of the subject's images (32×32, or larger and center-cropped); default: the built-in subject. */
    subject: z.string().min(1).nullable().default(null),
    /** The subject's class noun, for prompts ("a photo of sks star", "a photo of a star"). */
    class_noun: z.string().min(1).default('star'),
    prior_preservation: z.boolean().default(true),
    /** Also train without prior preservation, for the table's second row. */
    compare: z.boolean().default(true),
    out: z.string().min(1).default('kiln-dreambooth'),
    model: z.string().min(1).nullable().default(null),
    /** A world scorer folder (default: the committed one). */
    scorer: z.string().min(1).nullable().default(null),
    seed: z.number().int().min(0).default(0),
    class_images: z.number().int().min(1).default(50),
    learning_rate: z.number().positive().default(1e-4),
    /**
     * Also (or, with `full: false`, only) train LoRA adapters of this rank instead of the whole UNet and
     * text encoder, as diffusers' `train_dreambooth_lora.py --train_text_encoder` (alpha = rank), and
     * sample with the adapters loaded; null: no LoRA runs.
     */
    lora: z.number().int().min(1).nullable().default(null),
    /** The LoRA runs' learning rate (default: `train_dreambooth_lora.py`'s, 5e-4). */
    lora_learning_rate: z.number().positive().default(LORA_LEARNING_RATE),
    /** The LoRA runs' steps (default: `steps`). */
    lora_steps: z.number().int().min(1).nullable().default(null),
    /** Run the full fine-tune (UNet + text encoder); `false` with `lora` runs LoRA only. */
    full: z.boolean().default(true),
    /** Samples per evaluation prompt. */
    samples: z.number().int().min(1).default(6),
    /** Samples per world prompt (every class × colour) for the base model's agreement; 0 skips it. */
    world_samples: z.number().int().min(0).default(4),
  })
  .strict()
  .refine((o) => o.full || o.lora !== null, { path: ['full'], message: 'full: false needs lora (a rank), or there is nothing to train' });
export type DemoOptions = z.output<typeof DemoOptionsSchema>;

/** One evaluation sample: what it was prompted with, and the image. */
export interface DemoSample {
  prompt: SamplePrompt;
  text: string;
  image: RgbaImage;
}

const HELD_OUT = CONTEXTS.filter((c) => !INSTANCE_CONTEXTS.includes(c));

/** Prompts of the base world the base agreement is measured on: every class and colour, contexts in turn. */
function worldPrompts(): SamplePrompt[] {
  return SHAPES.flatMap((shape, i) =>
    COLOR_NAMES.map((color, j) => ({ kind: 'world' as const, shape, color, context: CONTEXTS[(i + j) % CONTEXTS.length] })),
  );
}

async function sampleModel(pipe: StableDiffusionPipeline, o: DemoOptions, world: boolean): Promise<DemoSample[]> {
  const out: DemoSample[] = [];
  const add = async (prompt: SamplePrompt, text: string, n: number, seed: number) => {
    for (const image of await samplePrompt(pipe, text, n, seed)) out.push({ prompt, text, image });
  };
  for (const context of HELD_OUT)
    await add(
      { kind: 'subject', shape: 'star', context },
      describe({ shape: 'star', context }, { noun: `sks ${o.class_noun}` }),
      o.samples,
      100,
    );
  await add({ kind: 'class', shape: 'star' }, `a photo of a ${o.class_noun}`, o.samples * 2, 200);
  if (world && o.world_samples > 0)
    for (const [i, p] of worldPrompts().entries())
      await add(p, describe({ shape: p.shape!, colorName: p.color, context: p.context! }), o.world_samples, 300 + o.world_samples * i);
  return out;
}

/** Scores samples with the world scorer, in batches. */
async function scoreSamples(scorer: WorldScorer, samples: readonly DemoSample[]): Promise<ScoredSample[]> {
  const out: ScoredSample[] = [];
  for (let i = 0; i < samples.length; i += 64) {
    const part = samples.slice(i, i + 64);
    const images = part.map((s) => rgbaToChw(s.image));
    const x = chwBatch(images, part[0].image.width);
    const scores = await scorer.score(x);
    x.dispose();
    part.forEach((s, j) => out.push({ prompt: s.prompt, score: scores[j], image: images[j] }));
  }
  return out;
}

/** A text progress bar: `[#######.............] 140/400 loss 0.0812 6.1 it/s ETA 43s`. */
export function progressBar(step: number, total: number, extra: string, width = 24): string {
  const done = Math.round((step / total) * width);
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${step}/${total} ${extra}`;
}

/**
 * Runs the demo: writes the subject's instance images, generates class images with the base model,
 * fine-tunes UNet and text encoder with prior preservation (and, with `compare`, without it), and,
 * with `lora`, trains LoRA adapters the same ways; samples before and after on the same seeds (LoRA
 * runs: the base model with the adapter file loaded), scores the samples, and writes the models,
 * grids and an HTML report into `out`.
 *
 * @example
 * ```ts
 * const result = await runDemo({ steps: 400 });
 * console.log(result.report);
 * // LoRA adapters (rank 4, lr 5e-4) beside the full fine-tune, in the same table:
 * const both = await runDemo({ lora: 4 });
 * console.log(`${both.table}\n${both.runs}`); // weightBytes['lora-with-prior']: the adapter file
 * ```
 */
export async function runDemo(
  input: z.input<typeof DemoOptionsSchema>,
  io: { log?: (line: string) => void; progress?: (line: string) => void } = {},
): Promise<{
  report: string;
  table: string;
  /** Each fine-tune's steps, learning rate, training seconds and weight bytes, as a table (`text`). */
  runs: string;
  metrics: Record<string, DreamBoothMetrics>;
  /** Each run's output folder: a whole model, or (LoRA) `pytorch_lora_weights.safetensors` alone. */
  models: string[];
  seconds: Record<string, number>;
  /** Bytes of each run's weight files (`*.safetensors` in its folder): the adapter file for LoRA. */
  weightBytes: Record<string, number>;
}> {
  const o = DemoOptionsSchema.parse(input);
  const log = io.log ?? ((l: string) => console.log(l));
  const progress = io.progress ?? ((l: string) => process.stderr.write(`\r${l}`));
  await k.useBackend(o.backend);
  const model = o.model ?? BASE_MODEL_DIR;
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    seconds[name] = (performance.now() - t0) / 1000;
    return r;
  };
  for (const sub of ['instance', 'class', ...RUN_NAMES, 'logs']) await rm(join(o.out, sub), { recursive: true, force: true });
  await mkdir(o.out, { recursive: true });

  let instanceDir = o.subject;
  if (instanceDir === null) {
    instanceDir = join(o.out, 'instance');
    await mkdir(instanceDir, { recursive: true });
    for (const [i, scene] of instanceScenes(5).entries()) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(instanceDir, `subject-${i}.png`), rgbToPng(renderScene(scene, 32), 32));
    }
  }

  const samples: Record<string, DemoSample[]> = {};
  const base = await StableDiffusionPipeline.fromPretrained(model);
  try {
    log(`generating ${o.class_images} class images ('a photo of a ${o.class_noun}') with the base model`);
    await timed('class images', async () => {
      const classDir = join(o.out, 'class');
      await mkdir(classDir, { recursive: true });
      const images = await samplePrompt(base, `a photo of a ${o.class_noun}`, o.class_images, 10_000);
      for (const [i, img] of images.entries()) await writePng(join(classDir, `class-${String(i).padStart(5, '0')}.png`), img);
    });
    samples.base = await timed('sampling base', () => sampleModel(base, o, true));
  } finally {
    base.dispose();
  }

  const runs = demoRuns(o);
  for (const r of runs) {
    const what = r.lora === null ? 'UNet + text encoder' : `LoRA rank ${r.lora} on UNet + text encoder attention`;
    log(`\nDreamBooth ${r.prior ? 'with' : 'without'} prior preservation: ${r.steps} steps, ${what}, lr ${r.learningRate}`);
    const started = performance.now();
    const outputDir = join(o.out, r.name);
    await timed(`train ${r.name}`, () =>
      trainDreamBooth(
        {
          pretrained_model_name_or_path: model,
          instance_data_dir: instanceDir!,
          instance_prompt: `a photo of ${SUBJECT_NOUN.replace('star', o.class_noun)}`,
          with_prior_preservation: r.prior,
          class_data_dir: join(o.out, 'class'),
          class_prompt: `a photo of ${CLASS_NOUN.replace('star', o.class_noun)}`,
          num_class_images: o.class_images,
          output_dir: outputDir,
          overwrite_output_dir: true,
          resolution: 32,
          center_crop: true,
          random_flip: false,
          train_text_encoder: true,
          ...(r.lora === null ? {} : { lora: true, rank: r.lora }),
          tokenizer_max_length: 16,
          train_batch_size: 1,
          max_train_steps: r.steps,
          checkpointing_steps: r.steps,
          learning_rate: r.learningRate,
          lr_scheduler: 'constant',
          lr_warmup_steps: 0,
          seed: o.seed,
          backend: o.backend,
        },
        {
          log: () => {},
          onStep: ({ step, maxSteps, loss }) => {
            const rate = step / ((performance.now() - started) / 1000);
            progress(
              progressBar(step, maxSteps, `loss ${loss.toFixed(4)} ${rate.toFixed(1)} it/s ETA ${Math.round((maxSteps - step) / rate)}s `),
            );
          },
        },
      ),
    );
    process.stderr.write('\n');
    // A LoRA run's output is the adapter file alone: sample the base model with it loaded, as a user would.
    const tuned = await StableDiffusionPipeline.fromPretrained(r.lora === null ? outputDir : model);
    try {
      if (r.lora !== null) await tuned.loadLoraWeights(outputDir);
      samples[r.name] = await timed(`sampling ${r.name}`, () => sampleModel(tuned, o, false));
    } finally {
      tuned.dispose();
    }
    r.bytes = await weightBytes(outputDir);
  }

  const scorer = await loadWorldScorer(o.scorer ?? undefined);
  const metrics: Record<string, DreamBoothMetrics> = {};
  try {
    for (const [name, list] of Object.entries(samples)) metrics[name] = dreamboothMetrics(await scoreSamples(scorer, list));
  } finally {
    scorer.dispose();
  }
  const rows = Object.entries(metrics).map(([name, m]) => ({ label: ROW_LABELS[name] ?? name, metrics: m }));
  const table = metricsTable(rows, 'text');
  const sizes = Object.fromEntries(runs.map((r) => [r.name, r.bytes]));
  const runsTable = runTable(runs, seconds, 'text');

  const run = openRun(join(o.out, 'logs'), { reportTo: ['html'], name: 'DreamBooth on the built-in world' });
  run.logHparams(
    { ...o },
    Object.fromEntries(
      Object.entries(metrics).flatMap(([name, m]) => [
        [`${name}/subject_fidelity`, m.subjectFidelity.value ?? NaN],
        [`${name}/pres`, m.pres.value ?? NaN],
      ]),
    ),
  );
  run.logText(0, 'metrics', metricsTable(rows, 'markdown'));
  run.logText(0, 'runs', runTable(runs, seconds, 'markdown'));
  const dotted = describe({ shape: 'star', context: 'dots' }, { noun: `sks ${o.class_noun}` });
  for (const [name, list] of Object.entries(samples)) {
    // Before (base) and after (each run) on the same prompts and seeds.
    const grids: Array<[string, DemoSample[], number]> = [
      [dotted, list.filter((s) => s.text === dotted), o.samples],
      [`a photo of a ${o.class_noun}`, list.filter((s) => s.prompt.kind === 'class'), o.samples],
      ['world prompts', list.filter((s) => s.prompt.kind === 'world'), COLOR_NAMES.length],
    ];
    for (const [tag, shown, cols] of grids)
      if (shown.length > 0)
        run.logImages(0, `${tag}/${name}`, [
          gridImage(
            shown.map((s) => s.image),
            cols,
          ),
        ]);
  }
  for (const [name, t] of Object.entries(seconds)) run.log(0, { [`seconds/${name}`]: t });
  await run.close();
  const models = runs.map((r) => join(o.out, r.name));
  return { report: join(o.out, 'logs', 'report.html'), table, runs: runsTable, metrics, models, seconds, weightBytes: sizes };
}

const ROW_LABELS: Record<string, string> = {
  base: 'base model (before)',
  'with-prior': 'DreamBooth, prior preservation',
  'without-prior': 'DreamBooth, no prior preservation',
  'lora-with-prior': 'LoRA DreamBooth, prior preservation',
  'lora-without-prior': 'LoRA DreamBooth, no prior preservation',
};
const RUN_NAMES = Object.keys(ROW_LABELS).filter((name) => name !== 'base');

/** One fine-tune of the demo. */
interface DemoRun {
  name: string;
  prior: boolean;
  /** LoRA rank, or null for the full fine-tune. */
  lora: number | null;
  steps: number;
  learningRate: number;
  bytes: number;
}

/** The fine-tunes the options ask for: full, then LoRA; each with prior preservation, then (with `compare`) without. */
function demoRuns(o: DemoOptions): DemoRun[] {
  const priors = o.prior_preservation ? (o.compare ? [true, false] : [true]) : [false];
  const kinds: Array<number | null> = [...(o.full ? [null] : []), ...(o.lora === null ? [] : [o.lora])];
  return kinds.flatMap((lora) =>
    priors.map((prior) => ({
      name: `${lora === null ? '' : 'lora-'}${prior ? 'with' : 'without'}-prior`,
      prior,
      lora,
      steps: lora === null ? o.steps : (o.lora_steps ?? o.steps),
      learningRate: lora === null ? o.learning_rate : o.lora_learning_rate,
      bytes: 0,
    })),
  );
}

/** Bytes of the `*.safetensors` files under `dir` (checkpoints excluded): what a user keeps of a run. */
async function weightBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const parent = entry.parentPath ?? entry.path;
    if (!entry.isFile() || !entry.name.endsWith('.safetensors') || /(^|[\\/])checkpoint-\d+/.test(parent.slice(dir.length))) continue;
    total += (await stat(join(parent, entry.name))).size;
  }
  return total;
}

/** The runs' steps, learning rate, training time and weight size, one row per fine-tune. */
function runTable(runs: readonly DemoRun[], seconds: Record<string, number>, format: 'markdown' | 'text'): string {
  const head = ['run', 'trained', 'steps', 'lr', 'train s', 'weights'];
  const body = runs.map((r) => [
    ROW_LABELS[r.name],
    r.lora === null ? 'UNet + text encoder' : `LoRA rank ${r.lora} (UNet + text encoder attention)`,
    String(r.steps),
    r.learningRate.toExponential(0),
    (seconds[`train ${r.name}`] ?? 0).toFixed(0),
    r.bytes >= 2 ** 20 ? `${(r.bytes / 2 ** 20).toFixed(1)} MiB` : `${(r.bytes / 1024).toFixed(0)} kB`,
  ]);
  if (format === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
