import { copyFile, mkdir, mkdtemp, readdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { SafetensorsError, StateDictError } from '@kiln/nn';
import { loadSafetensors, saveSafetensors } from '@kiln/nn/node';
import { AutoencoderKL, DiagonalGaussianDistribution } from '@kiln/vae';
import { fixture, loadIO, relDiff } from './golden.js';

const DIR = fixture('vae_tiny');
let tmp: string;
beforeAll(async () => {
  await k.useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'kiln-vae-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

async function folder(name: string, edit: (w: Record<string, k.Tensor>) => Record<string, k.Tensor>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  await copyFile(join(DIR, 'config.json'), join(dir, 'config.json'));
  await saveSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), edit(await loadSafetensors(join(DIR, 'model.safetensors'))));
  return dir;
}

async function expectSameWeights(a: AutoencoderKL, b: AutoencoderKL): Promise<void> {
  const [sa, sb] = [a.stateDict(), b.stateDict()];
  expect(Object.keys(sb)).toEqual(Object.keys(sa));
  for (const key of Object.keys(sa)) expect(await sb[key].data(), key).toEqual(await sa[key].data());
}

describe('AutoencoderKL.fromPretrained / savePretrained', () => {
  it('round-trips a diffusers folder bit-exactly', async () => {
    const vae = await AutoencoderKL.fromPretrained(DIR);
    const out = join(tmp, 'pipe');
    await vae.savePretrained(join(out, 'vae'));
    expect((await readdir(join(out, 'vae'))).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const back = await AutoencoderKL.fromPretrained(out, { subfolder: 'vae' });
    await expectSameWeights(vae, back);
    expect(back.config).toEqual(vae.config);
  });

  it('loads the old attention names (query/key/value/proj_attn) as diffusers converts them', async () => {
    const old: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
    const dir = await folder('legacy', (w) =>
      Object.fromEntries(
        Object.entries(w).map(([key, t]) => [key.replace(/\.(to_q|to_k|to_v|to_out\.0)\./, (_, n: string) => `.${old[n]}.`), t]),
      ),
    );
    const keys = Object.keys(await loadSafetensors(join(dir, 'diffusion_pytorch_model.safetensors')));
    expect(keys).toContain('decoder.mid_block.attentions.0.proj_attn.weight');
    await expectSameWeights(await AutoencoderKL.fromPretrained(DIR), await AutoencoderKL.fromPretrained(dir));
  });

  it('a missing key names the key and the file', async () => {
    const dir = await folder('missing', (w) => {
      delete w['decoder.conv_out.bias'];
      return w;
    });
    const err = await AutoencoderKL.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as StateDictError).missingKeys).toEqual(['decoder.conv_out.bias']);
    expect((err as Error).message).toContain('diffusion_pytorch_model.safetensors');
  });

  it('a wrong shape names the key and both shapes', async () => {
    const dir = await folder('shape', (w) => ({ ...w, 'quant_conv.weight': k.zeros([8, 8, 3, 3]) }));
    await expect(AutoencoderKL.fromPretrained(dir)).rejects.toThrow(/quant_conv\.weight.*\[8, 8, 3, 3\].*\[8, 8, 1, 1\]/);
  });

  it('a truncated file names the file', async () => {
    const dir = await folder('truncated', (w) => w);
    await truncate(join(dir, 'diffusion_pytorch_model.safetensors'), 4096);
    const err = await AutoencoderKL.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('truncated');
  });
});

describe('AutoencoderKL', () => {
  it('latentDist: std, mode, and seeded samples that follow N(mean, std²)', async () => {
    const io = await loadIO(DIR);
    const vae = await AutoencoderKL.fromPretrained(DIR);
    const { latentDist: d } = k.noGrad(() => vae.encode(io['input.image']));
    expect(d).toBeInstanceOf(DiagonalGaussianDistribution);
    expect(d.mode()).toBe(d.mean);
    expect(await relDiff(d.std, io['output.latent_logvar'].mul(0.5).exp())).toBeLessThan(1e-4);
    const a = d.sample(7);
    expect(await a.data()).toEqual(await d.sample(7).data());
    expect(await a.data()).not.toEqual(await d.sample(8).data());
    const g = k.manualSeed(3);
    const [s1, s2] = [d.sample(g), d.sample(g)]; // a generator advances
    expect(await s1.data()).not.toEqual(await s2.data());
    // (sample − mean) / std is the standard normal noise that was drawn.
    const eps = await a.sub(d.mean).div(d.std).data();
    expect(await relDiff(k.tensor(eps, { shape: a.shape }), k.randn(a.shape, { seed: 7 }))).toBeLessThan(1e-3);
  });

  it('gives the same gradients with gradient checkpointing (wasm)', async () => {
    const io = await loadIO(DIR);
    await k.initBackend('wasm');
    const image = await io['input.image'].toBackend('wasm');
    const grads = async (on: boolean) => {
      await k.useBackend('cpu');
      const loaded = await AutoencoderKL.fromPretrained(DIR);
      await k.useBackend('wasm');
      const vae = (await loaded.toBackend('wasm')).enableGradientCheckpointing(on);
      const x = image.detach().requiresGrad_(true);
      k.tidy(() => vae.forward(x).sample.sum().backward());
      const p = Object.fromEntries(vae.namedParameters());
      return [x.grad!, p['encoder.mid_block.attentions.0.to_q.weight'].grad!, p['decoder.up_blocks.1.resnets.0.conv1.weight'].grad!];
    };
    const [plain, ckpt] = [await grads(false), await grads(true)];
    for (let i = 0; i < plain.length; i++) expect(await relDiff(ckpt[i], plain[i])).toBeLessThan(1e-5); // accumulation order differs
    await k.useBackend('cpu');
  });

  it('names the expected shape of bad inputs', async () => {
    const vae = await AutoencoderKL.fromPretrained(DIR);
    expect(() => vae.encode(k.zeros([1, 4, 8, 8]))).toThrow(/input must be \[N, 3, H, W\], got \[1, 4, 8, 8\]/);
    expect(() => vae.decode(k.zeros([1, 3, 8, 8]))).toThrow(/latents must be \[N, 4, h, w\]/);
  });
});
