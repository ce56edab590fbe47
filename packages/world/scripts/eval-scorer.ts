// Validates the scorer as issue 13 asks: accuracy of each head on held-out renders (seeds the
// training pool never used), on their VAE round trips, and the rejection rate of each hard-negative
// family. Prints a markdown table (the figures in packages/world/README.md come from it).
// Usage: node --conditions=kiln-source --import tsx packages/world/scripts/eval-scorer.ts [--scorer DIR] [--vae DIR] [--n 100]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k from '@kiln/tensor-core';
import { AutoencoderKL } from '@kiln/vae';
import { CONTEXTS, HARD_NEGATIVES, WorldScorer, hardNegativeScene, sceneLabels, subjectScene, worldScene } from '../src/index.js';
import type { Scene, Score } from '../src/index.js';
import { batchTensor, renderAll, vaeRoundTrip } from './scorer-common.js';

const here = new URL('..', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    scorer: { type: 'string', default: join(here, 'scorer') },
    vae: { type: 'string' },
    n: { type: 'string', default: '100' },
  },
});
const n = Number(args.n);
const vaeDir = args.vae ?? [join(here, 'model', 'vae')].find((d) => existsSync(join(d, 'config.json')));

await k.useBackend('wasm');
const scorer = await WorldScorer.fromPretrained(args.scorer);
const vae = vaeDir ? await AutoencoderKL.fromPretrained(vaeDir) : null;
vae?.eval();

async function scoreAll(images: Float32Array[]): Promise<Score[]> {
  const out: Score[] = [];
  for (let i = 0; i < images.length; i += 64) {
    const x = batchTensor(images.slice(i, i + 64));
    out.push(...(await scorer.score(x)));
    x.dispose();
  }
  return out;
}
const pct = (a: number, b: number) => (b === 0 ? '—' : `${((100 * a) / b).toFixed(1)}%`);

/** Per-head accuracy of scores against the scenes' labels; `subject` is the subject head's accuracy. */
function accuracy(scenes: Scene[], scores: Score[]) {
  const ls = scenes.map(sceneLabels);
  const hit = (f: (i: number) => boolean | null) => {
    let ok = 0;
    let all = 0;
    ls.forEach((_, i) => {
      const r = f(i);
      if (r === null) return;
      all++;
      if (r) ok++;
    });
    return pct(ok, all);
  };
  return {
    shape: hit((i) => scores[i].shape === ls[i].shape),
    color: hit((i) => (ls[i].color === null ? null : scores[i].color === ls[i].color)),
    context: hit((i) => scores[i].context === ls[i].context),
    subject: hit((i) => scores[i].subject === ls[i].subject),
  };
}

// Held-out sets: world scenes of seed 101 (5n), the subject in each context (seed 102, n/5 per context → n), each hard negative (seed 103, n).
const world = Array.from({ length: 5 * n }, (_, i) => worldScene(101, i));
const subject = Array.from({ length: n }, (_, i) => subjectScene(CONTEXTS[i % CONTEXTS.length], 102, i));
const sets: Array<[string, Scene[]]> = [
  ['world renders', world],
  ['subject, all contexts', subject],
  ...HARD_NEGATIVES.map((f): [string, Scene[]] => [
    `hard negative: ${f}`,
    Array.from({ length: n }, (_, i) => hardNegativeScene(f, 103, i)),
  ]),
];

console.log(`scorer ${args.scorer}; VAE ${vaeDir ?? '(none: round trips skipped)'}; n = ${n}\n`);
console.log('| set | images | shape | colour | context | subject head | called the subject |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [name, scenes] of sets) {
  const renders = renderAll(scenes);
  const variants: Array<[string, Float32Array[]]> = [['render', renders]];
  if (vae) variants.push(['VAE round trip', await vaeRoundTrip(vae, renders)]);
  for (const [kind, images] of variants) {
    const scores = await scoreAll(images);
    const a = accuracy(scenes, scores);
    const called = pct(scores.filter((s) => s.subject).length, scores.length);
    console.log(`| ${name} | ${kind} ×${images.length} | ${a.shape} | ${a.color} | ${a.context} | ${a.subject} | ${called} |`);
  }
}
