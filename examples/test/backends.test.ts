import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { trainMlp } from '../src/train-mlp.js';
import { trainConvnet } from '../src/train-convnet.js';

/**
 * The training examples run unchanged on every fast backend and follow the cpu backend's loss
 * curve. `KILN_TEST_BACKENDS` (comma-separated) picks the backends; by default wasm runs here and
 * the WebGPU suites set it to webgpu.
 */
const backends = (process.env.KILN_TEST_BACKENDS ?? 'wasm').split(',').filter((b) => b && k.listBackends().includes(b));
const flat = (xs: number[]) => xs.slice(1).every((v) => v === xs[1]);

describe.each(backends)('training examples on %s match cpu', (backend) => {
  it('MLP: same loss curve within 1e-3 relative, flat memory', async () => {
    const ref = await trainMlp({ steps: 60, backend: 'cpu' });
    const got = await trainMlp({ steps: 60, backend });
    for (let i = 0; i < ref.losses.length; i++) {
      expect(Math.abs(got.losses[i] - ref.losses[i]) / ref.losses[i], `step ${i}`).toBeLessThan(1e-3);
    }
    expect(flat(got.liveTensors) && flat(got.liveBytes)).toBe(true);
  });

  it('conv/attention denoiser: same loss curve within 1e-3 relative, flat memory', async () => {
    const ref = await trainConvnet({ steps: 30, backend: 'cpu' });
    const got = await trainConvnet({ steps: 30, backend });
    for (let i = 0; i < ref.losses.length; i++) {
      expect(Math.abs(got.losses[i] - ref.losses[i]) / ref.losses[i], `step ${i}`).toBeLessThan(1e-3);
    }
    expect(flat(got.liveTensors) && flat(got.liveBytes)).toBe(true);
  });
});
