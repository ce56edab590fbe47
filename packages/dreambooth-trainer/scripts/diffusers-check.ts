// Trains the tiny model for a few steps, then writes the trained UNet's inputs and Kiln's output
// beside its weights (unet/io.safetensors), so diffusers' reference harness can load the folder
// and compare (its `run` command; output committed in test/fixtures/diffusers-check.txt):
//
//   node --conditions=kiln-source --import tsx packages/dreambooth-trainer/scripts/diffusers-check.ts OUT_DIR
//   python3 <harness>/make_reference.py run --kind unet --dir OUT_DIR/trained/unet --no-trace --no-grad
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { UNet2DConditionModel } from '@kiln/unet';
import { encode as encodePng } from 'fast-png';
import { trainDreamBooth } from '../src/node.js';
import { writeTinyDreamBoothModel } from './tiny-model.js';

const out = process.argv[2];
if (!out) throw new Error('usage: diffusers-check.ts OUT_DIR');
await k.useBackend('wasm');
await writeTinyDreamBoothModel(join(out, 'base'));
const images = join(out, 'images');
mkdirSync(images, { recursive: true });
for (let i = 0; i < 3; i++) {
  const data = new Uint8Array(24 * 20 * 3).map((_, j) => (j * (7 + i)) % 256);
  writeFileSync(join(images, `${i}.png`), encodePng({ width: 24, height: 20, data, channels: 3, depth: 8 }));
}
const result = await trainDreamBooth(
  {
    pretrained_model_name_or_path: join(out, 'base'),
    instance_data_dir: images,
    instance_prompt: 'a photo of sks dog',
    output_dir: join(out, 'trained'),
    resolution: 16,
    train_batch_size: 2,
    max_train_steps: 4,
    learning_rate: 1e-3,
    seed: 0,
    report_to: 'jsonl',
    overwrite_output_dir: true,
  },
  { log: () => {} },
);
const unet = await UNet2DConditionModel.fromPretrained(join(out, 'trained'), { subfolder: 'unet' });
const g = new k.Generator(11);
const sample = k.randn([2, 4, 8, 8], { generator: g });
const timestep = k.tensor([999, 37], { dtype: 'int32' });
const ehs = k.randn([2, 77, 32], { generator: g });
const y = k.noGrad(() => unet.forward(sample, timestep, ehs).sample);
await saveSafetensors(join(out, 'trained', 'unet', 'io.safetensors'), {
  'input.sample': sample,
  'input.timestep': timestep,
  'input.encoder_hidden_states': ehs,
  'output.sample': y,
});
console.log(
  `trained ${result.step} steps (losses ${result.losses.map((l) => l.toFixed(4)).join(', ')}); wrote ${join(out, 'trained', 'unet', 'io.safetensors')}`,
);
