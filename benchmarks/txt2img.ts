/**
 * Text-to-image time per denoising step for the tiny pipeline (@kiln/pipeline/testing: CLIP width
 * 32, UNet blocks [32, 64], VAE blocks [32, 64]) at 32×32, PNDM with classifier-free guidance
 * (batch 2 per UNet forward), on Kiln's wasm backend and on PyTorch CPU (diffusers v0.31.0's UNet,
 * scheduler and VAE in StableDiffusionPipeline's loop, torch_txt2img.py) in the same run, same
 * weights, same thread count. One warm-up run each, then the median of --reps. Results:
 * results/txt2img.json.
 *
 *   pnpm --filter @kiln/benchmarks bench:txt2img [--threads 2] [--steps 10] [--reps 3]
 *
 * PyTorch runs when diffusers imports: on sys.path, or KILN_REF_HARNESS=<reference harness folder>.
 * Not measured here: SD 1.5's UNet at 512² per step (diffusion.ts has its forward and backward).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';
import { opt } from './flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(opt('threads') ?? Math.min(2, availableParallelism()));
const steps = Number(opt('steps') ?? 10);
const reps = Number(opt('reps') ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

k.registerWasmBackend({ threads });
await k.useBackend('wasm');
const folder = join(mkdtempSync(join(tmpdir(), 'kiln-bench-txt2img-')), 'tiny-sd');
await writeTinyModel(folder);
const pipe = await StableDiffusionPipeline.fromPretrained(folder);
const promptEmbeds = pipe.encodePrompt(['a photo of an astronaut riding a horse']);
const negativePromptEmbeds = pipe.encodePrompt(['']);
const latents = k.randn([1, 4, 16, 16], { seed: 0 });
await saveSafetensors(
  join(folder, 'io.safetensors'),
  { prompt_embeds: promptEmbeds, negative_prompt_embeds: negativePromptEmbeds, latents },
  { format: 'pt' },
);

async function run(): Promise<[number, number]> {
  const start = performance.now();
  let stepsEnd = start;
  let unetSteps = 0; // PNDM's schedule has steps + 1 entries (one repeated): time per UNet step, as PyTorch's side
  const { images } = await pipe.txt2img({
    promptEmbeds,
    negativePromptEmbeds,
    latents,
    numInferenceSteps: steps,
    guidanceScale: 7.5,
    width: 32,
    height: 32,
    callback: () => void ((stepsEnd = performance.now()), unetSteps++),
  });
  images.dispose();
  return [(stepsEnd - start) / unetSteps, performance.now() - start];
}
await run();
const runs: [number, number][] = [];
for (let i = 0; i < reps; i++) runs.push(await run());
const kiln = { step_ms: median(runs.map((r) => r[0])), total_ms: median(runs.map((r) => r[1])), runs };

let torch: Record<string, unknown> | { error: string };
try {
  const py = execFileSync(
    '/usr/bin/python3',
    [join(here, 'torch_txt2img.py'), folder, '--steps', String(steps), '--reps', String(reps), '--threads', String(threads)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  torch = JSON.parse(py.trim().split('\n').at(-1)!) as Record<string, unknown>;
} catch (e) {
  torch = { error: (e as Error).message.split('\n')[0] };
}
rmSync(dirname(folder), { recursive: true, force: true });
const result = { date: new Date().toISOString(), case: 'txt2img_tiny_32px_pndm_cfg', steps, threads, kiln_wasm: kiln, pytorch_cpu: torch };
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'txt2img.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `txt2img tiny (${steps} steps, ${threads} threads): kiln wasm ${kiln.step_ms.toFixed(1)} ms/step, ${kiln.total_ms.toFixed(0)} ms/image; pytorch ${'step_ms' in torch ? `${(torch.step_ms as number).toFixed(1)} ms/step, ${(torch.total_ms as number).toFixed(0)} ms/image` : torch.error}`,
);
