import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { decode } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateClassImages, trainDreamBooth } from '../src/node.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

let model: string;
beforeAll(async () => {
  await k.useBackend('wasm');
  model = await tinyModel();
});

const pixels = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((f) => Buffer.from(decode(readFileSync(join(dir, f))).data as Uint8Array).toString('hex'));

describe('class images', () => {
  it('an interrupted generation resumes where it stopped, with the same images as one run', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(model);
    try {
      const o = { prompt: 'a photo of dog', batchSize: 2, seed: 4, steps: 2, resolution: 16 };
      const [once, twice] = [tempDir('once'), tempDir('twice')];
      expect(await generateClassImages(pipe, { ...o, dir: once, numImages: 3 })).toBe(3);
      expect(await generateClassImages(pipe, { ...o, dir: twice, numImages: 1 })).toBe(1); // "killed" after one image
      expect(await generateClassImages(pipe, { ...o, dir: twice, numImages: 3 })).toBe(2);
      expect(await generateClassImages(pipe, { ...o, dir: twice, numImages: 3 })).toBe(0);
      expect(readdirSync(twice).sort()).toEqual(['class-00000.png', 'class-00001.png', 'class-00002.png']);
      expect(pixels(twice)).toEqual(pixels(once));
    } finally {
      pipe.dispose();
    }
  });
});

describe('validation', () => {
  it('writes and logs validation images every validation_steps', async () => {
    const out = tempDir('out');
    await trainDreamBooth(
      {
        pretrained_model_name_or_path: model,
        instance_data_dir: writeImages(1),
        instance_prompt: 'a photo of sks dog',
        output_dir: out,
        resolution: 16,
        train_batch_size: 1,
        max_train_steps: 2,
        seed: 0,
        validation_prompt: 'sks dog on a beach',
        validation_steps: 1,
        num_validation_images: 1,
        report_to: 'all',
      },
      { log: () => {} },
    );
    expect(readdirSync(join(out, 'validation')).sort()).toEqual(['step-1-0.png', 'step-2-0.png']);
    expect(readFileSync(join(out, 'logs', 'metrics.jsonl'), 'utf8')).toMatch(/"validation"/);
    expect(existsSync(join(out, 'logs', 'report.html'))).toBe(true);
  });
});
