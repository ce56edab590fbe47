import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { AdamW, clipGradNorm, getScheduler } from '@kiln/nn';
import { AutoencoderKL } from '@kiln/vae';
import { openRun } from '@kiln/tracking/node';
import { z } from 'zod';
import {
  listCheckpoints,
  loadOptimizer,
  pruneCheckpoints,
  readCheckpointState,
  resolveCheckpoint,
  saveCheckpoint,
  fingerprintOf,
} from './checkpoint-io.js';
import { optionRows, readFlags } from './args.js';
import { DreamBoothDataset } from './dataset.js';
import { TrainerConfigError, TrainingDivergedError } from './errors.js';
import { loadImageFolder } from './image-folder.js';
import { checkOutputDir } from './session.js';
import { nodeStorage } from './storage/node-storage.js';
import { loadTrainedWeights } from './weights.js';

const str = z.string().min(1);
const int = (min: number) => z.number().int().min(min);

/** The options of {@link trainVae}: an `AutoencoderKL` trained on a folder of images. */
export const VaeTrainerConfigSchema = z
  .object({
    /** A diffusers VAE folder to start from, or null to start from `vae_config`'s random init. */
    pretrained_vae_name_or_path: str.nullable().default(null),
    /** A VAE `config.json` (diffusers' fields) for training from scratch. */
    vae_config: str.nullable().default(null),
    train_data_dir: str,
    output_dir: str.default('vae-model'),
    overwrite_output_dir: z.boolean().default(false),
    seed: int(0).default(0),
    resolution: int(8).default(256),
    center_crop: z.boolean().default(true),
    random_flip: z.boolean().default(false),
    train_batch_size: int(1).default(16),
    max_train_steps: int(1).default(1000),
    learning_rate: z.number().positive().default(4.5e-6),
    lr_scheduler: z
      .enum(['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'])
      .default('constant'),
    lr_warmup_steps: int(0).default(0),
    /** The LR schedule's length (default: max_train_steps); longer stops partway along it, as a run cut short would. */
    lr_schedule_steps: int(1).nullable().default(null),
    adam_beta1: z.number().default(0.9),
    adam_beta2: z.number().default(0.999),
    adam_weight_decay: z.number().default(1e-2),
    adam_epsilon: z.number().default(1e-8),
    max_grad_norm: z.number().default(1.0),
    /** Weight of the KL term (summed over the latent, averaged over the batch); SD's autoencoders used 1e-6. */
    kl_weight: z.number().min(0).default(1e-6),
    checkpointing_steps: int(1).default(500),
    checkpoints_total_limit: int(1).nullable().default(null),
    resume_from_checkpoint: str.nullable().default(null),
    backend: z.enum(['wasm', 'cpu', 'webgpu']).default('wasm'),
  })
  .strict()
  .refine((c) => (c.pretrained_vae_name_or_path === null) !== (c.vae_config === null), {
    message: 'give exactly one of pretrained_vae_name_or_path (fine-tune) and vae_config (from scratch)',
    path: ['vae_config'],
  });
export type VaeTrainerConfig = z.output<typeof VaeTrainerConfigSchema>;
export type VaeTrainerConfigInput = z.input<typeof VaeTrainerConfigSchema>;

/** What a VAE run ends with. */
export interface VaeTrainResult {
  step: number;
  interrupted: boolean;
  /** Per optimizer step: the reconstruction MSE (pixels in [−1, 1]). */
  losses: number[];
  /** The scaling_factor written to the output config: 1 / std of the latents of a batch of training images. */
  scalingFactor: number;
}

/**
 * Trains diffusers' `AutoencoderKL` on a folder of images: reconstruction MSE plus `kl_weight` × the
 * KL term, AdamW, checkpoints that resume exactly (`checkpoint-N/vae`), and, at the end, the VAE
 * written to `output_dir` as a diffusers folder whose `scaling_factor` makes the latents unit
 * variance (how Stable Diffusion's 0.18215 was chosen). Node only.
 *
 * @example
 * ```ts
 * await trainVae({ vae_config: 'vae.json', train_data_dir: 'images', output_dir: 'vae', resolution: 32, max_train_steps: 2000 });
 * ```
 */
