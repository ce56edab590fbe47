// DreamBooth in the tab: the trainer's loss (`dreamBoothLoss`, the computation of diffusers'
// train_dreambooth.py) and `@kiln/nn`'s AdamW, on the UNet alone, with the text encoder and VAE
// frozen. The Node trainer (`@kiln/dreambooth-trainer/node`) adds folders, checkpoints and logs;
// none of that is needed here.
import * as k from '@kiln/tensor-core';
import { dreamBoothLoss } from '@kiln/dreambooth-trainer';
import { AdamW, clipGradNorm, loadWeights, serializeSafetensors } from '@kiln/nn';
import type { RgbaImage } from '@kiln/pipeline';
import { DDPMScheduler } from '@kiln/scheduler';
import type { DiagonalGaussianDistribution } from '@kiln/vae';
import type { LoadedModel } from './load-model.js';
import type { Restored, SavedSession } from './persist.js';

export interface SessionOptions {
  /** The instance prompt, e.g. "a photo of sks star". */
  prompt: string;
  /** The instance images at the model's resolution. */
  instances: RgbaImage[];
  side: number;
  learningRate: number;
  /** Seeds the noise, offset noise and timesteps (default 0). */
  seed?: number;
}

/** RGBA images → [N, 3, side, side] in [-1, 1], as the trainer's dataset scales pixels. */
function chw(images: readonly RgbaImage[], side: number): Float32Array {
  const n = side * side;
  const out = new Float32Array(images.length * 3 * n);
  images.forEach((im, b) => {
    if (im.width !== side || im.height !== side)
      throw new Error(`instance image ${b} is ${im.width}×${im.height}, the model wants ${side}×${side}`);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[(b * 3 + c) * n + i] = im.data[i * 4 + c] / 127.5 - 1;
  });
  return out;
}

/** The world's sampling: guidance 5 with rescale 0.7 (v-prediction with zero terminal SNR over-saturates without it). */
const GUIDANCE = 5;
const RESCALE = 0.7;
/** diffusers' train_dreambooth.py clips the gradient norm at 1. */
const MAX_GRAD_NORM = 1;

/** A training run on the loaded pipeline's UNet: its optimizer state lives across `trainStep` calls, so training can stop and resume. */
export class DreamBoothSession {
  readonly prompt: string;
  step = 0;
  /** The loss of every step so far. */
  readonly losses: number[] = [];
  readonly instances: RgbaImage[];
  /** Samples before the first step and after the latest run. */
  before: RgbaImage[] = [];
  after: RgbaImage[] = [];
  private readonly posterior: DiagonalGaussianDistribution;
  private readonly embeds: k.Tensor;
  private readonly optimizer: AdamW;
  private readonly generator: k.Generator;
  private readonly trainScheduler: DDPMScheduler;
  private readonly predictionType: 'epsilon' | 'v_prediction';

  constructor(
    private readonly model: LoadedModel,
    o: SessionOptions,
  ) {
    const { pipe, schedulerConfig } = model;
    this.prompt = o.prompt;
    this.instances = o.instances;
    const count = o.instances.length;
    // The training noise schedule is the model's scheduler config as a DDPM, as the Node trainer makes it.
    const { _class_name: _ignored, ...rest } = schedulerConfig;
    this.trainScheduler = DDPMScheduler.fromConfig(rest);
    this.predictionType = rest.prediction_type === 'v_prediction' ? 'v_prediction' : 'epsilon';
    // Frozen parts, computed once: the prompt's embedding (one row per image) and the VAE posterior.
    this.embeds = k.tidy(() => {
      const e = k.noGrad(() => pipe.encodePrompt([o.prompt]));
      return k.cat(
        Array.from({ length: count }, () => e),
        0,
      );
    });
    this.posterior = k.tidy(() => {
      const pixels = k.tensor(chw(o.instances, o.side), { shape: [count, 3, o.side, o.side] });
      return k.noGrad(() => pipe.vae.encode(pixels).latentDist);
    });
    this.optimizer = new AdamW(pipe.unet.parameters(), { lr: o.learningRate, weightDecay: 1e-2 });
    this.generator = new k.Generator(o.seed ?? 0);
  }

