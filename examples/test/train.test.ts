import { describe, expect, it } from 'vitest';
import { trainMlp } from '../src/train-mlp.js';
import { trainConvnet } from '../src/train-convnet.js';

const flat = (xs: number[]) => xs.slice(1).every((v) => v === xs[1]);

describe('training examples (cpu)', () => {
  it('the MLP fits its target: loss falls at least 20× and memory stays flat', async () => {
    const r = await trainMlp({ steps: 150, backend: 'cpu' });
    expect(r.losses[0] / r.losses[r.losses.length - 1]).toBeGreaterThan(20);
    expect(flat(r.liveTensors)).toBe(true);
    expect(flat(r.liveBytes)).toBe(true);
  });

  it('the conv/attention denoiser learns: loss falls at least 3× and memory stays flat', async () => {
    const r = await trainConvnet({ steps: 80, backend: 'cpu' });
    expect(r.losses[0] / r.losses[r.losses.length - 1]).toBeGreaterThan(3);
    expect(flat(r.liveTensors)).toBe(true);
    expect(flat(r.liveBytes)).toBe(true);
  });
});
