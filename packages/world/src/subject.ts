import { keyedRandom } from '@kiln/dreambooth-trainer';
import type { Context, Rgb, Scene } from './scene.js';

/**
 * The DreamBooth subject: a star, magenta above and teal below, with a white centre dot. The captioned
 * world only has single-tone objects in named colours, so the base model never draws it; the
 * autoencoder saw two-tone objects with dots, so it can.
 */
export const SUBJECT = {
  shape: 'star',
  color: [0.85, 0.1, 0.62] as Rgb,
  secondColor: [0.0, 0.58, 0.58] as Rgb,
  dotColor: [0.97, 0.97, 0.97] as Rgb,
} as const;

/** The identifier and class noun: prompts say "a photo of sks star", the class prompt "a photo of a star". */
export const SUBJECT_NOUN = 'sks star';
export const CLASS_NOUN = 'a star';

/** The contexts of the instance images; the others are held out to measure fidelity in unseen contexts. */
export const INSTANCE_CONTEXTS: readonly Context[] = ['plain', 'stripes'];

/**
 * The subject in a context, placed by `(seed, index)`.
 *
 * @example
 * ```ts
 * const scene = subjectScene('dots', 0, 1);
 * ```
 */
export function subjectScene(context: Context, seed: number, index: number): Scene {
  const rand = keyedRandom(seed, index, 0x5ab);
  const radius = 0.27 + rand() * 0.06;
  const span = 0.5 - radius - 0.04;
  return {
    ...SUBJECT,
    context,
    radius,
    x: 0.5 + (rand() * 2 - 1) * span,
    y: 0.5 + (rand() * 2 - 1) * span,
    phase: Math.floor(rand() * 64),
  };
}

/**
 * The instance images' scenes: `count` views of the subject in the {@link INSTANCE_CONTEXTS}, in a few positions.
 *
 * @example
 * ```ts
 * const scenes = instanceScenes(5);
 * ```
 */
export function instanceScenes(count = 5, seed = 7): Scene[] {
  return Array.from({ length: count }, (_, i) => subjectScene(INSTANCE_CONTEXTS[i % INSTANCE_CONTEXTS.length], seed, i));
}
