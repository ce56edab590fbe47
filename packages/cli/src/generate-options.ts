import { parseArgs } from 'node:util';
import { GenerationOptionsSchema } from '@kiln/pipeline';
import { z } from 'zod';
import { UsageError } from './usage-error.js';
import { FLAGS, GENERATE_USAGE } from './generate-usage.js';
import type { Flag } from './generate-usage.js';

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
