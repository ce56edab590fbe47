import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../src/node.js';

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

describe('npm start -- --help and bad flags', () => {
  const start = (...args: string[]) =>
    spawnSync(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', 'packages/world/scripts/start.ts', ...args], {
      encoding: 'utf8',
    });

  it('lists the knobs', () => {
    const r = start('--help');
    expect(r.status).toBe(0);
    for (const flag of ['--steps', '--backend', '--subject', '--no-prior-preservation', '--out']) expect(r.stdout).toContain(flag);
  });

  it('refuses an invalid value by flag name, before doing anything', () => {
    const r = start('--steps', 'many');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--steps: /);
  });
});
