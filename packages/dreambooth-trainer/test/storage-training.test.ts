// The trainer through a TrainerStorage other than the filesystem (memoryStorage, the base model
// loaded from it by loadPipelineFolder) writes the same checkpoint and output files, byte for
// byte, as the Node default: the storage changes where bytes go, not what they are.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryStorage, trainDreamBooth } from '../src/index.js';
import type { TrainerConfigInput, TrainerStorage } from '../src/index.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

/** Copies a folder of the disk into the storage. */
async function copyIn(storage: TrainerStorage, from: string, to: string): Promise<void> {
  for (const name of readdirSync(from)) {
    const p = join(from, name);
    if (statSync(p).isDirectory()) await copyIn(storage, p, `${to}/${name}`);
    else await storage.write(`${to}/${name}`, new Uint8Array(readFileSync(p)));
  }
}

let config: TrainerConfigInput;
beforeAll(async () => {
  await k.useBackend('wasm');
  config = {
    pretrained_model_name_or_path: await tinyModel(),
    instance_data_dir: writeImages(2),
    instance_prompt: 'a photo of sks dog',
    resolution: 16,
    train_batch_size: 1,
    max_train_steps: 2,
    checkpointing_steps: 1,
    learning_rate: 1e-3,
    seed: 5,
    report_to: 'jsonl',
  };
});

describe('trainDreamBooth on memoryStorage', () => {
  it('writes the same checkpoint and model bytes as on the filesystem', async () => {
    const out = tempDir('fs-run');
    const onDisk = await trainDreamBooth({ ...config, output_dir: out }, { log: () => {} });
    const storage = memoryStorage();
    await copyIn(storage, config.pretrained_model_name_or_path as string, 'base');
    await copyIn(storage, config.instance_data_dir as string, 'dog');
    const inMemory = await trainDreamBooth(
      { ...config, pretrained_model_name_or_path: 'base', instance_data_dir: 'dog', output_dir: 'out' },
      { storage, log: () => {} },
    );
    expect(inMemory.losses).toEqual(onDisk.losses);
    for (const file of [
      'checkpoint-1/trainer_state.json',
      'checkpoint-1/optimizer.safetensors',
      'checkpoint-2/unet/diffusion_pytorch_model.safetensors',
      'unet/diffusion_pytorch_model.safetensors',
      'unet/config.json',
      'text_encoder/config.json',
      'tokenizer/vocab.json',
      'scheduler/scheduler_config.json',
      'model_index.json',
    ])
      // Buffer.equals, not toEqual: a deep compare of megabytes element by element takes minutes.
      expect(Buffer.from(await storage.read(`out/${file}`)).equals(readFileSync(join(out, file))), file).toBe(true);
    expect((await storage.list('out')).sort()).toEqual(readdirSync(out).sort());
  });
});
