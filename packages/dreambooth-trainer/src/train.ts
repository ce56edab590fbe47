import * as k from '@kiln/tensor-core';
import { AdamW, clipGradNorm, getScheduler } from '@kiln/nn';
import type { Module } from '@kiln/nn';
import type { RunLogger } from '@kiln/tracking';
import {
  fingerprintOf,
  listCheckpoints,
  loadOptimizer,
  pruneCheckpoints,
  readCheckpointState,
  resolveCheckpoint,
  saveCheckpoint,
} from './checkpoint-io.js';
import { compatNotes, parseTrainerConfig } from './config.js';
import type { TrainerConfig, TrainerConfigInput } from './config.js';
import type { BatchRows } from './dataset.js';
import { OutputError, TrainingDivergedError } from './errors.js';
import { resolveEnvironment } from './environment.js';
import type { EnvironmentOptions, TrainerEnvironment } from './environment.js';
import { dreamBoothLoss } from './loss.js';
import { saveOutput } from './output.js';
import { encodeText, openSession } from './session.js';
import type { Session } from './session.js';
import { runValidation } from './validation.js';
import { loadModelWeights } from './storage/tensor-files.js';
import { LORA_WEIGHTS_NAME, TrainingLora } from './lora-training.js';
import { GradScaler } from './grad-scaler.js';
import { MixedPrecision, halfDTypeOf } from './mixed-precision.js';

/**
 * What `onStep` receives after each optimizer step.
 *
 * @example
 * ```ts
 * await trainDreamBooth(config, { onStep: (info: StepInfo) => console.log(info.step, info.loss) });
 * ```
 */
export interface StepInfo {
  /** Optimizer steps done (diffusers' global_step). */
  step: number;
  maxSteps: number;
  epoch: number;
  /** Mean loss over the step's micro-batches, and its terms. */
  loss: number;
  instanceLoss: number;
  priorLoss: number | null;
  lr: number;
  itPerSec: number;
  /** With `--mixed_precision fp16`: true when the gradients overflowed and the step was skipped (weights unchanged, loss scale backed off). */
  skipped?: boolean;
  /** With `--mixed_precision fp16`: the loss scale after this step. */
  lossScale?: number;
}

/**
 * Hooks and environment of {@link trainDreamBooth}: progress, stopping, and (in a browser, or to
 * train from memory) where the config's paths are and how the base model is loaded.
 *
 * @example
 * ```ts
 * const stop = new AbortController();
 * const hooks: TrainHooks = { signal: stop.signal, storage: memoryStorage(), log: (line) => console.log(line) };
 * await trainDreamBooth(config, hooks);
 * ```
 */
export interface TrainHooks extends EnvironmentOptions {
  /** Called after each optimizer step (awaited). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** Aborting stops at the next step boundary, after saving a checkpoint of that step. */
  signal?: AbortSignal;
  /** Notes and messages (default: stderr in Node, the console in a browser). */
  log?: (line: string) => void;
  /** The progress line after each step (default: none; the CLI prints it on stderr). */
  progress?: (line: string) => void;
}

/**
 * What a run ends with.
 *
 * @example
 * ```ts
 * const result: TrainResult = await trainDreamBooth(config);
 * if (!result.interrupted) console.log(`${result.step} steps, model in ${result.outputDir}`);
 * ```
 */
export interface TrainResult {
  /** Optimizer steps done. */
  step: number;
  /** True when stopped by `signal` (a checkpoint of `step` was saved); the model is not written. */
  interrupted: boolean;
  /** The loss of each optimizer step of this session, in order. */
  losses: number[];
  outputDir: string;
}

const fmtTime = (s: number) => (Number.isFinite(s) ? new Date(Math.max(0, s) * 1000).toISOString().slice(11, 19) : '--:--:--');

/** A latent sample `mean + std·ε` from VAE moments [N, 8, h, w] (diffusers' DiagonalGaussianDistribution), × scaling_factor. */
function sampleLatents(moments: k.Tensor, generator: k.Generator, scaling: number): k.Tensor {
  const [mean, logvar] = moments.to('float32').chunk(2, 1);
  const std = logvar.clamp(-30, 20).mul(0.5).exp();
  return mean.add(std.mul(k.randn(mean.shape, { generator }))).mul(scaling);
}

