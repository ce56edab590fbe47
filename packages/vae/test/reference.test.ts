import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { AutoencoderKL } from '@kiln/vae';
import { backends, fixture, loadIO, onBackend, relDiff } from './golden.js';

/**
 * vae_tiny against the real diffusers v0.31.0 (fixtures/vae_tiny, made by the harness's `gen`):
 * the posterior's mean and log-variance, decode, forward, every block's output and the gradients of
 * sum(decoded · R) and sum(latent_mean · R), to 1e-4 relative on each backend.
 */
const TOL = 1e-4;

async function load(backend: string, DIR: string): Promise<AutoencoderKL> {
  await k.useBackend('cpu');
  let vae = await AutoencoderKL.fromPretrained(DIR);
  await k.useBackend(backend);
  if (backend !== 'cpu') vae = await vae.toBackend(backend);
  return vae.eval();
}

// The extra SD-layout case runs on cpu and wasm; WebGPU (a CPU Vulkan driver here) runs the tiny one.
const cases = backends.flatMap((b) => ['vae_tiny', ...(b === 'webgpu' ? [] : ['vae_sd_layout'])].map((c) => [b, c] as const));

describe.each(cases)('AutoencoderKL against diffusers (%s, %s)', (backend, name) => {
  const DIR = fixture(name);
  afterAll(() => k.useBackend('cpu'));

  it('matches encode, decode, forward and every trace.*', async () => {
    const io = await loadIO(DIR);
    const vae = await load(backend, DIR);
    const image = await onBackend(io['input.image'], backend);
    const latent = await onBackend(io['input.latent'], backend);
    const traces = new Map<string, k.Tensor>();
    // The harness records each block's first call: the encoder's in encode(image), the decoder's in decode(latent).
    const trace = (name: string, v: k.Tensor) => void (traces.has(name) || traces.set(name, k.keep(v)));
    const { latentDist } = k.noGrad(() => vae.encode(image, { trace }));
    const decoded = k.noGrad(() => vae.decode(latent, { trace }).sample);
    const sample = k.noGrad(() => vae.forward(image).sample);
    expect(await relDiff(latentDist.mean, io['output.latent_mean'])).toBeLessThan(TOL);
    expect(await relDiff(latentDist.logvar, io['output.latent_logvar'])).toBeLessThan(TOL);
    expect(await relDiff(decoded, io['output.decoded'])).toBeLessThan(TOL);
    expect(await relDiff(sample, io['output.sample'])).toBeLessThan(TOL);
    const wanted = Object.keys(io).filter((key) => key.startsWith('trace.'));
    expect(wanted.length).toBeGreaterThan(10);
    for (const key of wanted) {
      const got = traces.get(key.slice('trace.'.length));
      expect(got, key).toBeDefined();
      expect(await relDiff(got!, io[key]), key).toBeLessThan(TOL);
    }
  });

  it.each(['decoded', 'latent_mean'])('matches the gradients of sum(%s · R)', async (o) => {
    const io = await loadIO(DIR);
    const vae = await load(backend, DIR);
    const input = o === 'decoded' ? 'latent' : 'image';
    const x = (await onBackend(io[`input.${input}`], backend)).detach().requiresGrad_(true);
    const R = await onBackend(io[`grad_seed.${o}`], backend);
    k.tidy(() => (o === 'decoded' ? vae.decode(x).sample : vae.encode(x).latentDist.mean).backward(R));
    expect(await relDiff(x.grad!, io[`grad.${o}.input.${input}`])).toBeLessThan(TOL);
    const params = Object.fromEntries(vae.namedParameters());
    const keys = Object.keys(io).filter((key) => key.startsWith(`grad.${o}.param.`));
    expect(keys.length).toBeGreaterThan(4);
    for (const key of keys) {
      const p = params[key.slice(`grad.${o}.param.`.length)];
      expect(p?.grad, key).toBeTruthy();
      expect(await relDiff(p.grad!, io[key]), key).toBeLessThan(TOL);
    }
  });
});
