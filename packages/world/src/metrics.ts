import { KilnError } from '@kiln/tensor-core';
import type { ColorName, Context, Shape } from './scene.js';
import type { Score } from './scorer.js';

/**
 * What a sample was generated from. `subject`: the identifier prompt ("a photo of sks star on a
 * dotted background"); `class`: the class prompt ("a photo of a star"); `world`: a prompt of the
 * base model's world ("a photo of a red square on a grid background").
 *
 * @example
 * ```ts
 * const prompt: SamplePrompt = { kind: 'subject', shape: 'star', context: 'dots' }; // "a photo of sks star on a dotted background"
 * ```
 */
export interface SamplePrompt {
  kind: 'subject' | 'class' | 'world';
  /** The class the prompt names (the class noun's for `subject` and `class` prompts). */
  shape?: Shape;
  color?: ColorName;
  context?: Context;
}

/**
 * One generated sample: its prompt, what the scorer read, and optionally the image (CHW in [−1, 1], `toChw`'s layout).
 *
 * @example
 * ```ts
 * const images = result.rgba.map(rgbaToChw);
 * const scores = await scorer.score(chwBatch(images, 32));
 * const samples: ScoredSample[] = scores.map((score, i) => ({ prompt: { kind: 'class', shape: 'star' }, score, image: images[i] }));
 * ```
 */
export interface ScoredSample {
  prompt: SamplePrompt;
  score: Score;
  image?: Float32Array;
}

/**
 * A fraction with its counts; `value` is null when no sample qualified.
 *
 * @example
 * ```ts
 * const r: Rate = pres(samples); // { value: 0.02, hits: 1, of: 50 }
 * ```
 */
export interface Rate {
  value: number | null;
  hits: number;
  of: number;
}

const rate = (samples: readonly ScoredSample[], applies: (s: ScoredSample) => boolean, hit: (s: ScoredSample) => boolean): Rate => {
  const pool = samples.filter(applies);
  const hits = pool.filter(hit).length;
  return { value: pool.length ? hits / pool.length : null, hits, of: pool.length };
};

/**
 * Agreement with the prompt: for each attribute, the fraction of samples whose prompt names it
 * that the scorer reads as named. Pass the base model's `world` samples for the base agreement.
 *
 * @example
 * ```ts
 * const a = agreement(samples.filter((s) => s.prompt.kind === 'world'));
 * a.shape.value; // e.g. 0.94
 * ```
 */
export function agreement(samples: readonly ScoredSample[]): { shape: Rate; color: Rate; context: Rate } {
  return {
    shape: rate(
      samples,
      (s) => s.prompt.shape !== undefined,
      (s) => s.score.shape === s.prompt.shape,
    ),
    color: rate(
      samples,
      (s) => s.prompt.color !== undefined,
      (s) => s.score.color === s.prompt.color,
    ),
    context: rate(
      samples,
      (s) => s.prompt.context !== undefined,
      (s) => s.score.context === s.prompt.context,
    ),
  };
}

/**
 * Subject fidelity: the fraction of identifier-prompted samples the scorer calls the subject
 * (the paper's DINO/CLIP-I, as a count).
 *
 * @example
 * ```ts
 * subjectFidelity(samples).value; // e.g. 0.92
 * ```
 */
export function subjectFidelity(samples: readonly ScoredSample[]): Rate {
  return rate(
    samples,
    (s) => s.prompt.kind === 'subject',
    (s) => s.score.subject,
  );
}

/**
 * Prompt fidelity: among identifier-prompted samples that request a context, the fraction where the
 * scorer reads that context (the paper's CLIP-T, as a count).
 *
 * @example
 * ```ts
 * promptFidelity(samples).value; // e.g. 0.97
 * ```
 */
export function promptFidelity(samples: readonly ScoredSample[]): Rate {
  return rate(
    samples,
    (s) => s.prompt.kind === 'subject' && s.prompt.context !== undefined,
    (s) => s.score.context === s.prompt.context,
  );
}

/**
 * PRES (prior preservation): the fraction of class-prompted samples the scorer calls the subject,
 * i.e. how far the subject has leaked into the class. Lower is better.
 *
 * @example
 * ```ts
 * pres(samples).value; // e.g. 0.02 with prior preservation
 * ```
 */
export function pres(samples: readonly ScoredSample[]): Rate {
  return rate(
    samples,
    (s) => s.prompt.kind === 'class',
    (s) => s.score.subject,
  );
}

/**
 * Which quarter of the image holds an object's centroid, or `none` when no object pixels are found.
 *
 * @example
 * ```ts
 * const q: Quadrant = objectQuadrant(image, 32); // 'top-left'
 * ```
 */
export type Quadrant = 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right' | 'none';

/** Object pixels are coloured (chroma above this) or dark (value below {@link DARK}); the world's backgrounds are light greys. */
const CHROMA = 0.2;
const DARK = 0.35;
/** Below this fraction of object pixels there is no object to place (a faint or empty sample). */
const MIN_OBJECT = 0.01;

/**
 * The quadrant of the object's centroid in an image of the world (CHW in [−1, 1]). Object pixels are
 * those with chroma (max − min of RGB in [0, 1]) above 0.2 or value below 0.35: the world's
 * backgrounds (ground, ink, checker) are light greys, its objects saturated or black. Fewer than 1%
 * object pixels (a faint or empty sample) give `none`.
 *
 * @example
 * ```ts
 * objectQuadrant(toChw(renderScene({ ...worldScene(0, 1), x: 0.3, y: 0.7 }), 32), 32); // 'bottom-left'
 * ```
 */
