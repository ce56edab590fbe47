// Trains the world scorer from recipe/scorer.json and writes it to packages/world/scorer (or --out).
// Training data come from the world on the fly: a pool of captioned-world scenes, the subject in
// all five contexts and the hard negatives (scorerScene), rendered once; with --vae, each image's
// VAE round trip too, so that about half of every batch looks like decoded samples. Each draw is
// lightly augmented (noise, blur).
// --cache DIR keeps the rendered pool and its round trips between runs (keyed by recipe data and VAE).
// Usage: node --conditions=kiln-source --import tsx packages/world/scripts/train-scorer.ts [--vae DIR] [--out DIR] [--recipe FILE] [--cache DIR]
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k from '@kiln/tensor-core';
import { AdamW, getScheduler } from '@kiln/nn';
import { keyedRandom } from '@kiln/dreambooth-trainer';
import { AutoencoderKL } from '@kiln/vae';
import { z } from 'zod';
import { HARD_NEGATIVES, SCORER_LABELS, WorldScorer, sceneLabels, scorerScene } from '../src/index.js';
import type { SceneLabels } from '../src/index.js';
import { augment, batchTensor, renderAll, vaeRoundTrip } from './scorer-common.js';

const here = new URL('..', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    vae: { type: 'string' },
    out: { type: 'string', default: join(here, 'scorer') },
    recipe: { type: 'string', default: join(here, 'recipe', 'scorer.json') },
    cache: { type: 'string' },
  },
});

const frac = z.number().min(0).max(1);
const RecipeSchema = z.object({
  seed: z.number().int(),
  model: z.record(z.string(), z.unknown()),
  data: z.object({
    pool: z.number().int().positive(),
    mix: z.object({ world: frac, subject: frac, hardNegative: frac }),
    vae_fraction: frac,
    render_only: z.array(z.enum(HARD_NEGATIVES)).default([]),
    augment: z.object({ noise: z.number().min(0), blur: frac }),
  }),
  train: z.object({
    steps: z.number().int().positive(),
    batch_size: z.number().int().positive(),
    learning_rate: z.number().positive(),
    weight_decay: z.number().min(0),
    lr_scheduler: z.enum(['cosine', 'linear', 'constant', 'constant_with_warmup']),
    lr_warmup_steps: z.number().int().min(0),
  }),
  dtype: z.enum(['float32', 'float16']),
});
const recipe = RecipeSchema.parse(JSON.parse(readFileSync(args.recipe, 'utf8')));
const vaeDir = args.vae ?? [join(here, 'model', 'vae')].find((d) => existsSync(join(d, 'config.json')));
const say = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const started = performance.now();

await k.useBackend('wasm');
k.manualSeed(recipe.seed);

// The pool: scenes keyed by (seed, i), their labels, renders and (with a VAE) round trips.
const { pool, mix } = recipe.data;
const samples = Array.from({ length: pool }, (_, i) => scorerScene(recipe.seed, i, mix));
const scenes = samples.map((s) => s.scene);
// Families whose round trips are left out: the VAE blurs the subject's dot to a faint smudge, so a
// decoded dotless star and the decoded subject look alike; they are told apart on sharp renders only.
const renderOnly = samples.map((s) => (recipe.data.render_only as readonly string[]).includes(s.source));
const labels: SceneLabels[] = scenes.map(sceneLabels);
// Renders are keyed by what makes the pool; round trips also by the VAE file (its path, size and time).
const hash = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);
const poolKey = { seed: recipe.seed, pool, mix };
const vaeFile = vaeDir && join(vaeDir, 'diffusion_pytorch_model.safetensors');
const vaeKey = vaeFile && existsSync(vaeFile) ? { vaeFile, size: statSync(vaeFile).size, mtime: statSync(vaeFile).mtimeMs } : vaeDir;
const cached = (key: unknown, make: () => Promise<Float32Array[]>): Promise<Float32Array[]> =>
  args.cache ? cachedImages(join(args.cache, `${hash(key)}.f32`), make) : make();
