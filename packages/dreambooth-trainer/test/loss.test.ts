import * as k from '@kiln/tensor-core';
import { DDPMScheduler } from '@kiln/scheduler';
import type { UNet2DConditionModel } from '@kiln/unet';
import { beforeAll, describe, expect, it } from 'vitest';
import { dreamBoothLoss } from '../src/index.js';

// The loss against plain arithmetic on the same draws: a stand-in UNet returns a fixed
// prediction, so only the targets, the min-SNR weights and the prior term are under test.
beforeAll(async () => {
  await k.useBackend('cpu');
});

const scheduler = DDPMScheduler.fromConfig({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
});
const shape = [2, 4, 2, 2];
const per = 16;

async function expected(
  latents: Float32Array,
  pred: Float32Array,
  predictionType: 'epsilon' | 'v_prediction',
  gamma: number | null,
  lambda: number,
) {
  const g = new k.Generator(9);
  const noise = (await k.randn(shape, { generator: g }).data()) as Float32Array;
  const t = Array.from((await k.randint(0, 1000, [2], { generator: g }).data()) as Int32Array);
  const rowMse = (row: number) => {
    const a = scheduler.alphasCumprod[t[row]];
    let s = 0;
    for (let i = row * per; i < (row + 1) * per; i++) {
      const target = predictionType === 'epsilon' ? noise[i] : Math.sqrt(a) * noise[i] - Math.sqrt(1 - a) * latents[i];
      s += (pred[i] - target) ** 2;
    }
    return s / per;
  };
  const a0 = scheduler.alphasCumprod[t[0]];
  const snr = a0 / (1 - a0);
  const w = gamma === null ? 1 : Math.min(snr, gamma) / snr + (predictionType === 'v_prediction' ? 1 : 0);
  return { instance: rowMse(0) * w, prior: rowMse(1), total: rowMse(0) * w + lambda * rowMse(1) };
}

describe('dreamBoothLoss', () => {
  for (const [predictionType, gamma] of [
    ['epsilon', null],
    ['epsilon', 5],
    ['v_prediction', null],
    ['v_prediction', 0.5],
  ] as const) {
    it(`${predictionType}, snr_gamma ${gamma}: instance MSE (weighted) + λ × prior MSE`, async () => {
      const latents = k.randn(shape, { seed: 1 });
      const pred = k.randn(shape, { seed: 2 });
      // convIn's weight gives the dtype the UNet computes in (float32 here; half under mixed precision).
      const unet = { convIn: { weight: pred }, forward: () => ({ sample: pred }) } as unknown as UNet2DConditionModel;
      const out = dreamBoothLoss({
        unet,
        scheduler,
        latents,
        encoderHiddenStates: k.zeros([2, 1, 1]),
        generator: new k.Generator(9),
        predictionType,
        offsetNoise: false,
        snrGamma: gamma,
        withPrior: true,
        priorLossWeight: 0.7,
      });
      const want = await expected((await latents.data()) as Float32Array, (await pred.data()) as Float32Array, predictionType, gamma, 0.7);
      expect(await out.instanceLoss.item()).toBeCloseTo(want.instance, 5);
      expect(await out.priorLoss!.item()).toBeCloseTo(want.prior, 5);
      expect(await out.loss.item()).toBeCloseTo(want.total, 5);
    });
  }
});
