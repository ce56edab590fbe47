import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import { tinyModelFolder } from './helpers.js';

describe('StableDiffusionPipeline.fromPretrained (diffusers folder)', () => {
  let dir: string;
  const copy = () => {
    const to = join(mkdtempSync(join(tmpdir(), 'kiln-folder-')), 'model');
    cpSync(dir, to, { recursive: true });
    return to;
  };
  beforeAll(async () => {
    dir = await tinyModelFolder();
    await k.useBackend('cpu');
  }, 120_000);

  it('loads every component, the scheduler class from scheduler_config.json, and saves a folder that loads the same', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(dir);
    expect(pipe.scheduler.className).toBe('PNDMScheduler');
    expect(pipe.vaeScaleFactor).toBe(2);
    expect(pipe.tokenizer.encode('a fox', { padding: false })).toEqual([49406, 320, 3240, 49407]);
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    expect(index).toMatchObject({
      _class_name: 'StableDiffusionPipeline',
      unet: ['diffusers', 'UNet2DConditionModel'],
      text_encoder: ['transformers', 'CLIPTextModel'],
    });

    const to = copy();
    const cfg = JSON.parse(readFileSync(join(to, 'scheduler', 'scheduler_config.json'), 'utf8'));
    await pipe.savePretrained(to, { variant: 'fp16' });
    writeFileSync(
      join(to, 'scheduler', 'scheduler_config.json'),
      JSON.stringify({ ...cfg, _class_name: 'EulerAncestralDiscreteScheduler' }),
    );
    const half = await StableDiffusionPipeline.fromPretrained(to, { variant: 'fp16', dtype: 'float16' });
    expect(half.scheduler.className).toBe('EulerAncestralDiscreteScheduler');
    expect(half.dtype).toBe('float16');
    expect(half.textEncoder.textModel.finalLayerNorm.weight!.dtype).toBe('float16');
    half.dispose();
    pipe.dispose();
  }, 60_000);

  it('names the file and the problem: no such folder, no model_index.json, a component Kiln lacks, a missing weights file', async () => {
    await expect(StableDiffusionPipeline.fromPretrained('./no/such/folder')).rejects.toThrow(/not a folder or a Hub model id/);
    await expect(StableDiffusionPipeline.fromPretrained('./no/such/folder')).rejects.toBeInstanceOf(PipelineError);

    const a = copy();
    rmSync(join(a, 'model_index.json'));
    await expect(StableDiffusionPipeline.fromPretrained(a)).rejects.toThrow(/model_index\.json.*not found/);

    const b = copy();
    const index = JSON.parse(readFileSync(join(b, 'model_index.json'), 'utf8'));
    writeFileSync(join(b, 'model_index.json'), JSON.stringify({ ...index, unet: ['diffusers', 'UNet2DModel'] }));
    await expect(StableDiffusionPipeline.fromPretrained(b)).rejects.toThrow(/model_index\.json[\s\S]*unet/);

    const c = copy();
    rmSync(join(c, 'vae', 'diffusion_pytorch_model.safetensors'));
    const before = k.memory().liveTensors;
    await expect(StableDiffusionPipeline.fromPretrained(c)).rejects.toThrow(/vae[\s\S]*diffusion_pytorch_model\.safetensors/);
    expect(k.memory().liveTensors).toBe(before); // the text encoder and UNet loaded before it are freed

    const d = copy();
    writeFileSync(join(d, 'scheduler', 'scheduler_config.json'), JSON.stringify({ _class_name: 'FlowMatchEulerDiscreteScheduler' }));
    await expect(StableDiffusionPipeline.fromPretrained(d)).rejects.toThrow(
      /FlowMatchEulerDiscreteScheduler.*not a scheduler Kiln implements/,
    );
    await expect(StableDiffusionPipeline.fromPretrained(d)).rejects.toBeInstanceOf(k.KilnError);
  }, 60_000);
});
