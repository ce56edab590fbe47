import { z } from 'zod';

// Numbers arrive as strings from a command line and as numbers from JSON; both go through one schema.
const numeric = <T extends z.ZodType>(inner: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v), inner);
const int = (min: number, max: number) => numeric(z.number().int().min(min).max(max));

/**
 * One generation request as people write it: the fields of a `kiln generate --batch` line, the
 * command line's generation flags, and a `generate` job's payload in `@kiln/jobs`. One schema for
 * all three, so each accepts and refuses the same values. Unknown fields are errors.
 *
 * @example
 * ```ts
 * const options = GenerationOptionsSchema.parse({ prompt: 'a fox', steps: '20', seed: 1 }); // steps: 20, guidanceScale: 7.5, numImages: 1
 * ```
 */
export const GenerationOptionsSchema = z.strictObject({
  prompt: z.string(),
  negativePrompt: z.string().default(''),
  steps: int(1, 1000).default(30),
  guidanceScale: numeric(z.number().min(0).max(100)).default(7.5),
  /** The first image's seed; image i uses seed + i. Random when absent. */
  seed: int(0, 2 ** 32 - 1).optional(),
  /** A scheduler name (`euler_a`, `dpm++_2m`, `ddim`, a diffusers class name); the model's own when absent. */
  scheduler: z.string().min(1).optional(),
  width: numeric(z.number().int().min(8).max(4096)).optional(),
  height: numeric(z.number().int().min(8).max(4096)).optional(),
  numImages: int(1, 64).default(1),
});

/** A validated generation request (defaults applied). */
export type GenerationOptions = z.output<typeof GenerationOptionsSchema>;
