import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { kiln } from './helpers.js';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { writeTinyLora, writeTinyModel } from '@kiln/pipeline/testing';

const temp = () => mkdtempSync(join(tmpdir(), 'kiln-generate-lora-'));
const results = (dir: string) =>
  readFileSync(join(dir, 'results.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { files: string[] });
/** The pixels of the one image a run wrote. */
const pixels = (dir: string) => Array.from(decode(readFileSync(join(dir, results(dir).at(-1)!.files[0]!))).data);
const maxByteDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('kiln generate --lora', () => {
  let model: string;
  let lora: string;
  let args: (out: string, ...extra: string[]) => string[];
  beforeAll(async () => {
    const dir = temp();
    model = join(dir, 'tiny-sd');
    await k.useBackend('cpu');
    await writeTinyModel(model);
    lora = join(dir, 'sks.safetensors');
    await writeTinyLora(lora, { format: 'kohya' });
    args = (out, ...extra) => [
      'generate',
      '--model',
      model,
      '--prompt',
      'a photo of sks dog',
      '--seed',
      '4',
      '--steps',
      '2',
      '--width',
      '16',
      '--height',
      '16',
      '--backend',
      'cpu',
      '--out',
      out,
      ...extra,
    ];
  }, 120_000);

  it('--help shows the flag', async () => {
    expect((await kiln('generate', '--help')).out).toMatch(/--lora FILE\[:SCALE\]\s+a LoRA .*repeat to stack/);
  });

  it('applies the LoRA at its scale: :0 is the base image, stacking two halves is one whole', async () => {
    const [base, zero, whole, halves] = [temp(), temp(), temp(), temp()];
    expect((await kiln(...args(base))).code).toBe(0);
    expect((await kiln(...args(zero, '--lora', `${lora}:0`))).code).toBe(0);
    expect((await kiln(...args(whole, '--lora', lora))).code).toBe(0);
    expect((await kiln(...args(halves, '--lora', `${lora}:0.5`, '--lora', `${lora}:.5`))).code).toBe(0);
    expect(pixels(zero)).toEqual(pixels(base));
    expect(maxByteDiff(pixels(whole), pixels(base))).toBeGreaterThan(8);
    expect(maxByteDiff(pixels(halves), pixels(whole))).toBeLessThanOrEqual(1);
  }, 120_000);

  it('the same image as the API with the file loaded', async () => {
    const out = temp();
    expect((await kiln(...args(out, '--lora', `${lora}:0.7`))).code).toBe(0);
    const pipe = await StableDiffusionPipeline.fromPretrained(model);
    await pipe.loadLoraWeights(lora, { scale: 0.7 });
    const { rgba, images } = await pipe.txt2img({ prompt: 'a photo of sks dog', seed: 4, numInferenceSteps: 2, width: 16, height: 16 });
    images.dispose();
    pipe.dispose();
    expect(pixels(out)).toEqual(Array.from(rgba[0]!.data));
  }, 120_000);

  it('a path with a colon keeps it; a rerun with another LoRA is not skipped', async () => {
    const dir = temp();
    const colon = join(dir, 'style:v2.safetensors');
    copyFileSync(lora, colon);
    const out = temp();
    expect((await kiln(...args(out, '--lora', colon))).code).toBe(0);
    const again = await kiln(...args(out, '--lora', `${colon}:0.5`));
    expect(again).toMatchObject({ code: 0, out: `kiln generate: wrote 1 image to ${out}` });
    expect(await kiln(...args(out, '--lora', `${colon}:0.5`))).toMatchObject({ out: expect.stringMatching(/0 images .* 1 already done/) });
  }, 120_000);

  it('a missing file is a usage error before the model loads; a LoRA of another model is an error naming the file', async () => {
    expect(await kiln(...args(temp(), '--lora', '/nope/x.safetensors:0.8'))).toMatchObject({
      code: 2,
      err: expect.stringMatching(/--lora \/nope\/x\.safetensors: no such file/),
    });
    const notLora = join(model, 'unet', 'diffusion_pytorch_model.safetensors');
    const r = await kiln(...args(temp(), '--lora', notLora));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/diffusion_pytorch_model\.safetensors: not a valid LoRA file/);
  }, 120_000);
});
