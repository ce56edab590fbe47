/**
 * Peak memory of one UNet training step, LoRA beside full fine-tuning, on the wasm backend:
 * gradient checkpointing, batch 1, 77-token context, AdamW (lr 1e-4), from a fresh optimizer (so
 * the full fine-tune's AdamW state is part of its peak, as in a real first step). LoRA is
 * diffusers' `train_dreambooth_lora.py` setup: rank 4 on `to_q`/`to_k`/`to_v`/`to_out.0`.
 *
 *   node --conditions=kiln-source --import tsx benchmarks/lora.ts [--config unet_tiny.json|sd15_unet.json] [--size 16|64] [--threads 2] [--modes full,lora]
 *
 * Each mode runs in a fresh process; `k.memory().peakBytes` is backend storage (weights included).
 * SD 1.5 (`--config sd15_unet.json --size 64`) needs about 14 GB for the full fine-tune's weights,
 * gradients and AdamW state alone, and minutes per step on two cores. Results: results/lora.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { AdamW, LORA_TARGETS, injectLora } from '@kiln/nn';
import { UNet2DConditionModel } from '@kiln/unet';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : undefined);
const configName = opt('config') ?? 'unet_tiny.json';
const size = Number(opt('size') ?? (configName === 'unet_tiny.json' ? 16 : 64));
const threads = Number(opt('threads') ?? 2);

async function child(mode: 'full' | 'lora'): Promise<void> {
  k.registerWasmBackend({ threads });
  await k.useBackend('wasm');
  const config = JSON.parse(readFileSync(join(here, 'configs', configName), 'utf8')) as Record<string, unknown>;
  k.manualSeed(0);
  const unet = new UNet2DConditionModel(config).enableGradientCheckpointing();
  const params =
    mode === 'lora' ? injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4, alpha: 4 }).parameters() : unet.parameters();
  const opt = new AdamW(params, { lr: 1e-4 });
  const ctxDim = Number(config.cross_attention_dim ?? 768);
  const x = k.randn([1, 4, size, size], { seed: 1 });
  const ctx = k.randn([1, 77, ctxDim], { seed: 2 });
  const target = k.randn([1, 4, size, size], { seed: 3 });
  const setup = k.memory().liveBytes;
  k.resetPeakMemory();
  const t0 = performance.now();
  k.tidy(() => k.mseLoss(unet.forward(x, 500, ctx).sample, target).backward());
  opt.step();
  opt.zeroGrad();
  await params[0]!.reshape([-1]).slice(0, 0, 1).data();
  const ms = performance.now() - t0;
  const trainable = params.reduce((n, p) => n + p.numel(), 0);
  console.log(
    JSON.stringify({
      mode,
      ms,
      peak_bytes: k.memory().peakBytes,
      setup_bytes: setup,
      trainable_params: trainable,
      total_params: unet.numParameters(),
    }),
  );
}

async function main(): Promise<void> {
  const mode = opt('child');
  if (mode === 'full' || mode === 'lora') return child(mode);
  const modes = (opt('modes')?.split(',') ?? ['full', 'lora']) as ('full' | 'lora')[];
  const rows = modes.map((m) => {
    const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args, '--child', m], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    return JSON.parse(out.trim().split('\n').at(-1)!) as {
      mode: string;
      ms: number;
      peak_bytes: number;
      setup_bytes: number;
      trainable_params: number;
      total_params: number;
    };
  });
  const full = rows.find((r) => r.mode === 'full') ?? null;
  const lora = rows.find((r) => r.mode === 'lora') ?? null;
  const ratio = full && lora ? lora.peak_bytes / full.peak_bytes : null;
  const result = {
    date: new Date().toISOString(),
    config: configName,
    latent_size: size,
    backend: 'wasm',
    threads,
    full,
    lora,
    peak_ratio_lora_over_full: ratio,
  };
  for (const r of rows)
    console.error(
      `${configName} ${r.mode}: peak ${(r.peak_bytes / 2 ** 20).toFixed(1)} MiB (setup ${(r.setup_bytes / 2 ** 20).toFixed(1)} MiB), ${r.ms.toFixed(0)} ms, ${r.trainable_params} trainable`,
    );
  if (ratio !== null) console.error(`LoRA / full peak: ${ratio.toFixed(3)}`);
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', 'lora.json');
  let previous: (typeof result)[] = [];
  try {
    previous = (JSON.parse(readFileSync(file, 'utf8')) as { results: (typeof result)[] }).results.filter(
      (r) => r.config !== configName || r.latent_size !== size,
    );
  } catch {
    // first run
  }
  writeFileSync(file, `${JSON.stringify({ results: [...previous, result] }, null, 2)}\n`);
}

await main();
