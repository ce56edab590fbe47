import { keyedRandom } from '@kiln/dreambooth-trainer';

/** The object classes of the world. */
export const SHAPES = ['circle', 'square', 'triangle', 'star'] as const;
export type Shape = (typeof SHAPES)[number];

/** The backgrounds: patterns on a light ground, never a global colour (with ε-prediction the image mean is fixed by the start noise). */
export const CONTEXTS = ['plain', 'stripes', 'dots', 'checker', 'grid'] as const;
export type Context = (typeof CONTEXTS)[number];

/** How a caption names each context. */
export const CONTEXT_WORDS: Record<Context, string> = {
  plain: 'a plain background',
  stripes: 'a striped background',
  dots: 'a dotted background',
  checker: 'a checkered background',
  grid: 'a grid background',
};

export type Rgb = readonly [number, number, number];

/** The named colours of the captioned world, in [0, 1]. */
export const COLORS = {
  red: [0.86, 0.1, 0.1],
  orange: [0.96, 0.55, 0.05],
  yellow: [0.95, 0.85, 0.1],
  green: [0.1, 0.62, 0.15],
  blue: [0.1, 0.25, 0.86],
  purple: [0.5, 0.15, 0.72],
  black: [0.08, 0.08, 0.08],
} as const satisfies Record<string, Rgb>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

/** One image of the world: an object on a patterned background. Coordinates are fractions of the image side. */
export interface Scene {
  shape: Shape;
  /** The object's colour; with `secondColor` the top half has `color` and the bottom half `secondColor`. */
  color: Rgb;
  secondColor?: Rgb;
  /** A centre dot of this colour, if any. */
  dotColor?: Rgb;
  /** The colour's name, when it is one of {@link COLORS}. */
  colorName?: ColorName;
  context: Context;
  /** Centre and radius, as fractions of the side. */
  x: number;
  y: number;
  radius: number;
  /** Phase of the background pattern, in pixels. */
  phase: number;
}

/** A uniform pick from a list. */
export const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const jitter = (rand: () => number, c: Rgb, amount: number): Rgb =>
  c.map((v) => Math.min(1, Math.max(0, v + (rand() * 2 - 1) * amount))) as unknown as Rgb;

/** Position, size and pattern phase: objects fill a third to two thirds of the image, anywhere that keeps them inside. */
function placement(rand: () => number): Pick<Scene, 'x' | 'y' | 'radius' | 'phase'> {
  const radius = 0.24 + rand() * 0.1;
  const span = 0.5 - radius - 0.04;
  return { radius, x: 0.5 + (rand() * 2 - 1) * span, y: 0.5 + (rand() * 2 - 1) * span, phase: Math.floor(rand() * 64) };
}

/**
 * A scene of the captioned world: one of {@link SHAPES} in one of the named {@link COLORS} (single-tone,
 * lightly jittered) on one of the {@link CONTEXTS}, keyed by `(seed, index)`.
 *
 * @example
 * ```ts
 * const scene = worldScene(0, 17); // { shape: 'star', colorName: 'red', context: 'dots', … }
 * ```
 */
export function worldScene(seed: number, index: number, fixed: Partial<Pick<Scene, 'shape' | 'context' | 'colorName'>> = {}): Scene {
  const rand = keyedRandom(seed, index, 0x3051d);
  const shape = fixed.shape ?? pick(rand, SHAPES);
  const colorName = fixed.colorName ?? pick(rand, COLOR_NAMES);
  const context = fixed.context ?? pick(rand, CONTEXTS);
  return { shape, colorName, color: jitter(rand, COLORS[colorName], 0.05), context, ...placement(rand) };
}

/**
 * A scene for training the autoencoder: objects of any RGB colour, half of them two-tone and some with a
 * centre dot, so that the VAE can hold looks the captioned world never shows (the DreamBooth subject's).
 *
 * @example
 * ```ts
 * const scene = autoencoderScene(0, 3);
 * ```
 */
export function autoencoderScene(seed: number, index: number): Scene {
  const rand = keyedRandom(seed, index, 0xae);
  const rgb = (): Rgb => [rand(), rand(), rand()];
  const named = rand() < 0.3;
  const colorName = named ? pick(rand, COLOR_NAMES) : undefined;
  const scene: Scene = {
    shape: pick(rand, SHAPES),
    color: colorName ? jitter(rand, COLORS[colorName], 0.05) : rgb(),
    colorName,
    context: pick(rand, CONTEXTS),
    ...placement(rand),
  };
  if (rand() < 0.5) scene.secondColor = rgb();
  if (rand() < 0.3) scene.dotColor = rgb();
  return scene;
}