/**
 * DreamBooth fine-tuning of a Stable Diffusion 1.x diffusers folder, as diffusers'
 * `train_dreambooth.py` does it, with its options (see {@link parseTrainerConfig}): prior
 * preservation with generated class images, ε or v targets, offset noise, min-SNR weighting,
 * gradient accumulation and clipping, AdamW with diffusers' LR schedules, checkpoints that resume
 * with the identical loss curve, validation images, tracking, and the trained pipeline written to
 * `output_dir`.
 *
 * In Node its paths are files (and `pretrained_model_name_or_path` may be a Hub id or a single
 * file); in a browser they are folders of the Origin Private File System, or of any
 * {@link TrainerStorage} passed as `storage`, with the base model a diffusers folder there or
 * whatever `loadPipeline` returns. Checkpoints and the output are the same files either way.
 *
 * @example
 * ```ts
 * import { trainDreamBooth } from '@kiln/dreambooth-trainer';
 * const result = await trainDreamBooth(
 *   { pretrained_model_name_or_path: './sd15', instance_data_dir: './dog', instance_prompt: 'a photo of sks dog', output_dir: './dog-model', max_train_steps: 400, seed: 0 },
 *   { onStep: ({ step, loss }) => console.log(step, loss) },
 * );
 * ```
 * @example
 * In a browser, with the data and model in OPFS, stopping and resuming:
 * ```ts
 * import { opfsStorage, trainDreamBooth } from '@kiln/dreambooth-trainer';
 * const storage = await opfsStorage();
 * const stop = new AbortController();
 * const config = { pretrained_model_name_or_path: 'models/sd15', instance_data_dir: 'dog', instance_prompt: 'a photo of sks dog', output_dir: 'dog-model', checkpointing_steps: 50 };
 * await trainDreamBooth(config, { storage, signal: stop.signal }); // stop.abort() saves a checkpoint and returns
 * await trainDreamBooth({ ...config, resume_from_checkpoint: 'latest' }, { storage });
 * ```
 */
export async function trainDreamBooth(input: TrainerConfigInput | TrainerConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  return runTrainer(parseTrainerConfig(input), hooks);
}

/** Runs a validated config (DreamBooth, or text-to-image with `instance_prompt` as the caption fallback). */
export async function runTrainer(c: TrainerConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const env = await resolveEnvironment(hooks);
  const log = hooks.log ?? env.log;
  for (const note of compatNotes(c)) log(note);
  if ((c.mixed_precision === 'fp16' || c.mixed_precision === 'bf16') && c.backend !== 'webgpu')
    log(
      `--mixed_precision ${c.mixed_precision} on ${c.backend}: half precision saves memory there but runs on reference kernels, slower than float32`,
    );
  await k.useBackend(c.backend);
  const s = await openSession(c, env, log);
  try {
    return await trainSession(s, env, hooks, log);
  } finally {
    s.pipe.dispose();
  }
}

