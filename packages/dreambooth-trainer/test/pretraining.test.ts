import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { TINY_VAE_CONFIG } from '@kiln/pipeline/testing';
import { describe, expect, it } from 'vitest';
import { TrainerConfigError, TrainingDivergedError } from '../src/index.js';
import { loadImageFolder, parseTextToImageConfig, trainDreamBooth, trainTextToImage, trainVae } from '../src/node.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

describe('captions', () => {
  it('an empty caption file is an empty (unconditional) prompt, not the fallback', async () => {
    const dir = writeImages(2);
    writeFileSync(join(dir, 'img0.txt'), ' \n');
    const ex = await loadImageFolder(dir, { prompt: 'fallback', captionExtension: '.txt', minSide: 4, what: 'instance' });
    expect(ex.map((e) => e.prompt)).toEqual(['', 'fallback']);
  });
});

describe('train-text-to-image', () => {
  it('takes train_data_dir in place of the instance options, and refuses DreamBooth-only ones by name', () => {
    const c = parseTextToImageConfig({ pretrained_model_name_or_path: 'm', train_data_dir: 'd', max_train_steps: 3 });
    expect(c.instance_data_dir).toBe('d');
    expect(c.caption_extension).toBe('.txt');
    expect(c.with_prior_preservation).toBe(false);
    expect(() => parseTextToImageConfig({ pretrained_model_name_or_path: 'm', train_data_dir: 'd', instance_prompt: 'x' })).toThrow(
      /unknown option 'instance_prompt'/,
    );
    expect(() => parseTextToImageConfig({ pretrained_model_name_or_path: 'm', train_data_dir: 'd', learning_rat: 1 })).toThrow(
      /did you mean 'learning_rate'/,
    );
  });

  it('trains on captioned images and writes a pipeline that loads; each caption is its image prompt', async () => {
    await k.useBackend('wasm');
    const data = writeImages(3);
    writeFileSync(join(data, 'img0.txt'), 'a photo of a red star');
    writeFileSync(join(data, 'img1.txt'), '');
    const out = tempDir('t2i');
    const r = await trainTextToImage(
      {
        pretrained_model_name_or_path: await tinyModel(),
        train_data_dir: data,
        output_dir: out,
        resolution: 16,
        train_batch_size: 3,
        max_train_steps: 2,
        seed: 0,
        train_text_encoder: true,
      },
      { log: () => {} },
    );
    expect(r.losses).toHaveLength(2);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    const pipe = await StableDiffusionPipeline.fromPretrained(out);
    pipe.dispose();
  });
});

describe('text_encoder_lr', () => {
  it('trains the text encoder in its own parameter group at its own rate', async () => {
    await k.useBackend('wasm');
    const out = tempDir('te-lr');
    const model = await tinyModel();
    await trainDreamBooth(
      {
        pretrained_model_name_or_path: model,
        instance_data_dir: writeImages(1),
        instance_prompt: 'a photo of sks dog',
        output_dir: out,
        resolution: 16,
        train_batch_size: 1,
        max_train_steps: 1,
        seed: 0,
        train_text_encoder: true,
        learning_rate: 1e-2,
        text_encoder_lr: 1e-30,
      },
      { log: () => {} },
    );
    const [base, tuned] = await Promise.all([StableDiffusionPipeline.fromPretrained(model), StableDiffusionPipeline.fromPretrained(out)]);
    try {
      const te = async (p: StableDiffusionPipeline) =>
        Array.from((await p.textEncoder.stateDict()['text_model.final_layer_norm.weight'].data()) as Float32Array);
      const un = async (p: StableDiffusionPipeline) => Array.from((await p.unet.stateDict()['conv_in.weight'].data()) as Float32Array);
      expect(await te(tuned)).toEqual(await te(base));
      expect(await un(tuned)).not.toEqual(await un(base));
    } finally {
      base.dispose();
      tuned.dispose();
    }
  });
});

describe('train-vae', () => {
  it('lowers the reconstruction error, resumes exactly, and writes a VAE whose scaling_factor whitens its latents', async () => {
    await k.useBackend('wasm');
    const data = writeImages(4);
    const cfg = join(tempDir('cfg'), 'vae.json');
    writeFileSync(cfg, JSON.stringify(TINY_VAE_CONFIG));
    const base = {
      vae_config: cfg,
      train_data_dir: data,
      resolution: 16,
      train_batch_size: 2,
      learning_rate: 2e-3,
      seed: 3,
      checkpointing_steps: 3,
    };
    const full = await trainVae({ ...base, output_dir: tempDir('vae-full'), max_train_steps: 6 }, { log: () => {} });
    expect(full.losses.at(-1)!).toBeLessThan(full.losses[0]);
    const outDir = tempDir('vae-resumed');
    const ctl = new AbortController();
    const first = await trainVae(
      { ...base, output_dir: outDir, max_train_steps: 6 },
      { signal: ctl.signal, onStep: (s) => void (s === 3 && ctl.abort()), log: () => {} },
    );
    expect(first.interrupted).toBe(true);
    const second = await trainVae({ ...base, output_dir: outDir, max_train_steps: 6, resume_from_checkpoint: 'latest' }, { log: () => {} });
    expect([...first.losses, ...second.losses]).toEqual(full.losses);
    const config = JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8'));
    expect(config.scaling_factor).toBe(second.scalingFactor);
    expect(existsSync(join(outDir, 'diffusion_pytorch_model.safetensors'))).toBe(true);
  });

  it('refuses a config with neither or both starting points, naming the field', async () => {
    await expect(trainVae({ train_data_dir: 'x' } as never)).rejects.toThrow(TrainerConfigError);
    await expect(trainVae({ train_data_dir: 'x' } as never)).rejects.toThrow(/vae_config/);
  });

  it('stops on a NaN loss with a typed error', async () => {
    await k.useBackend('wasm');
    const cfg = join(tempDir('cfg'), 'vae.json');
    writeFileSync(cfg, JSON.stringify(TINY_VAE_CONFIG));
    await expect(
      trainVae(
        {
          vae_config: cfg,
          train_data_dir: writeImages(2),
          output_dir: tempDir('vae-nan'),
          resolution: 16,
          train_batch_size: 2,
          max_train_steps: 3,
          learning_rate: 1e30,
        },
        { log: () => {} },
      ),
    ).rejects.toThrow(TrainingDivergedError);
  });
});
