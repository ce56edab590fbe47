import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainDreamBooth } from '../src/node.js';
import type { TrainerConfigInput } from '../src/index.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

let base: TrainerConfigInput;
beforeAll(async () => {
  await k.useBackend('wasm');
  const model = await tinyModel();
  const classDir = tempDir('class');
  base = {
    pretrained_model_name_or_path: model,
    instance_data_dir: writeImages(3),
    instance_prompt: 'a photo of sks dog',
    with_prior_preservation: true,
    class_data_dir: classDir,
    class_prompt: 'a photo of dog',
    num_class_images: 2,
    sample_batch_size: 2,
    class_inference_steps: 2,
    resolution: 16,
    train_batch_size: 2,
    gradient_accumulation_steps: 1,
    max_train_steps: 6,
    checkpointing_steps: 2,
    learning_rate: 1e-3,
    lr_scheduler: 'cosine',
    lr_warmup_steps: 2,
    seed: 3,
    snr_gamma: 5,
    offset_noise: true,
    backend: 'wasm',
    report_to: 'jsonl',
  };
});

const weights = async (dir: string) => {
  const t = await loadSafetensors(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(t)) {
    out[name] = (await v.data()) as Float32Array;
    v.dispose();
  }
  return out;
};

describe('trainDreamBooth: interrupted and resumed = uninterrupted', () => {
  it('reaches bit-identical weights and the same loss curve', async () => {
    const full = tempDir('full');
    const a = await trainDreamBooth({ ...base, output_dir: full }, { log: () => {} });
    expect(a.step).toBe(6);
    expect(a.losses.every(Number.isFinite)).toBe(true);
    expect(readdirSync(base.class_data_dir as string).filter((f) => f.endsWith('.png'))).toHaveLength(2);

    const split = tempDir('split');
    const controller = new AbortController();
    const stopAt = Number(process.env.STOP_AT ?? 1 + Math.floor(Math.random() * 4)); // a random step in 1…4
    const b1 = await trainDreamBooth(
      { ...base, output_dir: split },
      {
        signal: controller.signal,
        log: () => {},
        onStep: ({ step }) => {
          if (step === stopAt) controller.abort();
        },
      },
    );
    expect(b1).toMatchObject({ step: stopAt, interrupted: true });
    expect(existsSync(join(split, 'model_index.json'))).toBe(false);
    const b2 = await trainDreamBooth({ ...base, output_dir: split, resume_from_checkpoint: 'latest' }, { log: () => {} });
    expect(b2.step).toBe(6);
    expect([...b1.losses, ...b2.losses]).toEqual(a.losses);
    const [wa, wb] = [await weights(full), await weights(split)];
    expect(Object.keys(wb)).toEqual(Object.keys(wa));
    for (const key of Object.keys(wa)) expect(Buffer.from(wb[key].buffer).equals(Buffer.from(wa[key].buffer)), key).toBe(true);
    const index = JSON.parse(readFileSync(join(full, 'model_index.json'), 'utf8'));
    expect(index._class_name).toBe('StableDiffusionPipeline');
  });
});
