import { parseArgs } from 'node:util';
import { GenerationOptionsSchema } from '@kiln/pipeline';
import { z } from 'zod';
import { UsageError } from './usage-error.js';

/**
 * One generation: the fields of a `--batch` line, and the command line's generation flags
 * (`--negative-prompt` is `negativePrompt`, …). Unknown fields are errors. The text-to-image
 * fields are `@kiln/pipeline`'s schema, which `@kiln/jobs` validates `generate` payloads with;
 * `image` and `strength` (img2img, which reads a local file) are the command's own.
 */
export const JobSchema = GenerationOptionsSchema.extend({
  /** img2img's starting image: a PNG, JPEG or WebP file. */
  image: z.string().min(1).optional(),
  /** img2img's denoising strength in (0, 1] (default 0.8, as diffusers). */
  strength: z
    .preprocess((v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v), z.number().gt(0).max(1))
    .optional(),
});

/** A validated job. */
export type Job = z.output<typeof JobSchema>;

/** img2img's default strength (diffusers' `StableDiffusionImg2ImgPipeline`). */
export const DEFAULT_STRENGTH = 0.8;

/** The flags of `kiln generate`, each with its job field (if any), value name and default as `--help` shows them. */
const FLAGS = {
  model: { field: null, arg: 'SOURCE', help: 'a diffusers model folder, or a Hugging Face Hub id org/name (required)', def: undefined },
  prompt: { field: 'prompt', arg: 'TEXT', help: 'what to draw (required without --batch)', def: undefined },
  'negative-prompt': { field: 'negativePrompt', arg: 'TEXT', help: 'what to steer away from', def: '""' },
  steps: { field: 'steps', arg: 'N', help: 'denoising steps', def: '30' },
  'guidance-scale': { field: 'guidanceScale', arg: 'X', help: 'classifier-free guidance scale (≤ 1: off)', def: '7.5' },
  seed: { field: 'seed', arg: 'N', help: 'seed of the first image; image i uses seed + i', def: 'random' },
  scheduler: {
    field: 'scheduler',
    arg: 'NAME',
    help: 'euler, euler_a, ddim, ddpm, pndm, dpm++_2m, … or a diffusers class name',
    def: "the model's",
  },
  width: { field: 'width', arg: 'PX', help: 'image width, a multiple of 8', def: "the model's (512 for SD 1.x)" },
  height: { field: 'height', arg: 'PX', help: 'image height, a multiple of 8', def: "the model's (512 for SD 1.x)" },
  'num-images': { field: 'numImages', arg: 'N', help: 'images per prompt', def: '1' },
  image: {
    field: 'image',
    arg: 'FILE',
    help: 'image to image: start from this PNG, JPEG or WebP, resized to --width × --height',
    def: 'none: text to image',
  },
  strength: {
    field: 'strength',
    arg: 'S',
    help: 'with --image: how far the image is noised before denoising, in (0, 1] (1 ignores its content)',
    def: String(DEFAULT_STRENGTH),
  },
  out: { field: null, arg: 'DIR', help: 'where images and results.jsonl go', def: 'outputs' },
  batch: { field: null, arg: 'FILE', help: 'prompts.jsonl: one JSON object per line with the fields below', def: undefined },
  backend: { field: null, arg: 'NAME', help: 'wasm, cpu or webgpu', def: 'wasm' },
  lora: {
    field: null,
    arg: 'FILE[:SCALE]',
    help: 'a LoRA (.safetensors, diffusers or kohya layout, or a folder with pytorch_lora_weights.safetensors) at SCALE; repeat to stack',
    def: 'none; SCALE 1',
  },
} as const;

type Flag = keyof typeof FLAGS;

export const GENERATE_USAGE = `kiln generate --model SOURCE (--prompt TEXT | --batch FILE) [options]

Text to image with a Stable Diffusion 1.x model, or image to image with --image. Writes PNGs (with
the generation parameters in their 'parameters' text chunk, as AUTOMATIC1111 writes them, with
'Denoising strength' for image to image) and results.jsonl (one line per prompt: files, seeds,
timings or the error) into --out. A rerun skips prompts already done.

options:
${(Object.entries(FLAGS) as [Flag, (typeof FLAGS)[Flag]][]).map(([name, f]) => `  --${`${name} ${f.arg}`.padEnd(24)} ${f.help}${f.def === undefined ? '' : ` (default: ${f.def})`}`).join('\n')}

--batch lines take the generation options as camelCase fields: {"prompt": "…", "negativePrompt": "…",
"steps": 30, "guidanceScale": 7.5, "seed": 1, "scheduler": "euler_a", "width": 512, "height": 512,
"numImages": 1, "image": "start.png", "strength": 0.6}; the command line's values are their defaults.
A line's relative "image" path is relative to the batch file's folder.`;

/** The parsed command line. */
export interface GenerateArgs {
  model: string;
  out: string;
  backend: string;
  batch?: string;
  /** The generation fields given on the command line (defaults for batch lines). */
  fields: Record<string, string>;
  /** `--lora` files with their scales, in the order given. */
  loras: LoraSpec[];
}

/** One `--lora FILE[:SCALE]`. */
export interface LoraSpec {
  file: string;
  scale: number;
}

/**
 * Splits `FILE[:SCALE]`: a trailing `:number` is the scale (default 1), so paths with colons
 * elsewhere (`C:\loras\x.safetensors`) stay whole.
 */
export function parseLoraSpec(spec: string): LoraSpec {
  const m = /^(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(spec);
  const scale = m ? Number(m[2]) : 1;
  if (!Number.isFinite(scale)) throw new UsageError(`--lora ${spec}: the scale is not a finite number`);
  if (spec === '') throw new UsageError('--lora needs a file: --lora FILE[:SCALE]');
  return { file: m ? m[1]! : spec, scale };
}

/** Turns zod's issues into one line per field. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => {
      const field = i.path.join('.') || (i.code === 'unrecognized_keys' ? i.keys.join(', ') : '(root)');
      return `${prefix}${field}: ${i.message}`;
    })
    .join('; ');
}

/** Parses `kiln generate`'s flags; unknown flags and missing required ones are a UsageError. */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs {
  const options = Object.fromEntries(Object.keys(FLAGS).map((name) => [name, { type: 'string' as const, multiple: name === 'lora' }]));
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${GENERATE_USAGE}`);
  }
  const { lora = [], ...rest } = values as Partial<Record<Flag, string>> & { lora?: string[] };
  const v: Partial<Record<Flag, string>> = rest;
  if (!v.model) throw new UsageError(`--model is required\n\n${GENERATE_USAGE}`);
  if (v.prompt === undefined && v.batch === undefined) throw new UsageError(`give --prompt or --batch\n\n${GENERATE_USAGE}`);
  if (v.prompt !== undefined && v.batch !== undefined)
    throw new UsageError(`give --prompt or --batch, not both (batch lines carry their prompts)\n\n${GENERATE_USAGE}`);
  const fields: Record<string, string> = {};
  for (const [name, f] of Object.entries(FLAGS)) {
    const value = v[name as Flag];
    if (f.field && value !== undefined) fields[f.field] = value;
  }
  return { model: v.model, out: v.out ?? 'outputs', backend: v.backend ?? 'wasm', batch: v.batch, fields, loras: lora.map(parseLoraSpec) };
}

/** A job from command-line fields and (in batch mode) one line's fields on top; a ZodError on bad values. */
export function parseJob(fields: Record<string, unknown>, line?: Record<string, unknown>): Job {
  return JobSchema.parse({ ...fields, ...line });
}
