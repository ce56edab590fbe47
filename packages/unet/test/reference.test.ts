import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { UNet2DConditionModel } from '@kiln/unet';
import { backends, fixture, loadIO, onBackend, relDiff } from './golden.js';

/**
 * unet_tiny against the real diffusers v0.31.0 (fixtures/unet_tiny, made by the harness's `gen`):
 * the output, every block's output and the gradients of sum(sample · R) for both inputs and the
 * parameters the harness recorded, to 1e-4 relative on each backend.
 */
const TOL = 1e-4;

// The extra SD-layout case runs on cpu and wasm; WebGPU (a CPU Vulkan driver here) runs the tiny one.
const cases = backends.flatMap((b) => ['unet_tiny', ...(b === 'webgpu' ? [] : ['unet_sd_layout'])].map((c) => [b, c] as const));

describe.each(cases)('UNet2DConditionModel against diffusers (%s, %s)', (backend, name) => {
  const DIR = fixture(name);
  afterAll(() => k.useBackend('cpu'));

  it('matches output.sample and every trace.*', async () => {
    const io = await loadIO(DIR);
    let unet = await UNet2DConditionModel.fromPretrained(DIR);
    await k.useBackend(backend);
    if (backend !== 'cpu') unet = await unet.toBackend(backend);
    unet.eval();
    const [x, t, ctx] = await Promise.all(['sample', 'timestep', 'encoder_hidden_states'].map((n) => onBackend(io[`input.${n}`], backend)));
    const traces = new Map<string, k.Tensor>();
    const out = k.noGrad(() => unet.forward(x, t, ctx, { trace: (name, v) => traces.set(name, k.keep(v)) }));
    expect(await relDiff(out.sample, io['output.sample'])).toBeLessThan(TOL);
    const wanted = Object.keys(io).filter((key) => key.startsWith('trace.'));
    expect(wanted.length).toBeGreaterThan(10);
    for (const key of wanted) {
      const got = traces.get(key.slice('trace.'.length));
      expect(got, key).toBeDefined();
      expect(await relDiff(got!, io[key]), key).toBeLessThan(TOL);
    }
  });

  it('matches the gradients of the inputs and parameters', async () => {
    const io = await loadIO(DIR);
    let unet = await UNet2DConditionModel.fromPretrained(DIR);
    await k.useBackend(backend);
    if (backend !== 'cpu') unet = await unet.toBackend(backend);
    unet.eval();
    const x = (await onBackend(io['input.sample'], backend)).detach().requiresGrad_(true);
    const ctx = (await onBackend(io['input.encoder_hidden_states'], backend)).detach().requiresGrad_(true);
    const t = await onBackend(io['input.timestep'], backend);
    const R = await onBackend(io['grad_seed.sample'], backend);
    k.tidy(() => unet.forward(x, t, ctx).sample.backward(R));
    expect(await relDiff(x.grad!, io['grad.sample.input.sample'])).toBeLessThan(TOL);
    expect(await relDiff(ctx.grad!, io['grad.sample.input.encoder_hidden_states'])).toBeLessThan(TOL);
    const params = Object.fromEntries(unet.namedParameters());
    const keys = Object.keys(io).filter((key) => key.startsWith('grad.sample.param.'));
    expect(keys.length).toBeGreaterThan(10);
    for (const key of keys) {
      const p = params[key.slice('grad.sample.param.'.length)];
      expect(p?.grad, key).toBeTruthy();
      expect(await relDiff(p.grad!, io[key]), key).toBeLessThan(TOL);
    }
  });
});
