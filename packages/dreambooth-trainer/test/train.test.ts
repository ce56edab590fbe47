import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { encode as encodePng } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, DatasetError, TrainerConfigError, TrainingDivergedError } from '../src/index.js';
import type { TrainerConfigInput } from '../src/index.js';
import { trainDreamBooth } from '../src/node.js';
import { writeTinyDreamBoothModel } from '../scripts/tiny-model.js';
import { pattern, tempDir, tinyModel, writeImages } from './helpers.js';

let base: TrainerConfigInput;
const quiet = { log: () => {} };
beforeAll(async () => {
  await k.useBackend('wasm');
  base = {
    pretrained_model_name_or_path: await tinyModel(),
    instance_data_dir: writeImages(2),
    instance_prompt: 'a photo of sks dog',
    resolution: 16,
    train_batch_size: 1,
    max_train_steps: 4,
    checkpointing_steps: 2,
    seed: 1,
    backend: 'wasm',
    report_to: 'jsonl',
  };
});

/** Runs with `over` into a fresh output folder holding one file, and checks nothing else was written there. */
async function refused(over: Partial<TrainerConfigInput>, error: new (...a: never[]) => Error, message: RegExp) {
  const out = tempDir('out');
  writeFileSync(join(out, 'keep.txt'), 'mine');
  await expect(trainDreamBooth({ ...base, output_dir: out, overwrite_output_dir: true, ...over }, quiet)).rejects.toThrow(message);
  await expect(trainDreamBooth({ ...base, output_dir: out, overwrite_output_dir: true, ...over }, quiet)).rejects.toBeInstanceOf(error);
  expect(readdirSync(out)).toEqual(['keep.txt']);
}

