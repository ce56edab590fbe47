import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '@kiln/pipeline';
import { TINY_VAE_CONFIG } from '@kiln/pipeline/testing';
import { describe, expect, it } from 'vitest';
import { kiln } from './helpers.js';

const temp = (name: string) => mkdtempSync(join(tmpdir(), `kiln-cli-${name}-`));

function images(n: number): string {
  const dir = temp('images');
  for (let i = 0; i < n; i++) {
    const data = new Uint8ClampedArray(16 * 16 * 4).map((_, j) => (j % 4 === 3 ? 255 : (j * (i + 3)) % 256));
    writeFileSync(join(dir, `${i}.png`), encodePng({ width: 16, height: 16, data }));
    writeFileSync(join(dir, `${i}.txt`), `a photo of image ${i}`);
  }
  return dir;
}

describe('kiln train-text-to-image and train-vae', () => {
  it('list their own options in --help, and refuse a DreamBooth-only flag with a usage error', async () => {
    const help = await kiln('train-text-to-image', '--help');
    expect(help.out).toContain('--train_data_dir (required)');
    expect(help.out).not.toContain('--instance_prompt');
    expect((await kiln('train-vae', '--help')).out).toContain('--kl_weight (default: 0.000001)');
    const bad = await kiln(
      'train-text-to-image',
      '--pretrained_model_name_or_path',
      'm',
      '--train_data_dir',
      'd',
      '--instance_prompt',
      'x',
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown flag --instance_prompt/);
  });

  it('train-vae trains from a config file and writes a diffusers VAE folder', async () => {
    const cfg = join(temp('cfg'), 'vae.json');
    writeFileSync(cfg, JSON.stringify(TINY_VAE_CONFIG));
    const out = join(temp('vae'), 'out');
    const r = await kiln(
      'train-vae',
      '--vae_config',
      cfg,
      '--train_data_dir',
      images(2),
      '--output_dir',
      out,
      '--resolution',
      '16',
      '--train_batch_size',
      '2',
      '--max_train_steps',
      '2',
    );
    expect(r.err).toMatch(/^step 1 mse \d/);
    expect(r.code).toBe(0);
    expect(existsSync(join(out, 'config.json'))).toBe(true);
    expect(existsSync(join(out, 'diffusion_pytorch_model.safetensors'))).toBe(true);
  });
});