const renders = await cached(poolKey, async () => renderAll(scenes));
say(`rendered ${pool} scenes (${labels.filter((l) => l.subject).length} of the subject)`);
let decoded: Float32Array[] | null = null;
if (vaeDir) {
  decoded = await cached({ ...poolKey, vae: vaeKey }, async () => {
    const vae = await AutoencoderKL.fromPretrained(vaeDir);
    vae.eval();
    const out = await vaeRoundTrip(vae, renders);
    vae.dispose();
    return out;
  });
  say(`VAE round trips of the pool through ${vaeDir}`);
} else say('no VAE given (--vae DIR): training on renders only');

async function cachedImages(file: string, make: () => Promise<Float32Array[]>): Promise<Float32Array[]> {
  const each = 3 * 32 * 32;
  if (existsSync(file)) {
    const b = readFileSync(file);
    const all = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    return Array.from({ length: all.length / each }, (_, i) => all.slice(i * each, (i + 1) * each));
  }
  const images = await make();
  mkdirSync(args.cache!, { recursive: true });
  const all = new Float32Array(images.length * each);
  images.forEach((im, i) => all.set(im, i * each));
  writeFileSync(file, all);
  return images;
}

const onehot = (ids: ReadonlyArray<number | null>, n: number): k.Tensor => {
  const a = new Float32Array(ids.length * n);
  ids.forEach((id, i) => {
    if (id !== null) a[i * n + id] = 1;
  });
  return k.tensor(a, { shape: [ids.length, n] });
};
/** Cross-entropy averaged over the rows that have a label (all-zero target rows are left out). */
const crossEntropy = (logits: k.Tensor, target: k.Tensor, count: number): k.Tensor =>
  k
    .logSoftmax(logits, 1)
    .mul(target)
    .sum()
    .mul(-1 / Math.max(1, count));

const scorer = new WorldScorer(recipe.model);
scorer.train();
const t = recipe.train;
const opt = new AdamW(scorer.parameters(), { lr: t.learning_rate, weightDecay: t.weight_decay });
const sched = getScheduler(t.lr_scheduler, { optimizer: opt, numWarmupSteps: t.lr_warmup_steps, numTrainingSteps: t.steps });
const L = SCORER_LABELS;
let avg = 0;
for (let step = 1; step <= t.steps; step++) {
  const rand = keyedRandom(recipe.seed, step, 0x7a1);
  const ids = Array.from({ length: t.batch_size }, () => Math.floor(rand() * pool));
  const images = ids.map((i) =>
    augment(decoded && !renderOnly[i] && rand() < recipe.data.vae_fraction ? decoded[i] : renders[i], rand, recipe.data.augment),
  );
  const ls = ids.map((i) => labels[i]);
  const loss = k.tidy(() => {
    const out = scorer.forward(batchTensor(images));
    const colorIds = ls.map((l) => (l.color === null ? null : L.color.indexOf(l.color)));
    const total = crossEntropy(
      out.shape,
      onehot(
        ls.map((l) => L.shape.indexOf(l.shape)),
        L.shape.length,
      ),
      ls.length,
    )
      .add(crossEntropy(out.color, onehot(colorIds, L.color.length), colorIds.filter((c) => c !== null).length))
      .add(
        crossEntropy(
          out.context,
          onehot(
            ls.map((l) => L.context.indexOf(l.context)),
            L.context.length,
          ),
          ls.length,
        ),
      )
      .add(
        crossEntropy(
          out.subject,
          onehot(
            ls.map((l) => (l.subject ? 1 : 0)),
            2,
          ),
          ls.length,
        ),
      );
    total.backward();
    return k.keep(total.detach());
  });
  opt.step();
  opt.zeroGrad();
  sched.step();
  const v = await loss.item();
  loss.dispose();
  avg = step === 1 ? v : 0.95 * avg + 0.05 * v;
  if (step % 25 === 0 || step === t.steps) say(`step ${step}/${t.steps} loss ${avg.toFixed(4)}`);
}

scorer.eval();
await scorer.savePretrained(args.out, { dtype: recipe.dtype });
const minutes = (performance.now() - started) / 60000;
writeFileSync(
  join(args.out, 'training.json'),
  `${JSON.stringify({ recipe, vae: vaeDir ?? null, vae_sha256: vaeFile && existsSync(vaeFile) ? createHash('sha256').update(readFileSync(vaeFile)).digest('hex') : null, final_loss: Number(avg.toFixed(4)), minutes: Number(minutes.toFixed(1)) }, null, 2)}\n`,
);
say(`scorer written to ${args.out} in ${minutes.toFixed(1)} min`);
