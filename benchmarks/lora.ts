/**
 * Peak memory of one UNet training step, LoRA beside full fine-tuning, on the wasm backend:
 * gradient checkpointing, batch 1, 77-token context, AdamW (lr 1e-4), from a fresh optimizer (so
 * the full fine-tune's AdamW state is part of its peak, as in a real first step). LoRA is
 * diffusers' `train_dreambooth_lora.py` setup: rank 4 on `to_q`/`to_k`/`to_v`/`to_out.0`.
 *
 *   node --conditions=kiln-source --import tsx benchmarks/lora.ts [--config unet_tiny.json|sd15_unet.json] [--size 16|64] [--threads 2] [--modes full,lora,torch-full,torch-lora]
 *
 * Each mode runs in a fresh process, one after another; `k.memory().peakBytes` is backend storage
 * (weights included), beside the process's RSS high-water mark (`process.resourceUsage().maxRSS`)
 * and its RSS before the step. `torch-full`/`torch-lora` run the same step on the real diffusers
 * UNet on PyTorch CPU (`torch_lora.py`; `KILN_PYTHON`, default /usr/bin/python3, and
 * `KILN_REF_HARNESS` as for diffusion.ts), where only RSS is measured. SD 1.5 (`--config
 * sd15_unet.json --size 64`, i.e. 512² images) needs about 14 GB for the full fine-tune's weights,
 * gradients and AdamW state alone, and minutes per step on two cores: run one mode at a time
 * (`--modes full`, then `--modes lora`, …); each run replaces only its modes' entries in
 * results/lora.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { AdamW, LORA_TARGETS, injectLora } from '@kiln/nn';
import { UNet2DConditionModel } from '@kiln/unet';
import { opt } from './flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
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
  const rssSetup = process.memoryUsage().rss;
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
      rss_setup_bytes: rssSetup,
      rss_peak_bytes: process.resourceUsage().maxRSS * 1024,
      trainable_params: trainable,
      total_params: unet.numParameters(),
    }),
  );
}

type Row = {
  mode: string;
  ms: number;
  peak_bytes?: number;
  setup_bytes?: number;
  rss_setup_bytes?: number;
  rss_base_bytes?: number;
  rss_peak_bytes: number;
  trainable_params: number;
  total_params: number;
};
type Mode = 'full' | 'lora' | 'torch-full' | 'torch-lora';

function runMode(m: Mode): Row {
  const py = m.startsWith('torch-');
  const [cmd, argv] = py
    ? [
        process.env.KILN_PYTHON ?? '/usr/bin/python3',
        [join(here, 'torch_lora.py'), '--threads', String(threads), '--config', configName, '--size', String(size), '--mode', m.slice(6)],
      ]
    : [process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args, '--child', m]];
  const out = execFileSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 20 });
  const row = JSON.parse(out.trim().split('\n').at(-1)!) as Row;
  return { ...row, mode: m };
}

async function main(): Promise<void> {
  const mode = opt('child');
  if (mode === 'full' || mode === 'lora') return child(mode);
  const modes = (opt('modes')?.split(',') ?? ['full', 'lora']) as Mode[];
  const file = join(here, 'results', 'lora.json');
  let previous: Array<Record<string, unknown>> = [];
  try {
    previous = (JSON.parse(readFileSync(file, 'utf8')) as { results: Array<Record<string, unknown>> }).results;
  } catch {
    // first run
  }
  const same = (r: Record<string, unknown>) => r.config === configName && r.latent_size === size;
  const result: Record<string, unknown> = {
    ...(previous.find(same) ?? {}),
    config: configName,
    latent_size: size,
    backend: 'wasm',
    threads,
    date: new Date().toISOString(),
  };
  for (const m of modes) {
    const r = runMode(m);
    result[m.replace('-', '_')] = { ...r, date: new Date().toISOString() };
    const mib = (b: number | undefined) => (b === undefined ? '—' : `${(b / 2 ** 20).toFixed(1)} MiB`);
    console.error(
      `${configName} ${m}: peak ${mib(r.peak_bytes)} (setup ${mib(r.setup_bytes)}), RSS peak ${mib(r.rss_peak_bytes)} ` +
        `(before the step ${mib(r.rss_setup_bytes ?? r.rss_base_bytes)}), ${r.ms.toFixed(0)} ms, ${r.trainable_params} trainable`,
    );
  }
  const get = (m: string) => result[m] as Row | undefined;
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : null);
  result.peak_ratio_lora_over_full = ratio(get('lora')?.peak_bytes, get('full')?.peak_bytes);
  result.rss_peak_ratio_lora_over_full = ratio(get('lora')?.rss_peak_bytes, get('full')?.rss_peak_bytes);
  result.torch_rss_peak_ratio_lora_over_full = ratio(get('torch_lora')?.rss_peak_bytes, get('torch_full')?.rss_peak_bytes);
  if (result.peak_ratio_lora_over_full !== null)
    console.error(`LoRA / full peak: ${(result.peak_ratio_lora_over_full as number).toFixed(3)}`);
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ results: [...previous.filter((r) => !same(r)), result] }, null, 2)}\n`);
}

await main();
