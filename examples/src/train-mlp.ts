/**
 * Trains a 2-64-64-1 MLP to fit f(x, y) = sin(3x)·y on 256 points with Adam written over the
 * public tensor API, and prints the loss curve. `npm start` runs this.
 */
import * as k from '@kiln/tensor-core';
import { Adam, isMain, pickBackend, summary, trainLoop, uniformInit } from './setup.js';
export type { TrainResult } from './setup.js';
import type { TrainResult } from './setup.js';

export async function trainMlp(options: { steps?: number; backend?: string; log?: boolean } = {}): Promise<TrainResult> {
  const backend = await pickBackend(options.backend);
  const steps = options.steps ?? 300;
  const x = k.rand([256, 2], { seed: 1 }).mul(2).sub(1);
  const target = k.tidy(() => x.select(1, 0).mul(3).sin().mul(x.select(1, 1)).unsqueeze(1));
  const sizes = [2, 64, 64, 1];
  const params: k.Tensor[] = [];
  for (let i = 0; i < 3; i++) {
    params.push(uniformInit([sizes[i + 1], sizes[i]], sizes[i], 10 + i), uniformInit([sizes[i + 1]], sizes[i], 20 + i));
  }
  const forward = (input: k.Tensor) => {
    let h = input;
    for (let i = 0; i < 3; i++) {
      h = k.linear(h, params[2 * i], params[2 * i + 1]);
      if (i < 2) h = h.tanh();
    }
    return h;
  };
  const opt = new Adam(params, 1e-2);
  return trainLoop(backend, () => k.mseLoss(forward(x), target), opt, steps, options.log ? 50 : 0);
}

if (isMain(import.meta.url)) {
  console.log(`\n${summary(await trainMlp({ log: true }))}`);
}
