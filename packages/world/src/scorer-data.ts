import { keyedRandom } from '@kiln/dreambooth-trainer';
import { COLORS, COLOR_NAMES, CONTEXTS, SHAPES, pick, worldScene } from './scene.js';
import type { Rgb, Scene } from './scene.js';
import type { ScoredColor } from './scorer.js';
import { SUBJECT, subjectScene } from './subject.js';

/**
 * The near misses a scorer must call "not the subject", each a family of scenes. The first five
 * are the looks a DreamBooth run produces when the subject is half learned or the VAE cannot hold
 * it (calibration runs drew purple blobs, which a naive scorer took for the subject 98% of the time).
 *
 * @example
 * ```ts
 * HARD_NEGATIVES.map((f) => hardNegativeScene(f, 0, 0)); // one scene of each family
 * ```
 */
export const HARD_NEGATIVES = [
  /** A star all in the subject's top colour (magenta), with or without the dot. */
  'magenta-only',
  /** A star all in the subject's bottom colour (teal), with or without the dot. */
  'teal-only',
  /** A star in the average of the two (a dull purple), with or without the dot. */
  'average-color',
  /** The two-tone subject without its centre dot. */
  'no-dot',
  /** Teal above magenta: the subject upside down. */
  'swapped',
  /** Other two-tone stars (random colours away from the subject's), with or without a dot. */
  'other-two-tone',
  /** The subject's colours and dot on a circle, square or triangle. */
  'other-shape',
] as const;
/**
 * One family of {@link HARD_NEGATIVES}.
 *
 * @example
 * ```ts
 * const family: HardNegative = 'average-color';
 * ```
 */
export type HardNegative = (typeof HARD_NEGATIVES)[number];

/**
 * What a scorer should read in a scene; `color: null` where the colour is ambiguous (left out of the colour loss and accuracy).
 *
 * @example
 * ```ts
 * const labels: SceneLabels = sceneLabels(worldScene(0, 1));
 * ```
 */
export interface SceneLabels {
  shape: Scene['shape'];
  color: ScoredColor | null;
  context: Scene['context'];
  subject: boolean;
}

const dist = (a: Rgb, b: Rgb) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
/** Named colours are jittered by ±0.05 per channel (≤ 0.087 away); beyond 0.2 from all of them a colour is `other`. */
const NAMED_WITHIN = 0.1;
const OTHER_BEYOND = 0.2;

/**
 * The colour label of an object colour: the named colour within 0.1 of it, `other` when it is more
 * than 0.2 from every named colour (or the object is two-tone), and `null` (no label) in between.
 *
 * @example
 * ```ts
 * colorLabel(COLORS.red); // 'red'
 * colorLabel(SUBJECT.color); // 'other'
 * ```
 */
export function colorLabel(color: Rgb, secondColor?: Rgb): ScoredColor | null {
  if (secondColor) return 'other';
  let best = COLOR_NAMES[0];
  for (const n of COLOR_NAMES) if (dist(color, COLORS[n]) < dist(color, COLORS[best])) best = n;
  const d = dist(color, COLORS[best]);
  return d <= NAMED_WITHIN ? best : d >= OTHER_BEYOND ? 'other' : null;
}

const SUBJECT_TOLERANCE = 0.06;
/**
 * The labels of a scene: its shape and context, its colour by {@link colorLabel}, and `subject`
 * when it is the subject's star with the subject's two colours (each within 0.06) and a dot.
 *
 * @example
 * ```ts
 * sceneLabels(subjectScene('dots', 0, 1)); // { shape: 'star', color: 'other', context: 'dots', subject: true }
 * ```
 */
export function sceneLabels(s: Scene): SceneLabels {
  const subject =
    s.shape === SUBJECT.shape &&
    s.secondColor !== undefined &&
    s.dotColor !== undefined &&
    dist(s.color, SUBJECT.color) <= SUBJECT_TOLERANCE &&
    dist(s.secondColor, SUBJECT.secondColor) <= SUBJECT_TOLERANCE &&
    dist(s.dotColor, SUBJECT.dotColor) <= 0.15;
  return { shape: s.shape, color: colorLabel(s.color, s.secondColor), context: s.context, subject };
}

