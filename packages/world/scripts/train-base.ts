// Reproduces the built-in base model from recipe/base.json, resumably (run it again after a stop):
// renders the autoencoder's images and trains the VAE, renders the captioned world, assembles a
// freshly initialised pipeline around the VAE, and trains UNet + text encoder on the world with
// `trainTextToImage`. Usage: node --conditions=kiln-source --import tsx packages/world/scripts/train-base.ts [workDir] [recipe.json]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { trainTextToImage, trainVae } from '@kiln/dreambooth-trainer/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { writeWorldFolder } from '../src/node.js';

const recipeDir = new URL('../recipe/', import.meta.url).pathname;
const work = process.argv[2] ?? 'world-run';
const recipe = JSON.parse(readFileSync(process.argv[3] ?? join(recipeDir, 'base.json'), 'utf8'));
const every = (n: number, f: (step: number, loss: number) => void) => (step: number, loss: number) => {
  if (step % n === 0) f(step, loss);
};
const say = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

// The VAE trains in stages, each starting from the one before (the first from vae.json's random init).
const stages: Record<string, unknown>[] = recipe.vae.stages;
if (!existsSync(join(work, 'data-vae')))
  await writeWorldFolder(join(work, 'data-vae'), { kind: 'autoencoder', count: recipe.vae.images, seed: recipe.seed + 1 });
for (const [i, stage] of stages.entries()) {
  const out = join(work, i === stages.length - 1 ? 'vae' : `vae-${i + 1}`);
  if (existsSync(join(out, 'config.json'))) continue;
  const start = i === 0 ? { vae_config: join(recipeDir, recipe.vae.config) } : { pretrained_vae_name_or_path: join(work, `vae-${i}`) };
  const r = await trainVae(
    {
      ...stage,
      ...start,
      train_data_dir: join(work, 'data-vae'),
      output_dir: out,
      seed: recipe.seed,
      checkpointing_steps: 100,
      checkpoints_total_limit: 2,
      resume_from_checkpoint: 'latest',
      overwrite_output_dir: true,
    },
    { onStep: every(20, (s, l) => say(`vae stage ${i + 1} step ${s} mse ${l.toFixed(5)} (${(10 * Math.log10(4 / l)).toFixed(2)} dB)`)) },
  );
  say(`vae stage ${i + 1} done: scaling_factor ${r.scalingFactor}`);
}

const init = join(work, 'base-init');
if (!existsSync(join(init, 'model_index.json'))) {
  await k.useBackend('wasm');
  k.manualSeed(recipe.seed);
  const pipe = new StableDiffusionPipeline({
    tokenizer: await CLIPTokenizer.fromOpenAI({ modelMaxLength: recipe.tokenizer_max_length }),
    textEncoder: new CLIPTextModel(recipe.text_encoder),
    unet: new UNet2DConditionModel(recipe.unet),
    vae: await AutoencoderKL.fromPretrained(join(work, 'vae')),
    scheduler: schedulerFromConfig(recipe.scheduler),
  });
  await pipe.savePretrained(init);
  pipe.dispose();
}

if (!existsSync(join(work, 'data-world')))
  await writeWorldFolder(join(work, 'data-world'), { kind: 'captioned', count: recipe.base.images, seed: recipe.seed });
const started = performance.now();
await trainTextToImage(
  {
    ...recipe.base.train,
    pretrained_model_name_or_path: init,
    train_data_dir: join(work, 'data-world'),
    output_dir: join(work, 'base'),
    seed: recipe.seed,
    tokenizer_max_length: recipe.tokenizer_max_length,
    resume_from_checkpoint: 'latest',
    overwrite_output_dir: true,
  },
  {
    onStep: ({ step, loss, itPerSec }) => {
      if (step % 25 === 0) say(`base step ${step} loss ${loss.toFixed(4)} ${itPerSec.toFixed(2)} it/s`);
    },
  },
);
say(`base done in ${((performance.now() - started) / 60000).toFixed(1)} min: ${join(work, 'base')}`);
