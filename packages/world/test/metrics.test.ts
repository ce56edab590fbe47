import { describe, expect, it } from 'vitest';
import {
  agreement,
  div,
  dreamboothMetrics,
  metricsTable,
  objectQuadrant,
  pixelDiversity,
  pres,
  promptFidelity,
  renderScene,
  subjectFidelity,
  toChw,
  worldScene,
} from '../src/index.js';
import type { SamplePrompt, Score, ScoredSample } from '../src/index.js';

const score = (o: Partial<Score> = {}): Score => ({
  shape: 'star',
  color: 'other',
  context: 'plain',
  subject: false,
  subjectProb: 0.1,
  ...o,
});
const sample = (prompt: SamplePrompt, s: Partial<Score> = {}, image?: Float32Array): ScoredSample => ({ prompt, score: score(s), image });
const at = (x: number, y: number, o = {}) =>
  toChw(renderScene({ ...worldScene(0, 1, { shape: 'circle', colorName: 'red', context: 'grid' }), x, y, ...o }), 32);

// 4 subject prompts (3 read as the subject, 3 in the requested context), 5 class prompts (1 read as the subject), 3 world prompts.
const samples: ScoredSample[] = [
  sample({ kind: 'subject', shape: 'star', context: 'dots' }, { subject: true, context: 'dots' }),
  sample({ kind: 'subject', shape: 'star', context: 'grid' }, { subject: true, context: 'grid' }),
  sample({ kind: 'subject', shape: 'star', context: 'checker' }, { subject: true, context: 'plain' }),
  sample({ kind: 'subject', shape: 'star', context: 'dots' }, { subject: false, context: 'dots' }),
  sample({ kind: 'class', shape: 'star' }, { subject: true }, at(0.3, 0.3)),
  sample({ kind: 'class', shape: 'star' }, { color: 'red' }, at(0.3, 0.3)),
  sample({ kind: 'class', shape: 'star' }, { color: 'red' }, at(0.7, 0.3)),
  sample({ kind: 'class', shape: 'star' }, { color: 'blue', context: 'dots' }, at(0.7, 0.7)),
  sample({ kind: 'class', shape: 'star' }, { color: 'blue', context: 'dots' }, at(0.7, 0.7)),
  sample({ kind: 'world', shape: 'square', color: 'red', context: 'grid' }, { shape: 'square', color: 'red', context: 'grid' }),
  sample({ kind: 'world', shape: 'circle', color: 'blue', context: 'dots' }, { shape: 'square', color: 'blue', context: 'dots' }),
  sample({ kind: 'world', shape: 'triangle' }, { shape: 'triangle', color: 'black' }),
];

describe('DreamBooth metrics on hand-made scores', () => {
  it('subject fidelity counts identifier-prompted samples read as the subject', () => {
    expect(subjectFidelity(samples)).toEqual({ value: 0.75, hits: 3, of: 4 });
  });

  it('prompt fidelity counts identifier-prompted samples in the requested context', () => {
    expect(promptFidelity(samples)).toEqual({ value: 0.75, hits: 3, of: 4 });
  });

  it('PRES counts class-prompted samples read as the subject', () => {
    expect(pres(samples)).toEqual({ value: 0.2, hits: 1, of: 5 });
    expect(pres(samples.filter((s) => s.prompt.kind !== 'class')).value).toBeNull();
  });

  it('base agreement scores each attribute over the prompts that name it', () => {
    const a = agreement(samples.filter((s) => s.prompt.kind === 'world'));
    expect(a.shape).toEqual({ value: 2 / 3, hits: 2, of: 3 });
    expect(a.color).toEqual({ value: 1, hits: 2, of: 2 });
    expect(a.context).toEqual({ value: 1, hits: 2, of: 2 });
  });

  it('DIV counts distinct (shape, colour, context, quadrant) looks among class samples', () => {
    // (other, plain, TL), (red, plain, TL), (red, plain, TR), (blue, dots, BR) twice → 4 looks.
    expect(div(samples)).toBe(4);
    // Without images the quadrant drops out: other/plain, red/plain, blue/dots.
    expect(div(samples.map((s) => ({ ...s, image: undefined })))).toBe(3);
  });

  it('pixel DIV is the mean pairwise RMS distance between class images', () => {
    const a = new Float32Array(12).fill(-1);
    const b = new Float32Array(12).fill(1);
    const c = [sample({ kind: 'class' }, {}, a), sample({ kind: 'class' }, {}, a), sample({ kind: 'class' }, {}, b)];
    expect(pixelDiversity(c)).toBeCloseTo((0 + 2 + 2) / 3, 10);
    expect(pixelDiversity(c.slice(0, 1))).toBeNull();
  });

  it('objectQuadrant finds the object, and none in an empty or faint image', () => {
    expect(objectQuadrant(at(0.3, 0.3), 32)).toBe('top-left');
    expect(objectQuadrant(at(0.7, 0.3), 32)).toBe('top-right');
    expect(objectQuadrant(at(0.3, 0.7), 32)).toBe('bottom-left');
    expect(objectQuadrant(at(0.7, 0.7, { colorName: 'black', color: [0.08, 0.08, 0.08] }), 32)).toBe('bottom-right');
    expect(objectQuadrant(at(0.5, 0.5, { color: [0.85, 0.84, 0.83] }), 32)).toBe('none');
    expect(() => objectQuadrant(new Float32Array(10), 32)).toThrow(/3×32×32/);
  });

  it('prints the paper-shaped table: rows per run, markdown or aligned text', () => {
    const withPrior = dreamboothMetrics(samples);
    const without = dreamboothMetrics(samples.map((s) => (s.prompt.kind === 'class' ? { ...s, score: { ...s.score, subject: true } } : s)));
    const md = metricsTable([
      { label: 'with prior preservation', metrics: withPrior },
      { label: 'without', metrics: without },
    ]);
    const lines = md.split('\n');
    expect(lines[0]).toBe(
      '| run | subject fidelity ↑ | prompt fidelity ↑ | PRES ↓ | DIV ↑ | pixel DIV ↑ | base class | base colour | base context |',
    );
    expect(lines[2]).toMatch(/^\| with prior preservation \| 0\.75 \| 0\.75 \| 0\.20 \| 4 \| \d\.\d{3} \| 0\.67 \| 1\.00 \| 1\.00 \|$/);
    expect(lines[3]).toMatch(/^\| without \| 0\.75 \| 0\.75 \| 1\.00 \| 4 \|/);
    const text = metricsTable([{ label: 'with prior preservation', metrics: withPrior }], 'text').split('\n');
    expect(text).toHaveLength(3);
    expect(text[0].indexOf('PRES ↓') + 'PRES ↓'.length).toBe(text[2].indexOf('0.20') + 4);
  });
});
