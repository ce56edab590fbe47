import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { describe, expect, it } from 'vitest';
import { BASE_MODEL_DIR, runDemo } from '../src/node.js';

describe('npm start (the DreamBooth demo), shortened', () => {
  it('generates class images, trains with and without prior preservation, and writes loadable models, the table and the report', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kiln-demo-')), 'run');
    const r = await runDemo({ out, steps: 2, class_images: 2, samples: 1, world_samples: 0 }, { log: () => {}, progress: () => {} });
    expect(r.models).toEqual([join(out, 'with-prior'), join(out, 'without-prior')]);
    for (const dir of r.models) (await StableDiffusionPipeline.fromPretrained(dir)).dispose();
    expect(Object.keys(r.metrics)).toEqual(['base', 'with-prior', 'without-prior']);
    expect(r.table).toMatch(/DreamBooth, prior preservation/);
    expect(r.table).toMatch(/PRES/);
    expect(existsSync(join(out, 'class', 'class-00001.png'))).toBe(true);
    expect(existsSync(join(out, 'instance', 'subject-4.png'))).toBe(true);
    const html = readFileSync(r.report, 'utf8');
    expect(html).toContain('subject fidelity');
    expect(html).toContain('a photo of sks star on a dotted background');
  });
});

describe('npm start -- --lora (LoRA DreamBooth in the demo), shortened', () => {
  it('trains LoRA adapters only, samples the base model with them loaded, and reports their rows and file size', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kiln-demo-lora-')), 'run');
    const r = await runDemo(
      { out, steps: 2, class_images: 2, samples: 1, world_samples: 0, lora: 4, full: false, compare: false },
      { log: () => {}, progress: () => {} },
    );
    expect(r.models).toEqual([join(out, 'lora-with-prior')]);
    expect(Object.keys(r.metrics)).toEqual(['base', 'lora-with-prior']);
    expect(r.table).toMatch(/LoRA DreamBooth, prior preservation/);
    expect(r.runs).toMatch(/LoRA rank 4/);
    expect(r.runs).toMatch(/5e-4/);
    // The run's output is the adapter file alone, in diffusers' format, and small.
    const file = join(out, 'lora-with-prior', 'pytorch_lora_weights.safetensors');
    expect(readdirSync(join(out, 'lora-with-prior')).filter((f) => f.endsWith('.safetensors'))).toEqual([
      'pytorch_lora_weights.safetensors',
    ]);
    expect(r.weightBytes['lora-with-prior']).toBe(statSync(file).size);
    expect(r.weightBytes['lora-with-prior']).toBeLessThan(1 << 20);
    const pipe = await StableDiffusionPipeline.fromPretrained(BASE_MODEL_DIR);
    try {
      await pipe.loadLoraWeights(join(out, 'lora-with-prior'));
    } finally {
      pipe.dispose();
    }
    expect(readFileSync(r.report, 'utf8')).toContain('LoRA DreamBooth, prior preservation');
  }, 600_000); // class images, two steps, sampling and scoring: minutes on a loaded 2-core machine

  it('refuses full: false without a LoRA rank', async () => {
    await expect(runDemo({ full: false }, { log: () => {}, progress: () => {} })).rejects.toThrow(/full: false needs lora/);
  });
});

describe('npm start -- --help and bad flags', () => {
  const start = (...args: string[]) =>
    spawnSync(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', 'packages/world/scripts/start.ts', ...args], {
      encoding: 'utf8',
    });

  it('lists the knobs', () => {
    const r = start('--help');
    expect(r.status).toBe(0);
    for (const flag of ['--steps', '--backend', '--subject', '--no-prior-preservation', '--out', '--lora', '--no-full'])
      expect(r.stdout).toContain(flag);
  });

  it('refuses an invalid value by flag name, before doing anything', () => {
    const r = start('--steps', 'many');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--steps: /);
  });
});
