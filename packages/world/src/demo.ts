// The built-in DreamBooth demo behind `npm start`: the base model learns the subject from a few
// images, with prior preservation, and the run is measured as the DreamBooth paper measures it.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { trainDreamBooth } from '@kiln/dreambooth-trainer/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import type { RgbaImage } from '@kiln/pipeline';
import { writePng } from '@kiln/pipeline/node';
import { openRun } from '@kiln/tracking/node';
import { z } from 'zod';
import { describe } from './caption.js';
import { renderScene } from './render.js';
import { gridImage, samplePrompt } from './sampling.js';
import { CONTEXTS } from './scene.js';
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
    seed: z.number().int().min(0).default(0),
    class_images: z.number().int().min(1).default(50),
    learning_rate: z.number().positive().default(1e-4),
    /** Samples per evaluation prompt. */
    samples: z.number().int().min(1).default(8),
  })
  .strict();
export type DemoOptions = z.output<typeof DemoOptionsSchema>;

/** Samples of one model for the evaluation prompts. */
export interface DemoSamples {
  /** Identifier prompts in contexts no instance image shows, by context. */
  subject: Map<Context, RgbaImage[]>;
  /** The class prompt. */
  klass: RgbaImage[];
}

const HELD_OUT = CONTEXTS.filter((c) => !INSTANCE_CONTEXTS.includes(c));

async function sampleModel(pipe: StableDiffusionPipeline, o: DemoOptions): Promise<DemoSamples> {
  const subject = new Map<Context, RgbaImage[]>();
  for (const context of HELD_OUT)
    subject.set(context, await samplePrompt(pipe, describe({ shape: 'star', context }, { noun: `sks ${o.class_noun}` }), o.samples, 100));
  const klass = await samplePrompt(pipe, `a photo of a ${o.class_noun}`, o.samples * 2, 200);
  return { subject, klass };
}

/** A text progress bar: `[#######.............] 140/400 loss 0.0812 6.1 it/s ETA 43s`. */
export function progressBar(step: number, total: number, extra: string, width = 24): string {
  const done = Math.round((step / total) * width);
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${step}/${total} ${extra}`;
}

/**
 * Runs the demo: writes the subject's instance images, generates class images with the base model,
 * fine-tunes UNet and text encoder with prior preservation (and, with `compare`, without it), samples
 * before and after on the same seeds, and writes the models, grids and an HTML report into `out`.
 * Returns the samples of each model for scoring.
 *
 * @example
 * ```ts
 * const result = await runDemo({ steps: 400 });
 * console.log(result.report);
 * ```
 */
export async function runDemo(
  input: z.input<typeof DemoOptionsSchema>,
  io: { log?: (line: string) => void; progress?: (line: string) => void } = {},
): Promise<{ report: string; samples: Record<string, DemoSamples>; seconds: Record<string, number> }> {
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
  for (const sub of ['instance', 'class', 'with-prior', 'without-prior', 'logs'])
    await rm(join(o.out, sub), { recursive: true, force: true });
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

  const samples: Record<string, DemoSamples> = {};
  const base = await StableDiffusionPipeline.fromPretrained(model);
  try {
    log(`generating ${o.class_images} class images ('a photo of a ${o.class_noun}') with the base model`);
    await timed('class images', async () => {
      const classDir = join(o.out, 'class');
      await mkdir(classDir, { recursive: true });
      const images = await samplePrompt(base, `a photo of a ${o.class_noun}`, o.class_images, 10_000);
      for (const [i, img] of images.entries()) await writePng(join(classDir, `class-${String(i).padStart(5, '0')}.png`), img);
    });
    samples.base = await timed('sampling base', () => sampleModel(base, o));
  } finally {
    base.dispose();
  }

  const variants = o.prior_preservation ? (o.compare ? [true, false] : [true]) : [false];
  for (const prior of variants) {
    const name = prior ? 'with-prior' : 'without-prior';
    log(`\nDreamBooth ${prior ? 'with' : 'without'} prior preservation: ${o.steps} steps, UNet + text encoder`);
    const started = performance.now();
    await timed(`train ${name}`, () =>
      trainDreamBooth(
        {
          pretrained_model_name_or_path: model,
          instance_data_dir: instanceDir!,
          instance_prompt: `a photo of ${SUBJECT_NOUN.replace('star', o.class_noun)}`,
          with_prior_preservation: prior,
          class_data_dir: join(o.out, 'class'),
          class_prompt: `a photo of ${CLASS_NOUN.replace('star', o.class_noun)}`,
          num_class_images: o.class_images,
          output_dir: join(o.out, name),
          overwrite_output_dir: true,
          resolution: 32,
          center_crop: true,
          random_flip: false,
          train_text_encoder: true,
          tokenizer_max_length: 16,
          train_batch_size: 1,
          max_train_steps: o.steps,
          checkpointing_steps: o.steps,
          learning_rate: o.learning_rate,
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
    const tuned = await StableDiffusionPipeline.fromPretrained(join(o.out, name));
    try {
      samples[name] = await timed(`sampling ${name}`, () => sampleModel(tuned, o));
    } finally {
      tuned.dispose();
    }
  }

  const run = openRun(join(o.out, 'logs'), { reportTo: ['html'], name: 'DreamBooth on the built-in world' });
  run.logHparams({ ...o });
  for (const [name, s] of Object.entries(samples)) {
    run.logImages(0, `${name}/sks ${o.class_noun} on a dotted background`, [gridImage(s.subject.get('dots')!, 8)]);
    run.logImages(0, `${name}/a photo of a ${o.class_noun}`, [gridImage(s.klass, 8)]);
  }
  await run.close();
  return { report: join(o.out, 'logs', 'report.html'), samples, seconds };
}
