import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { loadImageFolder, trainDreamBooth } from '../src/node.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

describe('kohya extras', () => {
  it('a caption file overrides the instance prompt of its image', async () => {
    const dir = writeImages(2);
    writeFileSync(join(dir, 'img0.txt'), '  a photo of sks dog on grass\n');
    const ex = await loadImageFolder(dir, { prompt: 'a photo of sks dog', captionExtension: '.txt', minSide: 4, what: 'instance' });
    expect(ex.map((e) => e.prompt)).toEqual(['a photo of sks dog on grass', 'a photo of sks dog']);
  });

  it('fine-tunes to v-prediction with zero terminal SNR, and the saved scheduler says so', async () => {
    await k.useBackend('wasm');
    const out = tempDir('out');
    const r = await trainDreamBooth(
      {
        pretrained_model_name_or_path: await tinyModel(),
        instance_data_dir: writeImages(1),
        instance_prompt: 'a photo of sks dog',
        output_dir: out,
        resolution: 16,
        train_batch_size: 1,
        max_train_steps: 2,
        seed: 0,
        prediction_type: 'v_prediction',
        zero_terminal_snr: true,
        report_to: 'jsonl',
      },
      { log: () => {} },
    );
    expect(r.losses.every(Number.isFinite)).toBe(true);
    const cfg = JSON.parse(readFileSync(join(out, 'scheduler', 'scheduler_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ prediction_type: 'v_prediction', rescale_betas_zero_snr: true, timestep_spacing: 'trailing' });
  });
});
