/**
 * @kiln/world: Kiln's built-in world. Seeded procedural images of shapes (circle, square, triangle,
 * star) in named colours on patterned backgrounds, with captions like "a photo of a red star on a
 * dotted background"; a DreamBooth subject the base model never draws; and scenes for training the
 * autoencoder on looks beyond the captioned world. Runs anywhere (no Node APIs); folders of PNGs
 * with captions are written by `@kiln/world/node`.
 *
 * @example
 * ```ts
 * import { worldScene, renderScene, caption } from '@kiln/world';
 * const scene = worldScene(0, 1);
 * const rgb = renderScene(scene, 32); // 32·32·3 bytes
 * const text = caption(scene, 0, 1); // 'a photo of a green square on a striped background'
 * ```
 * @packageDocumentation
 */
export { SHAPES, CONTEXTS, CONTEXT_WORDS, COLORS, COLOR_NAMES, worldScene, autoencoderScene, pick } from './scene.js';
export type { Shape, Context, ColorName, Rgb, Scene } from './scene.js';
export { renderScene, toChw } from './render.js';
export { caption, describe, DEFAULT_DROPOUT } from './caption.js';
export type { CaptionDropout } from './caption.js';
export { SUBJECT, SUBJECT_NOUN, CLASS_NOUN, INSTANCE_CONTEXTS, subjectScene, instanceScenes } from './subject.js';
export { WorldScorer, SCORER_LABELS, ScorerConfigSchema, parseScorerConfig, rgbaToChw, chwBatch } from './scorer.js';
export type { Score, ScoredColor, ScorerLogits, ScorerConfig, ScorerConfigInput, RgbaLike } from './scorer.js';
export { HARD_NEGATIVES, colorLabel, sceneLabels, hardNegativeScene, scorerScene } from './scorer-data.js';
export type { HardNegative, SceneLabels, ScorerMix, ScorerSample } from './scorer-data.js';
export {
  agreement,
  subjectFidelity,
  promptFidelity,
  pres,
  div,
  pixelDiversity,
  objectQuadrant,
  dreamboothMetrics,
  metricsTable,
} from './metrics.js';
export type { SamplePrompt, ScoredSample, Rate, Quadrant, DreamBoothMetrics } from './metrics.js';
