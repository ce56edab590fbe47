import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { UNet2DConditionModel } from '@kiln/unet';
import { fixture, loadIO, onBackend, relDiff } from './golden.js';

/**
 * float16 weights on WebGPU (run by vitest.webgpu.config.ts): unet_tiny loaded with
 * `dtype: 'float16'` computes in half precision and stays within half-precision error of
 * diffusers' float32 output; its gradients flow.
 */
const DIR = fixture('unet_tiny');

describe('UNet2DConditionModel in float16 on webgpu', () => {
  afterAll(() => k.useBackend('cpu'));

  it('matches diffusers float32 output to half precision, and trains', async () => {
    const io = await loadIO(DIR);
    let unet = await UNet2DConditionModel.fromPretrained(DIR, { dtype: 'float16' });
    await k.useBackend('webgpu');
    unet = await unet.toBackend('webgpu');
    expect(unet.convIn.weight.dtype).toBe('float16');
    const half = async (name: string) => (await onBackend(io[name], 'webgpu')).to('float16');
    const [x, ctx] = [await half('input.sample'), await half('input.encoder_hidden_states')];
    const t = await onBackend(io['input.timestep'], 'webgpu');
    const y = k.tidy(() => {
      const out = unet.forward(x, t, ctx).sample;
      out.float().square().mean().backward();
      return out;
    });
    expect(y.dtype).toBe('float16');
    expect(await relDiff(y, io['output.sample'])).toBeLessThan(2e-2);
    const g = unet.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0).attn2.toK.weight.grad!;
    expect(g.dtype).toBe('float16');
    const data = await g.data();
    expect(data.every(Number.isFinite)).toBe(true);
    expect(data.some((v) => v !== 0)).toBe(true);
  });
});