export async function trainVae(
  input: VaeTrainerConfigInput | VaeTrainerConfig,
  hooks: { onStep?: (step: number, loss: number) => void | Promise<void>; signal?: AbortSignal; log?: (line: string) => void } = {},
): Promise<VaeTrainResult> {
  const parsed = VaeTrainerConfigSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new TrainerConfigError(`train-vae: ${i.path.join('.') || 'config'}: ${i.message}`, { field: String(i.path[0] ?? '') });
  }
  const c = parsed.data;
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  await k.useBackend(c.backend);
  const storage = nodeStorage();
  await checkOutputDir(c, storage);
  const images = await loadImageFolder(c.train_data_dir, { prompt: '', minSide: Math.ceil(c.resolution / 4), what: 'training', storage });
  const data = new DreamBoothDataset(images, null, {
    resolution: c.resolution,
    centerCrop: c.center_crop,
    randomFlip: c.random_flip,
    seed: c.seed,
  });
  let vae: AutoencoderKL;
  if (c.pretrained_vae_name_or_path !== null) vae = await AutoencoderKL.fromPretrained(c.pretrained_vae_name_or_path);
  else {
    const config = JSON.parse(
      await readFile(c.vae_config!, 'utf8').catch((e) => {
        throw new TrainerConfigError(`vae_config: cannot read ${c.vae_config} (${(e as Error).message})`, { field: 'vae_config' });
      }),
    ) as Record<string, unknown>;
    k.manualSeed(c.seed);
    vae = new AutoencoderKL(config);
  }
  const trained = { vae };
  const params = vae.parameters();
  const optimizer = new AdamW(params, {
    lr: c.learning_rate,
    betas: [c.adam_beta1, c.adam_beta2],
    weightDecay: c.adam_weight_decay,
    eps: c.adam_epsilon,
  });
  const lrScheduler = getScheduler(c.lr_scheduler, {
    optimizer,
    numWarmupSteps: c.lr_warmup_steps,
    numTrainingSteps: c.lr_schedule_steps ?? c.max_train_steps,
  });
  const generator = new k.Generator(c.seed);
  const fingerprint = fingerprintOf(trained);
  const B = c.train_batch_size;
  const batching = { train_batch_size: B, gradient_accumulation_steps: 1, dataset_length: data.length };
  let step = 0;
  let epoch = 0;
  let batchIndex = 0;
  if (c.resume_from_checkpoint !== null) {
    const dir = await resolveCheckpoint(c.resume_from_checkpoint, c.output_dir, storage);
    if (dir !== null) {
      const st = await readCheckpointState(storage, dir, fingerprint, batching);
      await loadTrainedWeights(vae, join(dir, 'vae'));
      await loadOptimizer(storage, dir, optimizer, st.optimizer);
      lrScheduler.loadStateDict(st.lrScheduler);
      generator.setState(st.generator);
      ({ globalStep: step, epoch, batchIndex } = st);
      log(`Resuming from checkpoint ${dir} at step ${step}`);
    }
  }
  const R = c.resolution;
  const batchOf = (rows: number[], ep: number) =>
    k.tensor(Float32Array.from(rows.flatMap((i) => Array.from(data.pixels(0, i, ep)))), { shape: [rows.length, 3, R, R] });
  const tracker = openRun(join(c.output_dir, 'logs'));
  tracker.logHparams({ ...c });
  const checkpoint = async () => {
    for (const removed of await pruneCheckpoints(storage, c.output_dir, c.checkpoints_total_limit)) log(`removed ${removed}`);
    const path = join(c.output_dir, `checkpoint-${step}`);
    await saveCheckpoint(storage, path, trained, optimizer, lrScheduler, {
      globalStep: step,
      epoch,
      batchIndex,
      dataOrder: data.order(epoch),
      generator: generator.getState(),
      dataSeed: c.seed,
      fingerprint,
      batching,
    });
    log(`Saved state to ${path}`);
  };
  const losses: number[] = [];
  vae.train();
  try {
    while (step < c.max_train_steps) {
      const batches = data.batches(epoch, B);
      for (; batchIndex < batches.length && step < c.max_train_steps; batchIndex++) {
        const terms = k.tidy(() => {
          const x = batchOf(batches[batchIndex].instance, epoch);
          const dist = vae.encode(x).latentDist;
          const recon = k.mseLoss(vae.decode(dist.sample(generator)).sample, x);
          const kl = dist.kl().mean();
          recon.add(kl.mul(c.kl_weight)).backward();
          return k.stack([recon, kl]).detach();
        });
        const [recon, kl] = (await terms.toArray()) as number[];
        terms.dispose();
        if (!Number.isFinite(recon) || !Number.isFinite(kl)) {
          optimizer.zeroGrad();
          const last = (await listCheckpoints(c.output_dir)).at(-1);
          throw new TrainingDivergedError(
            `step ${step + 1}: the ${Number.isFinite(recon) ? 'KL term' : 'reconstruction loss'} is ${Number.isFinite(recon) ? kl : recon}; training stopped without applying it. ${last ? `The last good checkpoint is ${last.path}.` : 'No checkpoint was saved yet.'} Lower --learning_rate.`,
            step + 1,
            Number.isFinite(recon) ? 'kl' : 'reconstruction',
          );
        }
        clipGradNorm(params, c.max_grad_norm).dispose();
        optimizer.step();
        lrScheduler.step();
        optimizer.zeroGrad();
        step++;
        losses.push(recon);
        tracker.log(step, { recon_mse: recon, psnr: 10 * Math.log10(4 / recon), kl, lr: lrScheduler.getLastLr()[0] });
        await hooks.onStep?.(step, recon);
        if (step % c.checkpointing_steps === 0) await checkpoint();
        if (hooks.signal?.aborted) {
          batchIndex++;
          await checkpoint();
          return { step, interrupted: true, losses, scalingFactor: vae.config.scaling_factor };
        }
      }
      if (batchIndex >= batches.length) {
        epoch++;
        batchIndex = 0;
      }
    }
    vae.eval();
    const scalingFactor = await latentScale(vae, batchOf(data.batches(0, Math.min(256, data.length))[0].instance, 0));
    const config = { ...vae.config, scaling_factor: scalingFactor };
    const { savePretrained } = await import('@kiln/nn/node');
    await savePretrained(c.output_dir, {
      config: { _class_name: 'AutoencoderKL', _diffusers_version: '0.31.0', ...config },
      weights: vae.stateDict(),
    });
    return { step, interrupted: false, losses, scalingFactor };
  } finally {
    optimizer.zeroGrad();
    optimizer.dispose();
    vae.dispose();
    await tracker.close();
  }
}