const jitter = (rand: () => number, c: Rgb, a: number): Rgb =>
  c.map((v) => Math.min(1, Math.max(0, v + (rand() * 2 - 1) * a))) as unknown as Rgb;
const mix = (a: Rgb, b: Rgb): Rgb => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2];

/**
 * A scene of a hard-negative family, keyed by `(seed, index)`, placed as the subject is (any context).
 *
 * @example
 * ```ts
 * hardNegativeScene('average-color', 0, 3); // a dull purple star, sometimes with a white dot
 * ```
 */
export function hardNegativeScene(family: HardNegative, seed: number, index: number): Scene {
  const rand = keyedRandom(seed, index, 0x4e9);
  const base = subjectScene(pick(rand, CONTEXTS), seed, index);
  const dot = rand() < 0.5 ? { dotColor: SUBJECT.dotColor } : {};
  const one = (color: Rgb): Scene => ({ ...base, secondColor: undefined, dotColor: undefined, color: jitter(rand, color, 0.03), ...dot });
  switch (family) {
    case 'magenta-only':
      return one(SUBJECT.color);
    case 'teal-only':
      return one(SUBJECT.secondColor);
    case 'average-color':
      return one(mix(SUBJECT.color, SUBJECT.secondColor));
    case 'no-dot':
      return { ...base, dotColor: undefined };
    case 'swapped':
      return { ...base, color: SUBJECT.secondColor, secondColor: SUBJECT.color };
    case 'other-two-tone': {
      // Colours at least 0.3 from the subject's own, so that no "other" star is the subject.
      const away = (c: Rgb): Rgb => {
        for (;;) {
          const x: Rgb = [rand(), rand(), rand()];
          if (dist(x, c) > 0.3) return x;
        }
      };
      return {
        ...base,
        color: away(SUBJECT.color),
        secondColor: away(SUBJECT.secondColor),
        dotColor: rand() < 0.5 ? [rand(), rand(), rand()] : undefined,
      };
    }
    case 'other-shape':
      return {
        ...base,
        shape: pick(
          rand,
          SHAPES.filter((s) => s !== 'star'),
        ),
      };
  }
}

/**
 * How a training batch mixes its sources (relative weights).
 *
 * @example
 * ```ts
 * const mix: ScorerMix = { world: 0.5, subject: 0.2, hardNegative: 0.3 };
 * ```
 */
export interface ScorerMix {
  world: number;
  subject: number;
  hardNegative: number;
}

/**
 * One training scene of the scorer and where it came from: the captioned world, the subject, or a
 * hard-negative family.
 *
 * @example
 * ```ts
 * const { scene, source }: ScorerSample = scorerScene(0, 12, { world: 0.5, subject: 0.2, hardNegative: 0.3 });
 * ```
 */
export interface ScorerSample {
  scene: Scene;
  source: 'world' | 'subject' | HardNegative;
}

/**
 * The scorer's training scenes, keyed by `(seed, index)`: captioned-world scenes, the subject in
 * every context (its colours lightly jittered, as generated samples are), and the
 * {@link HARD_NEGATIVES} in equal parts, in the proportions of `mix`.
 *
 * @example
 * ```ts
 * const { scene, source } = scorerScene(0, 12, { world: 0.5, subject: 0.2, hardNegative: 0.3 });
 * ```
 */
export function scorerScene(seed: number, index: number, mix: ScorerMix): ScorerSample {
  const rand = keyedRandom(seed, index, 0x5c0);
  const u = rand() * (mix.world + mix.subject + mix.hardNegative);
  if (u < mix.world) return { scene: worldScene(seed, index), source: 'world' };
  if (u < mix.world + mix.subject) {
    const s = subjectScene(pick(rand, CONTEXTS), seed, index);
    return { scene: { ...s, color: jitter(rand, s.color, 0.03), secondColor: jitter(rand, s.secondColor!, 0.03) }, source: 'subject' };
  }
  const family = pick(rand, HARD_NEGATIVES);
  return { scene: hardNegativeScene(family, seed, index), source: family };
}