async function trainSession(s: Session, env: TrainerEnvironment, hooks: TrainHooks, log: (line: string) => void): Promise<TrainResult> {
  const c = s.config;
  const storage = s.storage;
  const join = storage.join.bind(storage);
  const { unet, textEncoder, vae } = s.pipe;
  if (c.gradient_checkpointing) unet.enableGradientCheckpointing();
  unet.train();
  if (c.train_text_encoder) textEncoder.train();
  const trained: Record<string, Module> = { unet };
  if (c.train_text_encoder) trained.text_encoder = textEncoder;
  // --lora: adapters on the attention projections; the base weights are frozen and stay as loaded.
  const lora = c.lora
    ? new TrainingLora(unet, c.train_text_encoder ? textEncoder : null, { rank: c.rank, dropout: c.lora_dropout, seed: s.seed })
    : null;
  const trainedParams = () => (lora ? lora.parameters() : Object.values(trained).flatMap((m) => m.parameters()));
  const fingerprint = fingerprintOf(trained);
  const batchSize = c.train_batch_size;
  const batchesPerEpoch = Math.ceil(s.dataset.length / batchSize);
  const batching = {
    train_batch_size: batchSize,
    gradient_accumulation_steps: c.gradient_accumulation_steps,
    dataset_length: s.dataset.length,
  };
  // A resume loads the weights first, in float32, so mixed precision's masters start from them exactly.
  let resumed: { dir: string; st: Awaited<ReturnType<typeof readCheckpointState>> } | null = null;
  if (c.resume_from_checkpoint !== null) {
    const dir = await resolveCheckpoint(c.resume_from_checkpoint, c.output_dir, storage);
    if (dir === null) log(`Checkpoint '${c.resume_from_checkpoint}' does not exist. Starting a new training run.`);
    else {
      const st = await readCheckpointState(storage, dir, fingerprint, batching);
      if (lora) {
        await lora.load(storage, join(dir, LORA_WEIGHTS_NAME));
        if (st.adapterGenerator) lora.generator.setState(st.adapterGenerator);
      } else for (const [name, m] of Object.entries(trained)) await loadModelWeights(storage, join(dir, name), m);
      resumed = { dir, st };
    }
  }
  // --mixed_precision: float32 masters in the optimizer; every model (trained or frozen) computes in half precision.
  const halfDType = halfDTypeOf(c.mixed_precision);
  const amp = halfDType
    ? new MixedPrecision({
        dtype: halfDType,
        trained: trainedParams,
        trainedModules: () => (lora ? [...lora.layers().values()].flatMap((l) => [l.loraA, l.loraB]) : Object.values(trained)),
        modules: [unet, textEncoder, vae],
        scaler: halfDType === 'float16' ? (resumed?.st.gradScaler ? GradScaler.fromState(resumed.st.gradScaler) : new GradScaler()) : null,
      })
    : null;
  const computeDType = amp?.dtype ?? 'float32';
  const params = amp ? amp.masters : trainedParams();
  const lr = c.scale_lr ? c.learning_rate * c.gradient_accumulation_steps * batchSize : c.learning_rate;
  // --text_encoder_lr: the text encoder in its own parameter group (a slower text encoder keeps the class prior better).
  const unetCount = unet.parameters().length;
  const groups =
    !lora && c.train_text_encoder && c.text_encoder_lr !== null
      ? [
          { params: params.slice(0, unetCount) },
          { params: params.slice(unetCount), lr: c.scale_lr ? (c.text_encoder_lr * lr) / c.learning_rate : c.text_encoder_lr },
        ]
      : params;
  const optimizer = new AdamW(groups, { lr, betas: [c.adam_beta1, c.adam_beta2], weightDecay: c.adam_weight_decay, eps: c.adam_epsilon });
  const updatesPerEpoch = Math.ceil(batchesPerEpoch / c.gradient_accumulation_steps);
  const maxSteps = c.max_train_steps ?? c.num_train_epochs * updatesPerEpoch;
  const numEpochs = Math.ceil(maxSteps / updatesPerEpoch);
  const lrScheduler = getScheduler(c.lr_scheduler, {
    optimizer,
    numWarmupSteps: c.lr_warmup_steps,
    numTrainingSteps: maxSteps,
    numCycles: c.lr_num_cycles,
    power: c.lr_power,
  });
  const generator = new k.Generator(s.seed);
  let globalStep = 0;
  let epoch = 0;
  let batchIndex = 0;

  if (resumed) {
    const { dir, st } = resumed;
    await loadOptimizer(storage, dir, optimizer, st.optimizer);
    lrScheduler.loadStateDict(st.lrScheduler);
    generator.setState(st.generator);
    s.dataset.options.seed = st.dataSeed;
    ({ globalStep, epoch, batchIndex } = st);
    log(`Resuming from checkpoint ${dir} at step ${globalStep}`);
  }

  // Frozen parts: cached text embeddings (per prompt) and, with --cache_latents, VAE moments.
  const textCache = new Map<string, k.Tensor>();
  const latentCache = new Map<string, k.Tensor>();
  const cached: k.Tensor[] = [];
  const scaling = vae.config.scaling_factor;
  const R = c.resolution;
  const pixelsOf = (kind: 0 | 1, rows: number[], ep: number) =>
    k
      .tensor(Float32Array.from(rows.flatMap((i) => Array.from(s.dataset.pixels(kind, i, ep)))), { shape: [rows.length, 3, R, R] })
      .to(computeDType);
  const momentsOf = (kind: 0 | 1, rows: number[], ep: number): k.Tensor => {
    if (!c.cache_latents) return k.noGrad(() => vae.encode(pixelsOf(kind, rows, ep)).latentDist.parameters);
    // The rows not cached yet are encoded in one batch (an image's moments do not depend on its batch).
    const missing = [...new Set(rows)].filter((i) => !latentCache.has(`${kind}:${i}`));
    if (missing.length > 0) {
      const all = k.tidy(() => k.noGrad(() => vae.encode(pixelsOf(kind, missing, 0)).latentDist.parameters));
      missing.forEach((i, j) => {
        const m = k.keep(k.tidy(() => all.narrow(0, j, 1).clone()));
        latentCache.set(`${kind}:${i}`, m);
        cached.push(m);
      });
      all.dispose();
    }
    return k.cat(
      rows.map((i) => latentCache.get(`${kind}:${i}`)!),
      0,
    );
  };
  const promptsOf = (rows: BatchRows) => [
    ...rows.instance.map((i) => s.dataset.instances[i].prompt),
    ...rows.klass.map((i) => s.dataset.classes![i].prompt),
  ];
  const textOf = (prompts: string[]): k.Tensor => {
    if (c.train_text_encoder) return encodeText(s, prompts);
    return k.cat(
      prompts.map((p) => {
        let e = textCache.get(p);
        if (!e) {
          e = k.keep(k.tidy(() => k.noGrad(() => encodeText(s, [p]))));
          textCache.set(p, e);
          cached.push(e);
        }
        return e;
      }),
      0,
    );
  };

  const tracker: RunLogger = env.openTracker(
    join(c.output_dir, c.logging_dir),
    c.report_to === 'all' ? ['tensorboard', 'html'] : c.report_to === 'tensorboard' ? ['tensorboard'] : [],
    log,
  );
  tracker.logHparams({ ...c });
  const losses: number[] = [];
  const started = performance.now();
  const startStep = globalStep;
  let savedAt = -1;
  const checkpoint = async () => {
    for (const removed of await pruneCheckpoints(storage, c.output_dir, c.checkpoints_total_limit)) log(`removed ${removed}`);
    const path = join(c.output_dir, `checkpoint-${globalStep}`);
    const write = () =>
      saveCheckpoint(
        storage,
        path,
        trained,
        optimizer,
        lrScheduler,
        {
          globalStep,
          epoch,
          batchIndex,
          dataOrder: s.dataset.order(epoch),
          generator: generator.getState(),
          dataSeed: s.dataset.options.seed,
          fingerprint,
          batching,
          ...(lora ? { adapterGenerator: lora.generator.getState() } : {}),
          ...(amp?.scaler ? { gradScaler: amp.scaler.stateDict() } : {}),
        },
        lora ? { writeWeights: (dir) => lora.save(storage, join(dir, LORA_WEIGHTS_NAME)) } : {},
      );
    await (amp ? amp.withMasterWeights(write) : write());
    savedAt = globalStep;
    log(`Saved state to ${path}`);
  };

  try {
    outer: for (; epoch < numEpochs; epoch++, batchIndex = 0) {
      const batches = s.dataset.batches(epoch, batchSize);
      let sums = { loss: 0, inst: 0, prior: 0, n: 0 };
      while (batchIndex < batches.length) {
        if (globalStep >= maxSteps) break outer;
        const rows = batches[batchIndex];
        const withPrior = rows.klass.length > 0;
        const terms = k.tidy(() => {
          const moments = withPrior
            ? k.cat([momentsOf(0, rows.instance, epoch), momentsOf(1, rows.klass, epoch)], 0)
            : momentsOf(0, rows.instance, epoch);
          const latents = sampleLatents(moments, generator, scaling);
          const out = dreamBoothLoss({
            unet,
            scheduler: s.trainScheduler,
            latents,
            encoderHiddenStates: textOf(promptsOf(rows)),
            generator,
            predictionType: s.predictionType,
            offsetNoise: c.offset_noise,
            snrGamma: c.snr_gamma,
            withPrior,
            priorLossWeight: c.prior_loss_weight,
          });
          const loss = out.loss.div(c.gradient_accumulation_steps);
          (amp ? amp.scaleLoss(loss) : loss).backward();
          return k.stack([out.loss, out.instanceLoss, out.priorLoss ?? k.zeros([])]).detach();
        });
        amp?.collectGrads();
        const [loss, inst, prior] = (await terms.toArray()) as number[];
        terms.dispose();
        batchIndex++;
        const bad = !Number.isFinite(inst) ? 'instance loss' : withPrior && !Number.isFinite(prior) ? 'prior-preservation loss' : null;
        if (bad) {
          optimizer.zeroGrad();
          const last = (await listCheckpoints(c.output_dir, storage)).at(-1);
          throw new TrainingDivergedError(
            `step ${globalStep + 1}: the ${bad} is ${bad === 'instance loss' ? inst : prior}; training stopped without applying it. ${last ? `The last good checkpoint is ${last.path}.` : 'No checkpoint was saved yet.'} Lower --learning_rate or check the data.`,
            globalStep + 1,
            bad,
          );
        }
        sums = { loss: sums.loss + loss, inst: sums.inst + inst, prior: sums.prior + prior, n: sums.n + 1 };
        const sync = batchIndex % c.gradient_accumulation_steps === 0 || batchIndex === batches.length;
        if (!sync) continue;
        let skipped = false;
        if (amp) skipped = !(await amp.step(optimizer, c.max_grad_norm));
        else {
          clipGradNorm(params, c.max_grad_norm).dispose();
          optimizer.step();
        }
        // As accelerate: a skipped optimizer step does not advance the LR schedule, but counts as a global step.
        if (!skipped) lrScheduler.step();
        optimizer.zeroGrad();
        globalStep++;
        if (skipped) log(`step ${globalStep}: float16 gradients overflowed; step skipped, loss scale now ${amp!.scaler!.scale}`);
        const info: StepInfo = {
          step: globalStep,
          maxSteps,
          epoch,
          loss: sums.loss / sums.n,
          instanceLoss: sums.inst / sums.n,
          priorLoss: withPrior ? sums.prior / sums.n : null,
          lr: lrScheduler.getLastLr()[0],
          itPerSec: (globalStep - startStep) / ((performance.now() - started) / 1000),
          ...(amp?.scaler ? { skipped, lossScale: amp.scaler.scale } : {}),
        };
        sums = { loss: 0, inst: 0, prior: 0, n: 0 };
        losses.push(info.loss);
        const mem = k.memory();
        tracker.log(globalStep, {
          loss: info.loss,
          instance_loss: info.instanceLoss,
          ...(info.priorLoss === null ? {} : { prior_loss: info.priorLoss }),
          lr: info.lr,
          'it/s': info.itPerSec,
          live_mb: mem.liveBytes / 2 ** 20,
          peak_mb: mem.peakBytes / 2 ** 20,
          ...(amp?.scaler ? { loss_scale: amp.scaler.scale, step_skipped: skipped ? 1 : 0 } : {}),
        });
        hooks.progress?.(
          `step ${globalStep}/${maxSteps} loss ${info.loss.toFixed(4)} lr ${info.lr.toExponential(2)} ${info.itPerSec.toFixed(2)} it/s ETA ${fmtTime((maxSteps - globalStep) / info.itPerSec)}`,
        );
        if (globalStep % c.checkpointing_steps === 0) await checkpoint();
        if (c.validation_prompt !== null && globalStep % c.validation_steps === 0) await runValidation(s, globalStep, tracker);
        await hooks.onStep?.(info);
        if (hooks.signal?.aborted) {
          if (savedAt !== globalStep) await checkpoint();
          log(`stopped at step ${globalStep}; resume with --resume_from_checkpoint latest`);
          return { step: globalStep, interrupted: true, losses, outputDir: c.output_dir };
        }
      }
    }
    try {
      const save = () => saveOutput(s, { steps: globalStep, log, lora });
      await (amp ? amp.withMasterWeights(save) : save());
    } catch (e) {
      if (e instanceof k.KilnError) throw e;
      throw new OutputError(
        `${c.output_dir}: the trained model could not be written (${(e as Error).message}); the checkpoints in it are intact, so --resume_from_checkpoint latest can write it again`,
        { cause: e },
      );
    }
    if (c.validation_prompt !== null && globalStep % c.validation_steps !== 0) await runValidation(s, globalStep, tracker);
    return { step: globalStep, interrupted: false, losses, outputDir: c.output_dir };
  } finally {
    optimizer.zeroGrad();
    optimizer.dispose();
    amp?.dispose();
    for (const t of cached) t.dispose();
    await tracker.close();
  }
}