export function objectQuadrant(image: Float32Array, size: number): Quadrant {
  const n = size * size;
  if (image.length !== 3 * n)
    throw new KilnError(`objectQuadrant: image has ${image.length} values, a 3×${size}×${size} image has ${3 * n}`);
  let sx = 0;
  let sy = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const r = (image[i] + 1) / 2;
    const g = (image[n + i] + 1) / 2;
    const b = (image[2 * n + i] + 1) / 2;
    const hi = Math.max(r, g, b);
    if (hi - Math.min(r, g, b) > CHROMA || hi < DARK) {
      sx += i % size;
      sy += Math.floor(i / size);
      count++;
    }
  }
  if (count < MIN_OBJECT * n) return 'none';
  const half = (size - 1) / 2;
  return `${sy / count > half ? 'bottom' : 'top'}-${sx / count > half ? 'right' : 'left'}` as Quadrant;
}

/**
 * DIV, as a count of distinct looks: the number of distinct (shape, colour, context, quadrant)
 * combinations the scorer and {@link objectQuadrant} read among class-prompted samples (the
 * quadrant is left out of the look for samples without an image). More is more diverse; the paper
 * measures the same thing with LPIPS distances between class samples.
 *
 * @example
 * ```ts
 * div(samples); // e.g. 41 distinct looks among 50 class samples
 * ```
 */
export function div(samples: readonly ScoredSample[], size = 32): number {
  const looks = new Set<string>();
  for (const s of samples) {
    if (s.prompt.kind !== 'class') continue;
    const q = s.image ? objectQuadrant(s.image, size) : '';
    looks.add(`${s.score.shape}|${s.score.color}|${s.score.context}|${q}`);
  }
  return looks.size;
}

/**
 * Pixel DIV: the mean distance between pairs of class-prompted samples' images, each distance the
 * root mean square of the difference in [−1, 1] units (0: all the same image). A scorer-free
 * complement to {@link div}; null with fewer than two images.
 *
 * @example
 * ```ts
 * pixelDiversity(samples); // e.g. 0.41
 * ```
 */
export function pixelDiversity(samples: readonly ScoredSample[]): number | null {
  const images = samples.filter((s) => s.prompt.kind === 'class' && s.image).map((s) => s.image!);
  if (images.length < 2) return null;
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < images.length; i++)
    for (let j = i + 1; j < images.length; j++) {
      const a = images[i];
      const b = images[j];
      if (a.length !== b.length) throw new KilnError(`pixelDiversity: images of ${a.length} and ${b.length} values`);
      let s = 0;
      for (let p = 0; p < a.length; p++) s += (a[p] - b[p]) ** 2;
      total += Math.sqrt(s / a.length);
      pairs++;
    }
  return total / pairs;
}

/**
 * The metrics of one DreamBooth run, in the paper's terms plus the base agreement.
 *
 * @example
 * ```ts
 * const m: DreamBoothMetrics = dreamboothMetrics(samples);
 * m.pres.value; // lower is better
 * ```
 */
export interface DreamBoothMetrics {
  subjectFidelity: Rate;
  promptFidelity: Rate;
  pres: Rate;
  div: number;
  pixelDiv: number | null;
  /** Agreement of `world` samples with their prompts (the base model's prior, after fine-tuning). */
  base: { shape: Rate; color: Rate; context: Rate };
}

/**
 * All metrics of a run's scored samples: subject and prompt fidelity over `subject` prompts, PRES
 * and DIV over `class` prompts, base agreement over `world` prompts.
 *
 * @example
 * ```ts
 * const m = dreamboothMetrics(samples);
 * console.log(metricsTable([{ label: 'with prior preservation', metrics: m }]));
 * ```
 */
export function dreamboothMetrics(samples: readonly ScoredSample[], size = 32): DreamBoothMetrics {
  return {
    subjectFidelity: subjectFidelity(samples),
    promptFidelity: promptFidelity(samples),
    pres: pres(samples),
    div: div(samples, size),
    pixelDiv: pixelDiversity(samples),
    base: agreement(samples.filter((s) => s.prompt.kind === 'world')),
  };
}

const COLUMNS: ReadonlyArray<[string, (m: DreamBoothMetrics) => string]> = [
  ['subject fidelity ↑', (m) => fmtRate(m.subjectFidelity)],
  ['prompt fidelity ↑', (m) => fmtRate(m.promptFidelity)],
  ['PRES ↓', (m) => fmtRate(m.pres)],
  ['DIV ↑', (m) => String(m.div)],
  ['pixel DIV ↑', (m) => (m.pixelDiv === null ? '—' : m.pixelDiv.toFixed(3))],
  ['base class', (m) => fmtRate(m.base.shape)],
  ['base colour', (m) => fmtRate(m.base.color)],
  ['base context', (m) => fmtRate(m.base.context)],
];
const fmtRate = (r: Rate) => (r.value === null ? '—' : r.value.toFixed(2));

/**
 * The table of the DreamBooth paper's shape: one row per run (e.g. "with prior preservation",
 * "without"), columns subject fidelity, prompt fidelity, PRES, DIV (distinct looks), pixel DIV and
 * the base agreement. `markdown` gives a GitHub table, `text` aligned columns for a terminal.
 *
 * @example
 * ```ts
 * metricsTable([
 *   { label: 'with prior preservation', metrics: withPrior },
 *   { label: 'without', metrics: without },
 * ]);
 * // | run | subject fidelity ↑ | prompt fidelity ↑ | PRES ↓ | DIV ↑ | …
 * ```
 */
export function metricsTable(
  rows: ReadonlyArray<{ label: string; metrics: DreamBoothMetrics }>,
  format: 'markdown' | 'text' = 'markdown',
): string {
  const head = ['run', ...COLUMNS.map(([h]) => h)];
  const body = rows.map((r) => [r.label, ...COLUMNS.map(([, f]) => f(r.metrics))]);
  if (format === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
