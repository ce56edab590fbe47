import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { ConfigError } from '@kiln/nn';
import { AutoencoderKL } from '@kiln/vae';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTEXTS,
  HARD_NEGATIVES,
  SUBJECT,
  WorldScorer,
  chwBatch,
  colorLabel,
  hardNegativeScene,
  parseScorerConfig,
  renderScene,
  sceneLabels,
  subjectScene,
  toChw,
  worldScene,
} from '../src/index.js';
import type { Scene, Score } from '../src/index.js';
import { WORLD_SCORER_DIR, loadWorldScorer } from '../src/scorer-node.js';

// Held-out seeds (the committed scorer was trained on seed 0's pool; eval-scorer.ts uses 101–103).
const world = Array.from({ length: 100 }, (_, i) => worldScene(201, i));
const subjects = Array.from({ length: 50 }, (_, i) => subjectScene(CONTEXTS[i % CONTEXTS.length], 202, i));
const batch = (scenes: Scene[]) =>
  chwBatch(
    scenes.map((s) => toChw(renderScene(s, 32), 32)),
    32,
  );
const frac = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;

let scorer: WorldScorer;
beforeAll(async () => {
  await k.useBackend('wasm');
  scorer = await loadWorldScorer();
});
afterAll(() => scorer?.dispose());

describe('the committed world scorer', () => {
  let scores: Score[];
  beforeAll(async () => {
    scores = await scorer.score(batch(world));
  });

  it('reads class, colour and context of held-out world renders', () => {
    expect(frac(scores.map((s, i) => s.shape === world[i].shape))).toBeGreaterThanOrEqual(0.95);
    expect(frac(scores.map((s, i) => s.color === world[i].colorName))).toBeGreaterThanOrEqual(0.95);
    expect(frac(scores.map((s, i) => s.context === world[i].context))).toBeGreaterThanOrEqual(0.95);
    expect(frac(scores.map((s) => !s.subject))).toBeGreaterThanOrEqual(0.98);
  });

  it('recognises the subject in every context, including those no instance image shows', async () => {
    const s = await scorer.score(batch(subjects));
    expect(frac(s.map((x) => x.subject))).toBeGreaterThanOrEqual(0.95);
    expect(frac(s.map((x, i) => x.context === subjects[i].context))).toBeGreaterThanOrEqual(0.95);
    expect(s.every((x) => x.subjectProb >= 0 && x.subjectProb <= 1)).toBe(true);
  });

  it('rejects every hard-negative family: one-tone, average colour, no dot, swapped, other two-tone, other shapes', async () => {
    for (const family of HARD_NEGATIVES) {
      const scenes = Array.from({ length: 20 }, (_, i) => hardNegativeScene(family, 203, i));
      expect(scenes.every((s) => !sceneLabels(s).subject)).toBe(true);
      const s = await scorer.score(batch(scenes));
      expect(frac(s.map((x) => !x.subject)), family).toBeGreaterThanOrEqual(0.9);
    }
  });

  it.skipIf(!existsSync(join(WORLD_SCORER_DIR, '..', 'model', 'vae', 'config.json')))(
    "recognises the subject through the world VAE's round trip",
    async () => {
      const vae = await AutoencoderKL.fromPretrained(join(WORLD_SCORER_DIR, '..', 'model', 'vae'));
      const x = batch(subjects.slice(0, 20));
      const y = k.noGrad(() => vae.decode(vae.encode(x).latentDist.mode()).sample.clamp(-1, 1));
      const s = await scorer.score(y);
      expect(frac(s.map((v) => v.subject))).toBeGreaterThanOrEqual(0.9);
      vae.dispose();
    },
  );

  it('round-trips through savePretrained/fromPretrained with the same scores', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-scorer-'));
    try {
      await scorer.savePretrained(dir);
      const again = await WorldScorer.fromPretrained(dir);
      const x = batch(world.slice(0, 8));
      const [a, b] = [scorer.forward(x).subject, again.forward(x).subject];
      expect(Array.from((await a.data()) as Float32Array)).toEqual(Array.from((await b.data()) as Float32Array));
      again.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses inputs of the wrong shape and configs with other labels, by name', () => {
    expect(() => scorer.forward(k.zeros([1, 3, 16, 16]))).toThrow(/\[N, 3, 32, 32\], got \[1, 3, 16, 16\]/);
    expect(() => parseScorerConfig({ shape_labels: ['circle'] })).toThrow(ConfigError);
    expect(() => parseScorerConfig({ norm_num_groups: 5 })).toThrow(/norm_num_groups/);
  });
});

describe('scorer labels', () => {
  it('name a colour within 0.1 of a named colour, call two-tone and far colours other, and leave the gap unlabelled', () => {
    expect(colorLabel([0.88, 0.12, 0.08])).toBe('red');
    expect(colorLabel(SUBJECT.color)).toBe('other');
    expect(colorLabel([0.86, 0.1, 0.1], [0.1, 0.62, 0.15])).toBe('other');
    expect(colorLabel([0.86, 0.25, 0.1])).toBeNull();
  });

  it('call only the subject (within a small colour tolerance, with its dot) the subject', () => {
    const s = subjectScene('grid', 0, 0);
    expect(sceneLabels(s)).toEqual({ shape: 'star', color: 'other', context: 'grid', subject: true });
    expect(sceneLabels({ ...s, color: [0.87, 0.12, 0.6] }).subject).toBe(true);
    expect(sceneLabels({ ...s, dotColor: undefined }).subject).toBe(false);
    expect(sceneLabels({ ...s, shape: 'circle' }).subject).toBe(false);
  });
});
