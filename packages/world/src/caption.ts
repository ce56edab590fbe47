import { keyedRandom } from '@kiln/dreambooth-trainer';
import { CONTEXT_WORDS } from './scene.js';
import type { Scene } from './scene.js';

/** How often captions drop each attribute, and how often they are empty (for classifier-free guidance). */
export interface CaptionDropout {
  color: number;
  context: number;
  empty: number;
}

/** The base model's recipe: attributes dropped a quarter of the time, 10% of captions empty. */
export const DEFAULT_DROPOUT: CaptionDropout = { color: 0.25, context: 0.25, empty: 0.1 };

/**
 * The prompt that describes a scene, in the form every prompt of the world takes:
 * "a photo of a red star on a dotted background". `noun` replaces "a <colour> <shape>" (DreamBooth's
 * "sks star").
 *
 * @example
 * ```ts
 * describe({ shape: 'star', colorName: 'red', context: 'dots' }); // 'a photo of a red star on a dotted background'
 * describe({ shape: 'star', context: 'dots' }, { noun: 'sks star' }); // 'a photo of sks star on a dotted background'
 * ```
 */
export function describe(
  scene: Pick<Scene, 'shape' | 'context'> & { colorName?: string },
  o: { noun?: string; color?: boolean; context?: boolean } = {},
): string {
  const noun = o.noun ?? `a ${o.color !== false && scene.colorName ? `${scene.colorName} ` : ''}${scene.shape}`;
  return `a photo of ${noun}${o.context !== false ? ` on ${CONTEXT_WORDS[scene.context]}` : ''}`;
}

/**
 * A training caption of a world scene, with attributes dropped at random (keyed, so reproducible).
 *
 * @example
 * ```ts
 * caption(worldScene(0, 5), 0, 5); // e.g. 'a photo of a blue circle' or ''
 * ```
 */
export function caption(scene: Scene, seed: number, index: number, dropout: CaptionDropout = DEFAULT_DROPOUT): string {
  const rand = keyedRandom(seed, index, 0xca9);
  if (rand() < dropout.empty) return '';
  return describe(scene, { color: rand() >= dropout.color, context: rand() >= dropout.context });
}
