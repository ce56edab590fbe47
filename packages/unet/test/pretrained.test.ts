import { mkdtemp, readFile, readdir, rm, truncate, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { SafetensorsError, StateDictError } from '@kiln/nn';
import { loadSafetensors, saveSafetensors } from '@kiln/nn/node';
import { UNet2DConditionModel, UNetConfigError } from '@kiln/unet';
import { fixture, loadIO, relDiff } from './golden.js';

const DIR = fixture('unet_tiny');
let tmp: string;
beforeAll(async () => {
  await k.useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'kiln-unet-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

async function expectSameWeights(a: UNet2DConditionModel, b: UNet2DConditionModel): Promise<void> {
  const sa = a.stateDict();
  const sb = b.stateDict();
  expect(Object.keys(sb)).toEqual(Object.keys(sa));
  for (const key of Object.keys(sa)) {
    expect(sb[key].dtype, key).toBe(sa[key].dtype);
    expect(await sb[key].data(), key).toEqual(await sa[key].data());
  }
}

/** A copy of the tiny model's folder whose weights are `edit`ed. */
async function brokenFolder(name: string, edit: (w: Record<string, k.Tensor>) => Record<string, k.Tensor>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  await copyFile(join(DIR, 'config.json'), join(dir, 'config.json'));
  await saveSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), edit(await loadSafetensors(join(DIR, 'model.safetensors'))));
  return dir;
}

describe('UNet2DConditionModel.fromPretrained / savePretrained', () => {
  it('round-trips a diffusers folder bit-exactly, config fields included', async () => {
    const unet = await UNet2DConditionModel.fromPretrained(DIR);
    const out = join(tmp, 'pipe');
    await unet.savePretrained(join(out, 'unet'));
    expect((await readdir(join(out, 'unet'))).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const config = JSON.parse(await readFile(join(out, 'unet', 'config.json'), 'utf8'));
    expect(config._class_name).toBe('UNet2DConditionModel');
    expect(config.attention_type).toBe('default');
    const back = await UNet2DConditionModel.fromPretrained(out, { subfolder: 'unet' });
    await expectSameWeights(unet, back);
    expect(back.config).toEqual(unet.config);
  });

  it('loads fp16 variants and converts dtype on load', async () => {
    const half = await UNet2DConditionModel.fromPretrained(DIR, { dtype: 'float16' });
    expect(half.convIn.weight.dtype).toBe('float16');
    const out = join(tmp, 'fp16');
    await half.savePretrained(out, { variant: 'fp16' });
    expect(await readdir(out)).toContain('diffusion_pytorch_model.fp16.safetensors');
    const back = await UNet2DConditionModel.fromPretrained(out, { variant: 'fp16', dtype: 'float16' });
    await expectSameWeights(half, back);
    // An fp16 file into a float32 model: the output stays close to diffusers' float32 result.
    const f32 = await UNet2DConditionModel.fromPretrained(out, { variant: 'fp16' });
    expect(f32.convIn.weight.dtype).toBe('float32');
    const io = await loadIO(DIR);
    const y = k.noGrad(() => f32.forward(io['input.sample'], io['input.timestep'], io['input.encoder_hidden_states']).sample);
    expect(await relDiff(y, io['output.sample'])).toBeLessThan(1e-2);
  });

  it('writes and reads sharded checkpoints', async () => {
    const unet = await UNet2DConditionModel.fromPretrained(DIR);
    const out = join(tmp, 'sharded');
    await unet.savePretrained(out, { maxShardBytes: 1_000_000 });
    const files = await readdir(out);
    expect(files).toContain('diffusion_pytorch_model.safetensors.index.json');
    expect(files.filter((f) => /-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    await expectSameWeights(unet, await UNet2DConditionModel.fromPretrained(out));
  });

  it('a missing key names the key and the file', async () => {
    const dir = await brokenFolder('missing', (w) => {
      delete w['mid_block.attentions.0.proj_in.weight'];
      return w;
    });
    const err = await UNet2DConditionModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as StateDictError).missingKeys).toEqual(['mid_block.attentions.0.proj_in.weight']);
    expect((err as Error).message).toContain('diffusion_pytorch_model.safetensors');
  });

  it('a wrong shape names the key and both shapes', async () => {
    const dir = await brokenFolder('shape', (w) => ({ ...w, 'conv_in.weight': k.zeros([32, 4, 1, 1]) }));
    const err = await UNet2DConditionModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as Error).message).toMatch(/conv_in\.weight.*\[32, 4, 1, 1\].*\[32, 4, 3, 3\]/);
  });

  it('an unsupported config value names the field and the file', async () => {
    const dir = join(tmp, 'config');
    await mkdir(dir, { recursive: true });
    const config = JSON.parse(await readFile(join(DIR, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, class_embed_type: 'timestep' }));
    await copyFile(join(DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
    const err = await UNet2DConditionModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UNetConfigError);
    expect((err as Error).message).toContain(join(dir, 'config.json'));
    expect((err as Error).message).toContain('class_embed_type');
  });

  it('a truncated file names the file', async () => {
    const dir = await brokenFolder('truncated', (w) => w);
    const file = join(dir, 'diffusion_pytorch_model.safetensors');
    await truncate(file, 100_000);
    const err = await UNet2DConditionModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('truncated');
    expect((err as Error).message).toContain(file);
  });
});

describe('UNet2DConditionModel', () => {
  it('gives the same gradients with gradient checkpointing (wasm)', async () => {
    const io = await loadIO(DIR);
    await k.initBackend('wasm');
    const [sample, t, ctx, R] = await Promise.all(
      ['input.sample', 'input.timestep', 'input.encoder_hidden_states', 'grad_seed.sample'].map((n) => io[n].toBackend('wasm')),
    );
    const grads = async (checkpointing: boolean) => {
      await k.useBackend('cpu');
      const loaded = await UNet2DConditionModel.fromPretrained(DIR);
      await k.useBackend('wasm');
      const unet = (await loaded.toBackend('wasm')).enableGradientCheckpointing(checkpointing);
      const x = sample.detach().requiresGrad_(true);
      k.tidy(() => unet.forward(x, t, ctx).sample.backward(R));
      const p = Object.fromEntries(unet.namedParameters());
      return [
        x.grad!,
        p['down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight'].grad!,
        p['time_embedding.linear_1.weight'].grad!,
        p['up_blocks.0.resnets.0.conv1.weight'].grad!,
      ];
    };
    const [plain, ckpt] = [await grads(false), await grads(true)];
    for (let i = 0; i < plain.length; i++) expect(await relDiff(ckpt[i], plain[i])).toBeLessThan(1e-5); // accumulation order differs
    await k.useBackend('cpu');
  });

  it('takes timesteps as a number, a list, or an int or float tensor', async () => {
    const io = await loadIO(DIR);
    const unet = await UNet2DConditionModel.fromPretrained(DIR);
    const x = io['input.sample'];
    const ctx = io['input.encoder_hidden_states'];
    const ref = k.noGrad(() => unet.forward(x, [999, 37], ctx).sample);
    expect(await relDiff(ref, io['output.sample'])).toBeLessThan(1e-4);
    const asFloat = k.noGrad(() => unet.forward(x, k.tensor([999, 37], { dtype: 'float32' }), ctx).sample);
    expect(await relDiff(asFloat, ref)).toBeLessThan(1e-6);
    const one = k.noGrad(() => unet.forward(x, 500.5, ctx).sample);
    const both = k.noGrad(() => unet.forward(x, k.tensor([500.5]), ctx).sample);
    expect(await relDiff(both, one)).toBeLessThan(1e-5);
    expect(() => unet.forward(x, [1, 2, 3], ctx)).toThrow(/timestep must be a number or hold 1 or 2 values/);
    expect(() => unet.forward(x, 1, k.zeros([2, 77, 16]))).toThrow(/encoderHiddenStates must be \[2, L, 32\]/);
  });

  it('runs latents that are not a multiple of the upsampling factor (upsample_size)', async () => {
    const unet = await UNet2DConditionModel.fromPretrained(DIR);
    const y = k.noGrad(() => unet.forward(k.randn([1, 4, 9, 7], { seed: 1 }), 10, k.randn([1, 5, 32], { seed: 2 })).sample);
    expect(y.shape).toEqual([1, 4, 9, 7]);
  });
});
