import { writeWorldFolder } from '../src/node.js';
import { trainVae } from '@kiln/dreambooth-trainer/node';
import { existsSync } from 'node:fs';
if (!existsSync('/work/run/data-vae')) await writeWorldFolder('/work/run/data-vae', { kind: 'autoencoder', count: 4096, seed: 1 });
let last = performance.now();
const r = await trainVae(
  {
    vae_config: 'packages/world/recipe/vae.json',
    train_data_dir: '/work/run/data-vae',
    output_dir: '/work/run/vae',
    resolution: 32,
    train_batch_size: 16,
    max_train_steps: 1200,
    learning_rate: 6e-4,
    lr_scheduler: 'cosine',
    lr_warmup_steps: 50,
    checkpointing_steps: 200,
    checkpoints_total_limit: 2,
    resume_from_checkpoint: 'latest',
    overwrite_output_dir: true,
  },
  {
    onStep: (s, l) => {
      if (s % 20 === 0) {
        const n = performance.now();
        console.log(s, l.toFixed(5), (10 * Math.log10(4 / l)).toFixed(2) + 'dB', ((n - last) / 20).toFixed(0) + 'ms/step');
        last = n;
      }
    },
  },
);
console.log('done', r.scalingFactor);
