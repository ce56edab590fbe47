import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { kiln } from './helpers.js';
import { writeTinyModel } from '@kiln/pipeline/testing';

const temp = () => mkdtempSync(join(tmpdir(), 'kiln-generate-'));
const results = (dir: string) =>
  readFileSync(join(dir, 'results.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
// The tiny model makes 32×32 images by default; 16×16 and two steps keep these tests quick.
const small = ['--steps', '2', '--width', '16', '--height', '16'];

describe('kiln generate', () => {
  let model: string;
  beforeAll(async () => {
    model = join(temp(), 'tiny-sd');
    await k.useBackend('cpu');
    await writeTinyModel(model);
  }, 120_000);

  it('--help lists every option with its default', async () => {
    const { code, out } = await kiln('generate', '--help');
    expect(code).toBe(0);
    for (const flag of [
      '--model',
      '--prompt',
      '--negative-prompt',
      '--steps',
      '--guidance-scale',
      '--seed',
      '--scheduler',
      '--width',
      '--height',
      '--num-images',
      '--out',
      '--batch',
      '--backend',
    ]) {
      expect(out).toContain(flag);
    }
    expect(out).toMatch(/--steps N\s+denoising steps \(default: 30\)/);
    expect(out).toMatch(/--guidance-scale X.*\(default: 7\.5\)/);
    expect(out).toMatch(/--num-images N.*\(default: 1\)/);
    expect((await kiln('--help')).out).toContain('generate');
  });

  it('unknown options and bad values are usage errors (exit 2) that name the flag', async () => {
    const m = ['generate', '--model', model, '--prompt', 'a fox'];
    expect(await kiln(...m, '--stepz', '3')).toMatchObject({ code: 2, err: expect.stringMatching(/Unknown option '--stepz'/) });
    expect(await kiln(...m, '--steps', '0')).toMatchObject({ code: 2, err: expect.stringMatching(/--steps: .*>=1/) });
    expect(await kiln(...m, '--guidance-scale', 'high')).toMatchObject({
      code: 2,
      err: expect.stringMatching(/--guidance-scale: .*number/),
    });
    expect(await kiln(...m, '--num-images', '1.5')).toMatchObject({ code: 2, err: expect.stringMatching(/--num-images: .*int/) });
    expect(await kiln(...m, '--backend', 'tpu')).toMatchObject({ code: 2, err: expect.stringMatching(/--backend tpu/) });
    expect(await kiln('generate', '--prompt', 'a fox')).toMatchObject({ code: 2, err: expect.stringMatching(/--model is required/) });
    expect(await kiln('generate', '--model', model)).toMatchObject({ code: 2, err: expect.stringMatching(/give --prompt or --batch/) });
    expect(await kiln('generate', '--model', join(model, 'nope'), '--prompt', 'x', '--out', temp())).toMatchObject({
      code: 1,
      err: expect.stringMatching(/not a folder or a Hub model id/),
    });
  });

  it('writes PNGs with the parameters chunk and results.jsonl; progress on stderr; a rerun skips what is done', async () => {
    const out = temp();
    const args = [
      'generate',
      '--model',
      model,
      '--prompt',
      'a red fox',
      '--negative-prompt',
      'blurry',
      '--seed',
      '42',
      '--num-images',
      '2',
      '--scheduler',
      'euler_a',
      '--backend',
      'cpu',
      '--out',
      out,
      ...small,
    ];
    const first = await kiln(...args);
    expect(first).toMatchObject({ code: 0, out: `kiln generate: wrote 2 images to ${out}` });
    expect(first.err).toMatch(/prompt 1\/1 image 2\/2 step 2\/2 [\d.]+ it\/s ETA 0s/);
    const [r] = results(out);
    expect(r).toMatchObject({ line: 1, prompt: 'a red fox', seeds: [42, 43] });
    expect(r.files).toHaveLength(2);
    expect(r.timings.imagesMs).toHaveLength(2);
    const png = decode(readFileSync(join(out, r.files[1])));
    expect([png.width, png.height]).toEqual([16, 16]);
    expect(png.text.parameters).toBe(
      'a red fox\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 7.5, Seed: 43, Size: 16x16, Model: tiny-sd',
    );
    // The same seed on its own makes the same image.
    const again = temp();
    await kiln(
      'generate',
      '--model',
      model,
      '--prompt',
      'a red fox',
      '--negative-prompt',
      'blurry',
      '--seed',
      '43',
      '--scheduler',
      'euler_a',
      '--backend',
      'cpu',
      '--out',
      again,
      ...small,
    );
    expect(decode(readFileSync(join(again, results(again)[0].files[0]))).data).toEqual(png.data);

    expect(await kiln(...args)).toMatchObject({ code: 0, out: `kiln generate: wrote 0 images to ${out}, 1 already done` });
    expect(results(out)).toHaveLength(1);
  }, 120_000);

  it('--batch: a malformed line is reported and the others go on; a rerun skips what is done', async () => {
    const out = temp();
    const batch = join(out, 'prompts.jsonl');
    writeFileSync(
      batch,
      [
        JSON.stringify({ prompt: 'a fox', seed: 1 }),
        '{"prompt": "a cat", ',
        JSON.stringify({ prompt: 'a dog', steps: -1 }),
        JSON.stringify({ prompt: 'a hat', colour: 'red' }),
        '',
        JSON.stringify({ prompt: 'a boat', seed: 5, numImages: 2, scheduler: 'ddim', guidanceScale: 3 }),
      ].join('\n'),
    );
    const run = await kiln('generate', '--model', model, '--batch', batch, '--out', out, '--backend', 'cpu', ...small);
    expect(run).toMatchObject({ code: 0, out: `kiln generate: wrote 3 images to ${out}, 3 failed (see ${join(out, 'results.jsonl')})` });
    expect(run.err).toMatch(/prompts\.jsonl:2: not valid JSON/);
    expect(run.err).toMatch(/prompts\.jsonl:3: steps: /);
    expect(run.err).toMatch(/prompts\.jsonl:4: .*colour/);
    const lines = results(out);
    expect(lines.map((l) => [l.line, l.error === undefined])).toEqual([
      [1, true],
      [2, false],
      [3, false],
      [4, false],
      [6, true],
    ]);
    expect(lines[4]).toMatchObject({ seeds: [5, 6], prompt: 'a boat' });
    expect(decode(readFileSync(join(out, lines[4].files[0]))).text.parameters).toMatch(/Sampler: DDIM, CFG scale: 3, Seed: 5/);
    const rerun = await kiln('generate', '--model', model, '--batch', batch, '--out', out, '--backend', 'cpu', ...small);
    expect(rerun.out).toMatch(/wrote 0 images .*2 already done, 3 failed/);
  }, 120_000);

  it('loses nothing when killed mid-run: every results line points at whole PNGs, and a rerun finishes the rest', async () => {
    const out = temp();
    const batch = join(out, 'prompts.jsonl');
    const prompts = Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `prompt ${i}`, seed: i }));
    writeFileSync(batch, prompts.join('\n'));
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        '--conditions=kiln-source',
        '--import',
        'tsx',
        'packages/cli/src/bin.ts',
        'generate',
        '--model',
        model,
        '--batch',
        batch,
        '--out',
        out,
        '--backend',
        'wasm',
        ...small,
      ],
      { cwd: root, stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const resultsFile = join(out, 'results.jsonl');
    while (!existsSync(resultsFile) || results(out).length < 2) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await exited;
    const before = results(out);
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(before.length).toBeLessThan(6);
    for (const r of before) for (const f of r.files) expect(decode(readFileSync(join(out, f))).width).toBe(16);

    const rerun = await kiln('generate', '--model', model, '--batch', batch, '--out', out, '--backend', 'wasm', ...small);
    expect(rerun.out).toMatch(new RegExp(`wrote ${6 - before.length} images? to .*, ${before.length} already done`));
    const after = results(out);
    expect(after.map((r) => r.line).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(after.every((r) => !r.error)).toBe(true);
    expect(readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(6);
  }, 180_000);
});
