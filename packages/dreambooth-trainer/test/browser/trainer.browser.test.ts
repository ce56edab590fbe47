/**
 * The trainer in a real browser (vitest browser mode, Chromium), on the Origin Private File
 * System: the tiny base model is built in the page (the same seeded code as the Node tests'
 * scripts/tiny-model.ts) and written to OPFS as a diffusers folder; instance images (PNG, and the
 * committed WebP fixture, decoded by libwebp's wasm) are files there. A run with prior
 * preservation generates its class images, an `AbortSignal` stops a second run after a
 * checkpoint, a third resumes it, and the resumed UNet must equal the uninterrupted one bit for
 * bit; the output folder loads back and generates.
 */
import * as k from '@kiln/tensor-core';
import { encodePng } from '@kiln/pipeline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listImages, loadPipelineFolder, opfsStorage, savePipelineFolder, trainDreamBooth } from '../../src/index.js';
import type { TrainerConfigInput, TrainerStorage } from '../../src/index.js';
import { tinyDreamBoothPipeline } from '../../scripts/tiny-model.js';

/** A smooth RGBA test pattern, different per `seed` (the Node tests' `pattern`, with alpha). */
function pattern(w: number, h: number, seed: number) {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) data.set([(x * 255) / w, (y * 255) / h, (seed * 67 + x * y) % 256, 255], (y * w + x) * 4);
  return { width: w, height: h, data };
}

const root = `kiln-browser-test-${Date.now()}`;
let storage: TrainerStorage;
let base: TrainerConfigInput;
const at = (...parts: string[]) => [root, ...parts].join('/');

beforeAll(async () => {
  expect(typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node).not.toBe('string');
  await k.useBackend('wasm');
  storage = await opfsStorage();
  const pipe = await tinyDreamBoothPipeline();
  try {
    await savePipelineFolder(storage, at('base'), pipe);
  } finally {
    pipe.dispose();
  }
  for (let i = 0; i < 2; i++) await storage.write(at('dog', `img${i}.png`), encodePng(pattern(20 + 3 * i, 24 - i, i)));
  await storage.write(
    at('dog', 'img2.webp'),
    new Uint8Array(await (await fetch(new URL('../fixtures/pattern.webp', import.meta.url))).arrayBuffer()),
  );
  base = {
    pretrained_model_name_or_path: at('base'),
    instance_data_dir: at('dog'),
    instance_prompt: 'a photo of sks dog',
    with_prior_preservation: true,
    class_data_dir: at('class'),
    class_prompt: 'a photo of dog',
    num_class_images: 2,
    sample_batch_size: 2,
    class_inference_steps: 2,
    resolution: 16,
    train_batch_size: 2,
    max_train_steps: 4,
    checkpointing_steps: 2,
    learning_rate: 1e-3,
    lr_scheduler: 'cosine',
    seed: 3,
    backend: 'wasm',
    report_to: 'jsonl',
  };
});

afterAll(async () => {
  await storage?.remove(root);
});

const unetBytes = (out: string) => storage.read(at(out, 'unet', 'diffusion_pytorch_model.safetensors'));
/** Byte equality in one pass (vitest's toEqual on megabytes compares element by element, slowly). */
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

describe('trainDreamBooth in a browser, on OPFS', () => {
  it('stopped by its signal after a checkpoint and resumed, reaches the uninterrupted weights bit for bit', async () => {
    const log = () => {};
    const full = await trainDreamBooth({ ...base, output_dir: at('full') }, { log });
    expect(full).toMatchObject({ step: 4, interrupted: false });
    expect(full.losses.every(Number.isFinite)).toBe(true);
    expect(await listImages(at('class'), storage)).toEqual(['class-00000.png', 'class-00001.png']);

    const stop = new AbortController();
    const first = await trainDreamBooth(
      { ...base, output_dir: at('split') },
      { log, signal: stop.signal, onStep: ({ step }) => (step === 2 ? stop.abort() : undefined) },
    );
    expect(first).toMatchObject({ step: 2, interrupted: true });
    expect((await storage.list(at('split'))).sort()).toEqual(['checkpoint-2', 'logs']);
    const rest = await trainDreamBooth({ ...base, output_dir: at('split'), resume_from_checkpoint: 'latest' }, { log });
    expect(rest).toMatchObject({ step: 4, interrupted: false });
    expect([...first.losses, ...rest.losses]).toEqual(full.losses);
    expect(same(await unetBytes('split'), await unetBytes('full'))).toBe(true);
    expect(same(await unetBytes('full'), await storage.read(at('base', 'unet', 'diffusion_pytorch_model.safetensors')))).toBe(false);
  });

  it('writes a diffusers folder that loads back and generates', async () => {
    const names = (await storage.list(at('full'))).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        'checkpoint-2',
        'checkpoint-4',
        'logs',
        'model_index.json',
        'scheduler',
        'text_encoder',
        'tokenizer',
        'unet',
        'vae',
      ]),
    );
    expect(
      new TextDecoder()
        .decode(await storage.read(at('full', 'logs', 'metrics.jsonl')))
        .trim()
        .split('\n').length,
    ).toBeGreaterThan(4);
    const pipe = await loadPipelineFolder(storage, at('full'));
    try {
      const out = await pipe.txt2img({ prompt: 'a photo of sks dog', seed: 0, numInferenceSteps: 2, width: 16, height: 16 });
      const pixels = await out.images.toArray();
      out.images.dispose();
      expect(out.rgba[0].width).toBe(16);
      expect((pixels as number[]).flat(Infinity).every(Number.isFinite)).toBe(true);
    } finally {
      pipe.dispose();
    }
  });
});
