// Node only (re-exported by `@kiln/world/node`): where the committed scorer lives, and loading it.
import { fileURLToPath } from 'node:url';
import { WorldScorer } from './scorer.js';

/** The committed world scorer's folder, `packages/world/scorer` (`config.json`, `model.safetensors`). */
export const WORLD_SCORER_DIR = fileURLToPath(new URL('../scorer/', import.meta.url));

/**
 * Loads the committed world scorer (trained by `scripts/train-scorer.ts` from `recipe/scorer.json`),
 * or the scorer folder `dir`.
 *
 * @example
 * ```ts
 * const scorer = await loadWorldScorer();
 * const scores = await scorer.score(images); // [{ shape: 'star', color: 'other', context: 'dots', subject: true, … }]
 * ```
 */
export function loadWorldScorer(dir: string = WORLD_SCORER_DIR): Promise<WorldScorer> {
  return WorldScorer.fromPretrained(dir);
}