  /**
   * A session restored from a saved run: the UNet's weights, AdamW's state, the generator's
   * position and the history, so training goes on as if the page had not been reloaded.
   */
  static async restore(model: LoadedModel, o: Omit<SessionOptions, 'learningRate'>, saved: Restored): Promise<DreamBoothSession> {
    const s = new DreamBoothSession(model, { ...o, learningRate: saved.session.learningRate });
    await loadWeights(model.pipe.unet, saved.unet);
    s.optimizer.loadStateDict(saved.optimizer);
    for (const st of Object.values(saved.optimizer.state)) for (const v of Object.values(st)) if (typeof v !== 'number') v.dispose();
    s.generator.setState(saved.session.generator);
    s.step = saved.session.step;
    s.losses.push(...saved.session.losses);
    s.before = saved.session.before;
    s.after = saved.session.after;
    return s;
  }

  /** What {@link saveSession} keeps (the optimizer state's tensors are copies: dispose them after saving). */
  snapshot(modelUrl: string): { session: SavedSession; unet: Record<string, k.Tensor>; optimizer: ReturnType<AdamW['stateDict']> } {
    const session: SavedSession = {
      modelUrl,
      prompt: this.prompt,
      learningRate: this.optimizer.paramGroups[0].lr,
      step: this.step,
      losses: [...this.losses],
      generator: this.generator.getState(),
      before: this.before,
      after: this.after,
      instances: this.instances,
    };
    return { session, unet: this.model.pipe.unet.stateDict(), optimizer: this.optimizer.stateDict() };
  }

  setLearningRate(lr: number): void {
    for (const g of this.optimizer.paramGroups) g.lr = lr;
  }

  /** One optimizer step on all instance images; resolves to the loss. */
  async trainStep(): Promise<number> {
    const { unet, vae } = this.model.pipe;
    const params = unet.parameters();
    unet.train();
    const loss = k.tidy(() => {
      // A fresh latent sample per step, as diffusers samples the posterior each step.
      const latents = k.noGrad(() => this.posterior.sample(this.generator).mul(vae.config.scaling_factor));
      const terms = dreamBoothLoss({
        unet,
        scheduler: this.trainScheduler,
        latents,
        encoderHiddenStates: this.embeds,
        generator: this.generator,
        predictionType: this.predictionType,
        offsetNoise: false,
        snrGamma: null,
        withPrior: false,
        priorLossWeight: 1,
      });
      terms.loss.backward();
      return terms.loss.detach();
    });
    clipGradNorm(params, MAX_GRAD_NORM).dispose();
    this.optimizer.step();
    this.optimizer.zeroGrad();
    unet.eval();
    this.step++;
    const value = await loss.item();
    loss.dispose();
    if (!Number.isFinite(value)) throw new Error(`the loss is ${value} at step ${this.step}: lower the learning rate`);
    this.losses.push(value);
    return value;
  }

  /** Images of `prompt`, one per seed, with the world's sampling settings. */
  async sample(prompt: string, seeds: readonly number[], steps: number): Promise<RgbaImage[]> {
    const { pipe } = this.model;
    const side = (pipe.unet.config.sample_size ?? 8) * pipe.vaeScaleFactor;
    const out: RgbaImage[] = [];
    for (const seed of seeds) {
      const r = await pipe.txt2img({
        prompt,
        seed,
        numInferenceSteps: steps,
        guidanceScale: GUIDANCE,
        guidanceRescale: RESCALE,
        width: side,
        height: side,
      });
      r.images.dispose();
      out.push(...r.rgba);
    }
    return out;
  }

  /** The fine-tuned UNet as `diffusion_pytorch_model.safetensors` bytes (diffusers' names, float32). */
  async unetSafetensors(): Promise<Uint8Array> {
    return serializeSafetensors(this.model.pipe.unet.stateDict(), {
      format: 'pt',
      trained_by: 'kiln browser DreamBooth',
      step: String(this.step),
    });
  }

  dispose(): void {
    this.embeds.dispose();
    const d = this.posterior;
    for (const t of [d.parameters, d.mean, d.logvar, d.std, d.var]) t.dispose();
    this.optimizer.zeroGrad();
  }
}