describe('bad input gets a clear error and nothing is written', () => {
  it('a folder without images', async () => {
    await refused({ instance_data_dir: tempDir('empty') }, DatasetError, /instance images: .* has no images/);
  });

  it('an undecodable file, named', async () => {
    const dir = writeImages(1);
    writeFileSync(join(dir, 'broken.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 1]));
    await refused({ instance_data_dir: dir }, DatasetError, /broken\.png: the image does not decode/);
  });

  it('a 2×2 image', async () => {
    const dir = writeImages(1);
    writeFileSync(join(dir, 'tiny.png'), encodePng({ width: 2, height: 2, data: pattern(2, 2, 0), channels: 3, depth: 8 }));
    await refused({ instance_data_dir: dir }, DatasetError, /tiny\.png: 2×2 is too small/);
  });

  it('a config with a wrong type', async () => {
    await refused({ learning_rate: 'fast' as unknown as number }, TrainerConfigError, /learning_rate = "fast" is invalid/);
  });

  it('an output folder with files, without --overwrite_output_dir', async () => {
    const out = tempDir('out');
    writeFileSync(join(out, 'keep.txt'), 'mine');
    await expect(trainDreamBooth({ ...base, output_dir: out }, quiet)).rejects.toThrow(
      /already has files \(keep\.txt\); pass --overwrite_output_dir/,
    );
    expect(readdirSync(out)).toEqual(['keep.txt']);
  });

  it('a checkpoint from another model', async () => {
    const out = tempDir('out');
    await trainDreamBooth({ ...base, output_dir: out, max_train_steps: 2 }, quiet);
    const other = tempDir('other-model');
    await writeTinyDreamBoothModel(other, 9, 16); // text width 16: a different UNet (cross-attention 16)
    await expect(
      trainDreamBooth({ ...base, pretrained_model_name_or_path: other, output_dir: out, resume_from_checkpoint: 'latest' }, quiet),
    ).rejects.toThrow(CheckpointError);
    await expect(
      trainDreamBooth({ ...base, pretrained_model_name_or_path: other, output_dir: out, resume_from_checkpoint: 'latest' }, quiet),
    ).rejects.toThrow(/checkpoint-2: checkpoint of another model/);
    await expect(
      trainDreamBooth({ ...base, output_dir: out, resume_from_checkpoint: 'latest', train_batch_size: 2 }, quiet),
    ).rejects.toThrow(/saved with train_batch_size = 1, but --train_batch_size is 2 now/);
    await expect(trainDreamBooth({ ...base, output_dir: out, resume_from_checkpoint: join(out, 'checkpoint-7') }, quiet)).rejects.toThrow(
      /checkpoint-7 is not a checkpoint folder/,
    );
  });

  it('grayscale and 16-bit PNGs are converted and trained on', async () => {
    const dir = tempDir('gray');
    mkdirSync(dir, { recursive: true });
    const gray = new Uint8Array(20 * 20).map((_, i) => i % 256);
    writeFileSync(join(dir, 'g.png'), encodePng({ width: 20, height: 20, data: gray, channels: 1, depth: 8 }));
    writeFileSync(
      join(dir, 'd.png'),
      encodePng({ width: 20, height: 18, data: new Uint16Array(20 * 18 * 3).map((_, i) => i * 97), channels: 3, depth: 16 }),
    );
    const r = await trainDreamBooth({ ...base, instance_data_dir: dir, output_dir: tempDir('out'), max_train_steps: 1 }, quiet);
    expect(r.losses).toHaveLength(1);
    expect(Number.isFinite(r.losses[0])).toBe(true);
  });
});

describe('training', () => {
  it('a diverging run stops with the step and the term, keeping the last good checkpoint', async () => {
    const out = tempDir('out');
    const err = await trainDreamBooth(
      { ...base, output_dir: out, learning_rate: 1e30, max_grad_norm: 1e30, max_train_steps: 6, checkpointing_steps: 1 },
      quiet,
    ).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect(err.message).toMatch(/^step \d+: the instance loss is (NaN|Infinity|-Infinity); .*The last good checkpoint is .*checkpoint-\d+/);
    expect(existsSync(join(out, `checkpoint-${err.step - 1}`))).toBe(true);
    expect(existsSync(join(out, 'model_index.json'))).toBe(false);
  });

  it('trains the text encoder when asked (and only then)', async () => {
    const read = async (dir: string) => {
      const t = await loadSafetensors(join(dir, 'text_encoder', 'model.safetensors'));
      const w = (await t['text_model.encoder.layers.0.mlp.fc1.weight'].data()) as Float32Array;
      for (const v of Object.values(t)) v.dispose();
      return w;
    };
    const model = base.pretrained_model_name_or_path as string;
    const [frozen, trained] = [tempDir('out'), tempDir('out')];
    await trainDreamBooth({ ...base, output_dir: frozen, max_train_steps: 2, learning_rate: 1e-3 }, quiet);
    await trainDreamBooth(
      {
        ...base,
        output_dir: trained,
        max_train_steps: 2,
        learning_rate: 1e-3,
        train_text_encoder: true,
        text_encoder_use_attention_mask: true,
      },
      quiet,
    );
    const w0 = await read(model);
    expect(await read(frozen)).toEqual(w0);
    expect(await read(trained)).not.toEqual(w0);
  });

  it('keeps live memory flat across steps, prunes checkpoints, writes the diffusers folder and the single file', async () => {
    const out = tempDir('out');
    const live: number[] = [];
    const r = await trainDreamBooth(
      {
        ...base,
        output_dir: out,
        max_train_steps: 5,
        checkpointing_steps: 1,
        checkpoints_total_limit: 2,
        gradient_accumulation_steps: 2,
        cache_latents: true,
        center_crop: true,
        save_single_file: true,
      },
      {
        ...quiet,
        onStep: () => {
          live.push(k.memory().liveTensors);
        },
      },
    );
    expect(r.step).toBe(5);
    expect(new Set(live.slice(1)).size).toBe(1);
    expect(
      readdirSync(out)
        .filter((d) => d.startsWith('checkpoint-'))
        .sort(),
    ).toEqual(['checkpoint-4', 'checkpoint-5']);
    for (const part of ['unet', 'text_encoder', 'vae', 'tokenizer', 'scheduler', 'model_index.json', 'model.safetensors'])
      expect(existsSync(join(out, part)), part).toBe(true);
    const pipe = await StableDiffusionPipeline.fromPretrained(out); // what `kiln generate` loads
    const { images } = await pipe.txt2img({ prompt: 'a photo of sks dog', numInferenceSteps: 2, seed: 1, width: 16, height: 16 });
    expect(images.shape).toEqual([1, 3, 16, 16]);
    images.dispose();
    pipe.dispose();
    const metrics = readFileSync(join(out, 'logs', 'metrics.jsonl'), 'utf8');
    expect(metrics).toMatch(/"loss"/);
    expect(metrics).toMatch(/"it\/s"/);
  });
});
