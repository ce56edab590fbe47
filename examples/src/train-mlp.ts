/**
 * Trains a 2-64-64-1 MLP to fit f(x, y) = sin(3x)·y on 256 points with Adam written over the
 * public tensor API, and prints the loss curve. `npm start` runs this.
 */
import * as k from '@kiln/tensor-core';
import { Adam, isMain, pickBackend, uniformInit } from './setup.js';

export interface TrainResult {
  backend: string;
  losses: number[];
  /** `k.memory()` after each step: flat when nothing leaks. */
  liveTensors: number[];
  liveBytes: number[];
  msPerStep: number;
}

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
  const result: TrainResult = { backend, losses: [], liveTensors: [], liveBytes: [], msPerStep: 0 };
  const start = performance.now();
  for (let step = 0; step < steps; step++) {
    const loss = k.tidy(() => {
      const l = k.mseLoss(forward(x), target);
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    result.losses.push(await loss.item());
    loss.dispose();
    result.liveTensors.push(k.memory().liveTensors);
    result.liveBytes.push(k.memory().liveBytes);
    if (options.log && (step % 50 === 0 || step === steps - 1)) {
      console.log(`step ${String(step).padStart(4)}  loss ${result.losses[step].toFixed(6)}  live tensors ${result.liveTensors[step]}`);
    }
  }
  result.msPerStep = (performance.now() - start) / steps;
  return result;
}

if (isMain(import.meta.url)) {
  const r = await trainMlp({ log: true });
  const first = r.losses[0];
  const last = r.losses[r.losses.length - 1];
  console.log(`\nbackend ${r.backend}: loss ${first.toFixed(4)} → ${last.toFixed(6)} (${(first / last).toFixed(0)}× lower), ${r.msPerStep.toFixed(1)} ms/step`);
}
