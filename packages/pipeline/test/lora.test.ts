import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { LORA_TARGETS, LoraFormatError, injectLora, loraLayers } from '@kiln/nn';
import { saveLoraWeights } from '@kiln/nn/node';
import { PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import { relDiff, tinyModelFolder } from './helpers.js';

// 16×16 images (8×8 latents) and three steps keep each image quick; guidance is on, so the text
// encoder's adapter counts too.
const gen = { prompt: 'a photo of sks dog', numInferenceSteps: 3, width: 16, height: 16, seed: 7 };

describe('StableDiffusionPipeline LoRA', () => {
  let pipe: StableDiffusionPipeline;
  let dir: string;
  let baseImage: Float32Array;
  let adaptedImage: Float32Array;
  const image = async (p = pipe, o: Partial<typeof gen> = {}) => {
    const { images } = await p.txt2img({ ...gen, ...o });
    const data = (await images.data()) as Float32Array;
    images.dispose();
    return data;
  };
  const diff = async (a: Float32Array, b: Float32Array) => relDiff(k.tensor(a), k.tensor(b));

  // A failed test must not leave its adapters to the next one.
  afterEach(() => pipe.unloadLoraWeights());

  beforeAll(async () => {
    await k.useBackend('wasm');
    pipe = await StableDiffusionPipeline.fromPretrained(await tinyModelFolder());
    dir = mkdtempSync(join(tmpdir(), 'kiln-pipeline-lora-'));
    baseImage = await image();
    // An adapter as training leaves it: rank 4, alpha 8 (so alpha/rank is not 1), B moved off zero
    // (by 0.1·N(0, 1): at 0.5 the random tiny model turns chaotic, cpu and wasm differ by 6%).
    const g = new k.Generator(5);
    injectLora(pipe.unet, { targets: LORA_TARGETS.unetAttention, rank: 4, alpha: 8, init: 'gaussian', generator: g, freezeBase: false });
    injectLora(pipe.textEncoder, { targets: LORA_TARGETS.textEncoderAttention, rank: 4, alpha: 8, generator: g, freezeBase: false });
    k.noGrad(() => {
      for (const model of [pipe.unet, pipe.textEncoder])
        for (const [, l] of loraLayers(model)) l.loraB.weight.assign_(k.randn(l.loraB.weight.shape, { generator: g }).mul(0.1));
    });
    adaptedImage = await image();
    await saveLoraWeights(join(dir, 'diffusers.safetensors'), { unet: pipe.unet, text_encoder: pipe.textEncoder });
    await saveLoraWeights(join(dir, 'kohya.safetensors'), { unet: pipe.unet, text_encoder: pipe.textEncoder }, { format: 'kohya' });
    mkdirSync(join(dir, 'trained'));
    await saveLoraWeights(join(dir, 'trained', 'pytorch_lora_weights.safetensors'), { unet: pipe.unet });
    // The in-memory adapter was injected under the name 'default'; unloading it is the base model again.
    expect(pipe.loraAdapters().map((a) => a.name)).toEqual(['default']);
    pipe.unloadLoraWeights();
  }, 120_000);

  it('the adapter changes the image, and unloading it gives the base image bit for bit', async () => {
    expect(await diff(adaptedImage, baseImage)).toBeGreaterThan(1e-2);
    expect(await diff(adaptedImage, baseImage)).toBeLessThan(0.5);
    expect(pipe.loraAdapters()).toEqual([]);
    expect(await image()).toEqual(baseImage);
  });

  it('a diffusers-format file gives the in-memory adapted image bit for bit, in unet and text encoder', async () => {
    const name = await pipe.loadLoraWeights(join(dir, 'diffusers.safetensors'));
    expect(name).toBe('default_0');
    expect(pipe.loraAdapters()).toEqual([{ name: 'default_0', scale: 1, components: ['unet', 'text_encoder'], fused: false }]);
    expect(await image()).toEqual(adaptedImage);
    pipe.unloadLoraWeights('default_0');
    expect(await image()).toEqual(baseImage);
  });

  it('a kohya-format file of the same adapter gives the same image', async () => {
    await pipe.loadLoraWeights(join(dir, 'kohya.safetensors'), { adapterName: 'kohya' });
    expect(await image()).toEqual(adaptedImage);
    pipe.unloadLoraWeights();
  });

  it('scale 0 is the base model; scales in between land in between; stacked adapters add up', async () => {
    await pipe.loadLoraWeights(join(dir, 'diffusers.safetensors'), { scale: 0 });
    expect(await image()).toEqual(baseImage);
    pipe.setLoraScale('default_0', 0.5);
    const half = await image();
    expect(await diff(half, baseImage)).toBeGreaterThan(1e-3);
    expect(await diff(half, adaptedImage)).toBeGreaterThan(1e-3);
    // Two adapters at 0.5 each apply the same update as one at 1 (up to float rounding).
    await pipe.loadLoraWeights(join(dir, 'kohya.safetensors'), { scale: 0.5 });
    expect(pipe.loraAdapters().map((a) => [a.name, a.scale])).toEqual([
      ['default_0', 0.5],
      ['default_1', 0.5],
    ]);
    expect(await diff(await image(), adaptedImage)).toBeLessThan(1e-4);
    pipe.unloadLoraWeights();
  });

  it('a folder is read as diffusers reads it (its pytorch_lora_weights.safetensors); UNet-only files leave the text encoder alone', async () => {
    await pipe.loadLoraWeights(join(dir, 'trained'));
    expect(pipe.loraAdapters()[0]!.components).toEqual(['unet']);
    const unetOnly = await image();
    expect(await diff(unetOnly, baseImage)).toBeGreaterThan(1e-3);
    expect(await diff(unetOnly, adaptedImage)).toBeGreaterThan(1e-3);
    pipe.unloadLoraWeights();
  });

  it('bad sources and names are clear errors, and nothing is attached', async () => {
    await expect(pipe.loadLoraWeights(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing\.safetensors does not exist/);
    await expect(pipe.loadLoraWeights(dir)).rejects.toThrow(/folder without pytorch_lora_weights\.safetensors/);
    // A LoRA of a wider model: the shapes do not fit this UNet, and every layer is listed.
    const wide = new Map<string, k.Tensor>([
      ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight', k.zeros([4, 320])],
      ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight', k.zeros([320, 4])],
      ['unet.down_blocks.9.attentions.0.to_q.lora_A.weight', k.zeros([4, 32])],
      ['unet.down_blocks.9.attentions.0.to_q.lora_B.weight', k.zeros([32, 4])],
    ]);
    const { saveSafetensors } = await import('@kiln/nn/node');
    await saveSafetensors(join(dir, 'wide.safetensors'), wide);
    const err = await pipe.loadLoraWeights(join(dir, 'wide.safetensors')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoraFormatError);
    expect((err as LoraFormatError).issues).toHaveLength(2);
    expect((err as Error).message).toMatch(/wide\.safetensors.*the layer needs \[4, 32\]/);
    writeFileSync(join(dir, 'junk.safetensors'), 'not a safetensors file');
    await expect(pipe.loadLoraWeights(join(dir, 'junk.safetensors'))).rejects.toThrow(k.KilnError);
    expect(pipe.loraAdapters()).toEqual([]);
    await pipe.loadLoraWeights(join(dir, 'diffusers.safetensors'), { adapterName: 'a' });
    await expect(pipe.loadLoraWeights(join(dir, 'kohya.safetensors'), { adapterName: 'a' })).rejects.toThrow(/already loaded/);
    await expect(pipe.loadLoraWeights(join(dir, 'kohya.safetensors'), { scale: Number.NaN })).rejects.toThrow(/scale must be a finite/);
    expect(() => pipe.setLoraScale('b', 1)).toThrow(/no LoRA named 'b' is loaded \(loaded: a\)/);
    pipe.unloadLoraWeights();
    expect(() => pipe.fuseLora()).toThrow(/no LoRA is loaded/);
    expect(await image()).toEqual(baseImage);
  });

  it('loads LoraWeights already in memory (the browser path) and leaks no tensors across load and unload', async () => {
    const before = k.memory().liveTensors;
    await pipe.loadLoraWeights(join(dir, 'kohya.safetensors'));
    pipe.unloadLoraWeights();
    expect(k.memory().liveTensors).toBe(before);
    const { readLoraFile } = await import('@kiln/nn/node');
    const lora = await readLoraFile(join(dir, 'diffusers.safetensors'));
    await pipe.loadLoraWeights(lora, { adapterName: 'mem' });
    expect(await image()).toEqual(adaptedImage);
    pipe.unloadLoraWeights();
    for (const m of lora.modules.values()) (m.down.dispose(), m.up.dispose());
  });

  it('fuseLora gives the unfused image within float rounding; unfuse and unload restore the base (last: W + Δ − Δ rounds)', async () => {
    await pipe.loadLoraWeights(join(dir, 'diffusers.safetensors'), { adapterName: 'sks', scale: 0.8 });
    const unfused = await image();
    pipe.fuseLora();
    expect(pipe.loraAdapters()[0]!.fused).toBe(true);
    expect(() => pipe.setLoraScale('sks', 1)).toThrow(PipelineError);
    expect(await diff(await image(), unfused)).toBeLessThan(1e-4);
    pipe.unfuseLora('sks');
    expect(await diff(await image(), unfused)).toBeLessThan(1e-4);
    pipe.fuseLora('sks');
    pipe.unloadLoraWeights('sks'); // unfuses first
    expect(await diff(await image(), baseImage)).toBeLessThan(1e-4);
  });
});
