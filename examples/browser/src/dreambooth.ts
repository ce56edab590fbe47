// DreamBooth in the tab: the trainer's loss (`dreamBoothLoss`, the computation of diffusers'
// train_dreambooth.py) and `@kiln/nn`'s AdamW, on the UNet alone, with the text encoder and VAE
// frozen. The Node trainer (`@kiln/dreambooth-trainer/node`) adds folders, checkpoints and logs;
// none of that is needed here.
import * as k from '@kiln/tensor-core';
import { dreamBoothLoss } from '@kiln/dreambooth-trainer';
import { AdamW, clipGradNorm, serializeSafetensors } from '@kiln/nn';
import type { RgbaImage } from '@kiln/pipeline';
import { DDPMScheduler } from '@kiln/scheduler';
import type { DiagonalGaussianDistribution } from '@kiln/vae';
import type { LoadedModel } from './load-model.js';

export interface SessionOptions {
  /** The instance prompt, e.g. "a photo of sks star". */
  prompt: string;
  /** The instance images, [count, 3, side, side] in [-1, 1]. */
  pixels: Float32Array;
  count: number;
  side: number;
  learningRate: number;
  /** Seeds the noise, offset noise and timesteps (default 0). */
  seed?: number;
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
    // The training noise schedule is the model's scheduler config as a DDPM, as the Node trainer makes it.
    const { _class_name: _ignored, ...rest } = schedulerConfig;
    this.trainScheduler = DDPMScheduler.fromConfig(rest);
    this.predictionType = rest.prediction_type === 'v_prediction' ? 'v_prediction' : 'epsilon';
    // Frozen parts, computed once: the prompt's embedding (one row per image) and the VAE posterior.
    this.embeds = k.tidy(() => {
      const e = k.noGrad(() => pipe.encodePrompt([o.prompt]));
      return k.cat(
        Array.from({ length: o.count }, () => e),
        0,
      );
    });
    this.posterior = k.noGrad(() => pipe.vae.encode(k.tensor(o.pixels, { shape: [o.count, 3, o.side, o.side] })).latentDist);
    this.optimizer = new AdamW(pipe.unet.parameters(), { lr: o.learningRate, weightDecay: 1e-2 });
    this.generator = new k.Generator(o.seed ?? 0);
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
