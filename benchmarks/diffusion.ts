/**
 * UNet and VAE benchmarks on the wasm backend, beside the real diffusers v0.31.0 on PyTorch CPU
 * (torch_diffusion.py) at the same thread count, with random weights:
 *
 *   unet_tiny_fwd_bwd            configs/unet_tiny.json, batch 2, 16×16 latents, 77×32 context
 *   unet_sd15_fwd_bwd[_ckpt]     SD 1.5's UNet, batch 1, 64×64 latents, 77×768 context, with and without gradient checkpointing
 *   unet_sd15_train_step_ckpt    the same with checkpointing, plus an AdamW step
 *   vae_encode/decode_256/512    SD 1.5's VAE, batch 1, no gradients
 *
 * Cases with more than one run get one warm-up run first. Each case runs in a fresh process (Kiln and PyTorch alike), so peaks are its own: Kiln reports
 * `k.memory().peakBytes` (backend storage) above the bytes live after setup (the weights and
 * inputs), PyTorch its RSS high-water mark above the RSS after setup. Results: results/diffusion.json.
 *
 *   pnpm --filter @kiln/benchmarks bench:diffusion [--threads 2] [--cases unet_tiny_fwd_bwd,vae_decode_256] [--reps 3]
 *
 * PyTorch runs when diffusers imports: on sys.path, or KILN_REF_HARNESS=<reference harness folder>.
 * The SD-size UNet cases need ~10–20 GB of free memory and minutes per run on two cores.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { AdamW } from '@kiln/nn';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { opt } from './flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const config = (name: string) => JSON.parse(readFileSync(join(here, 'configs', name), 'utf8')) as Record<string, unknown>;

interface Case {
  /** Runs per measurement after one warm-up (SD-size cases: 1). */
  reps: number;
  setup(): () => Promise<void>;
}

const read = async (t: k.Tensor) => void (await t.reshape([-1]).slice(0, 0, 1).data());

function unet(cfg: string, batch: number, size: number, ctxDim: number, o: { checkpointing?: boolean; adamw?: boolean } = {}): Case {
  return {
    reps: cfg === 'unet_tiny.json' ? 5 : 1,
    setup: () => {
      k.manualSeed(0);
      const model = new UNet2DConditionModel(config(cfg)).enableGradientCheckpointing(o.checkpointing ?? false);
      const x = k.randn([batch, 4, size, size], { seed: 1 });
      const ctx = k.randn([batch, 77, ctxDim], { seed: 2 });
      const g = k.randn([batch, 4, size, size], { seed: 3 });
      const t = k.tensor(batch === 2 ? [999, 37] : [500], { dtype: 'int32' });
      const adamw = o.adamw ? new AdamW(model.parameters(), { lr: 1e-5 }) : null;
      return async () => {
        model.zeroGrad();
        k.tidy(() => model.forward(x, t, ctx).sample.backward(g));
        await read(model.convIn.weight.grad!);
        if (adamw) {
          adamw.step();
          await read(model.convIn.weight);
        }
      };
    },
  };
}

function vae(op: 'encode' | 'decode', size: number): Case {
  return {
    reps: size <= 256 ? 3 : 1,
    setup: () => {
      k.manualSeed(0);
      const model = new AutoencoderKL(config('sd15_vae.json')).eval();
      const x = op === 'encode' ? k.rand([1, 3, size, size], { seed: 1 }).mul(2).sub(1) : k.randn([1, 4, size / 8, size / 8], { seed: 1 });
      return async () => {
        const y = k.noGrad(() => k.tidy(() => (op === 'encode' ? model.encode(x).latentDist.mean : model.decode(x).sample)));
        await read(y);
        y.dispose();
      };
    },
  };
}