/** 1 / std of the posterior means of `x`, as Stable Diffusion's scaling factor was measured. */
async function latentScale(vae: AutoencoderKL, x: k.Tensor): Promise<number> {
  const std = k.tidy(() => k.noGrad(() => vae.encode(x).latentDist.mean.std()));
  x.dispose();
  const s = await std.item();
  std.dispose();
  return Number((1 / s).toPrecision(6));
}

/**
 * Parses `kiln train-vae` flags (`--config run.yaml` too); validation is {@link trainVae}'s.
 *
 * @example
 * ```ts
 * const options = parseVaeTrainerArgs(['--vae_config', 'vae.json', '--train_data_dir', 'images']);
 * ```
 */
export function parseVaeTrainerArgs(argv: readonly string[]): VaeTrainerConfigInput {
  return readFlags(argv, VaeTrainerConfigSchema.shape).options as VaeTrainerConfigInput;
}

const VAE_HELP: Record<string, string> = {
  pretrained_vae_name_or_path: 'a diffusers VAE folder to fine-tune',
  vae_config: 'a VAE config.json to train from scratch',
  train_data_dir: 'a folder of images',
  kl_weight: 'weight of the KL term (SD used 1e-6)',
  lr_schedule_steps: 'the LR schedule length (default max_train_steps)',
};

/** `kiln train-vae --help`. */
export function vaeTrainerHelp(): string {
  return `kiln train-vae (--vae_config FILE | --pretrained_vae_name_or_path DIR) --train_data_dir DIR [options]

Trains an AutoencoderKL on a folder of images: reconstruction MSE + kl_weight × KL, AdamW,
resumable checkpoints; writes a diffusers VAE folder with a measured scaling_factor.

options:
${optionRows(VaeTrainerConfigSchema.shape, VAE_HELP)}`;
}
