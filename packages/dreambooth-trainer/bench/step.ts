// One DreamBooth training step (prior preservation: 1 instance + 1 class row) on Kiln's wasm
// backend beside the same step in diffusers v0.31.0 on PyTorch CPU (torch_step.py), same configs,
// shapes and thread count, alternating runs so both see the same machine load:
//
//   KILN_REF_HARNESS=<reference harness folder> KILN_WASM_THREADS=2 \
//     node --conditions=kiln-source --import tsx packages/dreambooth-trainer/bench/step.ts [--reps 5] [--out FILE]
//
// The step: VAE encode (no grad) and a posterior sample × 0.18215, noise, uniform timesteps,
// DDPM addNoise, UNet forward, instance MSE + 1.0 × prior MSE, backward, gradient clipping to
// norm 1, AdamW, zero grads. Writes JSON (median ms per side and their ratio).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { AdamW, clipGradNorm } from '@kiln/nn';
import { DDPMScheduler } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { dreamBoothLoss } from '../src/index.js';
import { BENCH_CASE } from './case.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const reps = Number(opt('--reps', '5'));
const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.KILN_WASM_THREADS ?? '2');

await k.useBackend('wasm');
k.manualSeed(0);
const unet = new UNet2DConditionModel(BENCH_CASE.unet);
const vae = new AutoencoderKL(BENCH_CASE.vae);
const scheduler = DDPMScheduler.fromConfig(BENCH_CASE.scheduler);
const { batch, pixels: P, contextLength, contextDim } = BENCH_CASE;
const pixels = k.keep(k.rand([batch, 3, P, P]).mul(2).sub(1));
const ehs = k.keep(k.randn([batch, contextLength, contextDim]));
const optimizer = new AdamW(unet.parameters(), { lr: 1e-5 });
const generator = new k.Generator(1);

async function kilnStep(): Promise<number> {
  const t0 = performance.now();
  const loss = k.tidy(() => {
    const latents = k.noGrad(() => vae.encode(pixels).latentDist.sample(generator).mul(0.18215));
    const out = dreamBoothLoss({
      unet,
      scheduler,
      latents,
      encoderHiddenStates: ehs,
      generator,
      predictionType: 'epsilon',
      offsetNoise: false,
      snrGamma: null,
      withPrior: true,
      priorLossWeight: 1,
    });
    out.loss.backward();
    return out.loss.detach();
  });
  clipGradNorm(unet.parameters(), 1).dispose();
  optimizer.step();
  optimizer.zeroGrad();
  await loss.item();
  loss.dispose();
  return performance.now() - t0;
}

function torchRun(): number | null {
  try {
    const py = execFileSync('/usr/bin/python3', [join(here, 'torch_step.py'), '--threads', String(threads)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return (JSON.parse(py.trim().split('\n').at(-1)!) as { ms: number }).ms;
  } catch (e) {
    process.stderr.write(`PyTorch side unavailable: ${(e as Error).message.split('\n')[0]}\n`);
    return null;
  }
}

await kilnStep(); // warm-up: kernels, optimizer state
const kiln: number[] = [];
const torch: number[] = [];
for (let i = 0; i < reps; i++) {
  kiln.push(await kilnStep());
  const t = torchRun();
  if (t !== null) torch.push(t);
}
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);
const result = {
  case: 'dreambooth_step_tiny_prior',
  backend: 'wasm',
  threads,
  shapes: { batch, pixels: P, latents: P / 2 },
  kiln_median_ms: median(kiln),
  kiln_runs_ms: kiln,
  torch_median_ms: median(torch),
  torch_runs_ms: torch,
  ratio_vs_torch: torch.length ? median(torch)! / median(kiln)! : null,
};
console.log(JSON.stringify(result, null, 1));
const out = opt('--out', '');
if (out) writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