const CASES: Record<string, Case> = {
  unet_tiny_fwd_bwd: unet('unet_tiny.json', 2, 16, 32),
  vae_encode_256: vae('encode', 256),
  vae_decode_256: vae('decode', 256),
  vae_encode_512: vae('encode', 512),
  vae_decode_512: vae('decode', 512),
  unet_sd15_fwd_bwd_ckpt: unet('sd15_unet.json', 1, 64, 768, { checkpointing: true }),
  unet_sd15_fwd_bwd: unet('sd15_unet.json', 1, 64, 768),
  unet_sd15_train_step_ckpt: unet('sd15_unet.json', 1, 64, 768, { checkpointing: true, adamw: true }),
};

/** Child: one case on wasm; prints one JSON line. */
async function child(name: string, threads: number, reps: number): Promise<void> {
  k.registerWasmBackend({ threads });
  await k.useBackend('wasm');
  const run = CASES[name].setup();
  if (reps > 1) await run(); // warm-up (also compiles kernels); single-run SD-size cases skip it
  const base = k.memory().liveBytes;
  k.resetPeakMemory();
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    runs.push(performance.now() - t0);
  }
  const peak = k.memory().peakBytes - base;
  console.log(JSON.stringify({ runs, peak_bytes: peak, base_bytes: base }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const childCase = opt('child');
  const threads = Number(opt('threads') ?? Math.min(2, availableParallelism()));
  if (childCase) return child(childCase, threads, Number(opt('reps')));
  const names = opt('cases')?.split(',') ?? Object.keys(CASES);
  const out: Record<string, unknown>[] = [];
  for (const name of names) {
    const reps = Number(opt('reps') ?? CASES[name].reps);
    const node = [
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      '--child',
      name,
      '--threads',
      String(threads),
      '--reps',
      String(reps),
    ];
    const kiln = JSON.parse(
      execFileSync(process.execPath, node, { encoding: 'utf8', maxBuffer: 1 << 20 })
        .trim()
        .split('\n')
        .at(-1)!,
    ) as { runs: number[]; peak_bytes: number; base_bytes: number };
    let torch: { median_ms: number; rss_peak_bytes: number; rss_base_bytes: number; torch: string } | null = null;
    let torchNote: string | undefined;
    try {
      const py = execFileSync(
        '/usr/bin/python3',
        [join(here, 'torch_diffusion.py'), '--threads', String(threads), '--reps', String(reps), '--warmup', reps > 1 ? '1' : '0', name],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      torch = JSON.parse(py.trim().split('\n').at(-1)!);
    } catch (e) {
      torchNote = `PyTorch side unavailable: ${String((e as { stderr?: string }).stderr ?? e)
        .trim()
        .split('\n')
        .at(-1)}`;
    }
    const ms = median(kiln.runs);
    const row = {
      case: name,
      backend: 'wasm',
      threads,
      median_ms: ms,
      runs_ms: kiln.runs,
      peak_bytes_above_setup: kiln.peak_bytes,
      setup_bytes: kiln.base_bytes,
      torch_median_ms: torch?.median_ms ?? null,
      torch_rss_peak_above_setup_bytes: torch ? torch.rss_peak_bytes - torch.rss_base_bytes : null,
      ratio_vs_torch: torch ? torch.median_ms / ms : null,
      torch_version: torch?.torch ?? null,
      ...(torchNote ? { note: torchNote } : {}),
    };
    console.error(
      `${name}: kiln ${ms.toFixed(0)} ms, peak ${(kiln.peak_bytes / 2 ** 20).toFixed(0)} MiB` +
        (torch ? `; torch ${torch.median_ms.toFixed(0)} ms (ratio ${row.ratio_vs_torch!.toFixed(2)})` : ` (${torchNote})`),
    );
    out.push(row);
  }
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', 'diffusion.json');
  let previous: Record<string, unknown>[] = [];
  try {
    previous = (JSON.parse(readFileSync(file, 'utf8')) as { results: Record<string, unknown>[] }).results.filter(
      (r) => !names.includes(r.case as string),
    );
  } catch {
    // first run
  }
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), results: [...previous, ...out] }, null, 2)}\n`);
}

await main();
