import * as k from '@kiln/tensor-core';
import { Conv2d, Module } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { parseVAEConfig } from './config.js';
import type { VAEConfig, VAEConfigInput } from './config.js';
import { DiagonalGaussianDistribution } from './distribution.js';
import { LDM_VAE_PREFIX, ldmVAEKey } from './single-file.js';
import { Decoder, Encoder } from './vae.js';
import type { Trace } from './vae.js';

/** Options of {@link AutoencoderKL.encode} and {@link AutoencoderKL.decode}. @example vae.encode(image, { trace: (name, value) => console.log(name, value.shape) }); */
export interface VAEForwardOptions {
  /** Called with each block's output, named as diffusers' module paths (`encoder.down_blocks.0`, `quant_conv`, …). */
  trace?: Trace;
}

/** Options of {@link AutoencoderKL.fromPretrained} (diffusers' `from_pretrained` arguments). @example await AutoencoderKL.fromPretrained('./sd15', { subfolder: 'vae', dtype: 'float32' }); */
export interface VAEPretrainedOptions {
  /** Folder inside `dir` (`'vae'` in a pipeline folder). */
  subfolder?: string;
  /** Parameter dtype (default: float32). */
  dtype?: k.DType;
  /** Weight-file variant: `'fp16'` reads `diffusion_pytorch_model.fp16.safetensors`. */
  variant?: string;
}

/**
 * diffusers' `AutoencoderKL`, the Stable Diffusion VAE: `encode(x)` gives the latent posterior,
 * `decode(z)` the image. Built from diffusers' `config.json` fields with diffusers' state-dict
 * keys; checkpoints with the old attention names (`query/key/value/proj_attn`) load too. As in
 * diffusers, callers apply `config.scaling_factor`.
 *
 * @example
 * ```ts
 * const vae = await AutoencoderKL.fromPretrained('./stable-diffusion-v1-5', { subfolder: 'vae' });
 * const latents = vae.encode(image).latentDist.sample(0).mul(vae.config.scaling_factor);
 * const { sample } = vae.decode(latents.div(vae.config.scaling_factor));
 * ```
 */
export class AutoencoderKL extends Module {
  readonly config: VAEConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;

  constructor(config: VAEConfigInput = {}, options: FactoryOptions = {}) {
    super();
    const c = (this.config = parseVAEConfig(config));
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    const z = c.latent_channels;
    this.encoder = this.registerModule('encoder', new Encoder(c, f));
    this.decoder = this.registerModule('decoder', new Decoder(c, f));
    this.quantConv = c.use_quant_conv ? this.registerModule('quant_conv', new Conv2d(2 * z, 2 * z, 1, f)) : null;
    this.postQuantConv = c.use_post_quant_conv ? this.registerModule('post_quant_conv', new Conv2d(z, z, 1, f)) : null;
  }

  /**
   * Encodes images [N, in_channels, H, W] (values in [−1, 1]) to the latent posterior, whose
   * mean is [N, latent_channels, H/2^(levels−1), W/2^(levels−1)].
   *
   * @example
   * ```ts
   * const { latentDist } = vae.encode(image);
   * latentDist.mean.shape; // [1, 4, 64, 64] for a 512² image
   * ```
   */
  encode(x: k.Tensor, options: VAEForwardOptions = {}): { latentDist: DiagonalGaussianDistribution } {
    const c = this.config;
    if (x.ndim !== 4 || x.shape[1] !== c.in_channels) {
      throw new k.ShapeError(`AutoencoderKL.encode: input must be [N, ${c.in_channels}, H, W], got [${x.shape.join(', ')}]`);
    }
    const trace = options.trace ?? (() => {});
    let moments = this.encoder.forward(x, trace);
    if (this.quantConv) {
      moments = this.quantConv.forward(moments);
      trace('quant_conv', moments);
    }
    return { latentDist: new DiagonalGaussianDistribution(moments) };
  }

  /**
   * Decodes latents [N, latent_channels, h, w] to images [N, out_channels, h·2^(levels−1), …].
   *
   * @example
   * ```ts
   * const { sample } = vae.decode(latents.div(vae.config.scaling_factor));
   * ```
   */
  decode(z: k.Tensor, options: VAEForwardOptions = {}): { sample: k.Tensor } {
    const c = this.config;
    if (z.ndim !== 4 || z.shape[1] !== c.latent_channels) {
      throw new k.ShapeError(`AutoencoderKL.decode: latents must be [N, ${c.latent_channels}, h, w], got [${z.shape.join(', ')}]`);
    }
    const trace = options.trace ?? (() => {});
    if (this.postQuantConv) {
      z = this.postQuantConv.forward(z);
      trace('post_quant_conv', z);
    }
    return { sample: this.decoder.forward(z, trace) };
  }

  /**
   * Encodes and decodes the posterior's mode (diffusers' `forward(sample, sample_posterior=False)`).
   *
   * @example
   * ```ts
   * const { sample: reconstruction } = vae.forward(image);
   * ```
   */
  forward(x: k.Tensor): { sample: k.Tensor } {
    return this.decode(this.encode(x).latentDist.mode());
  }

  /**
   * Turns on gradient checkpointing for each encoder and decoder block (down, mid and up blocks
   * are recomputed during backward).
   *
   * @example
   * ```ts
   * vae.enableGradientCheckpointing();
   * ```
   */
  enableGradientCheckpointing(enabled = true): this {
    this.encoder.gradientCheckpointing = enabled;
    this.decoder.gradientCheckpointing = enabled;
    return this;
  }

  /**
   * Loads the VAE of an SD 1.x single-file checkpoint (`first_stage_model.*` in the original LDM
   * layout); other parts of the file are ignored. `config` defaults to SD 1.x's VAE. Node only.
   *
   * @example
   * ```ts
   * const vae = await AutoencoderKL.fromSingleFile('./v1-5-pruned-emaonly.safetensors');
   * ```
   */
  static async fromSingleFile(path: string, options: { config?: VAEConfigInput; dtype?: k.DType } = {}): Promise<AutoencoderKL> {
    const { readVAESingleFile } = await import('./single-file-node.js');
    return readVAESingleFile(path, () => new AutoencoderKL(options.config ?? {}, { dtype: options.dtype }));
  }

  /**
   * The state dict under LDM names with the `first_stage_model.` prefix, for writing an SD 1.x
   * single-file checkpoint. The attention projections are reshaped to LDM's 1×1 convolutions
   * (views of the live parameters, no copies).
   *
   * @example
   * ```ts
   * await saveSafetensors('model.safetensors', { ...unet.ldmStateDict(), ...vae.ldmStateDict() });
   * ```
   */
  ldmStateDict(): Record<string, k.Tensor> {
    const out: Record<string, k.Tensor> = {};
    for (const [key, t] of Object.entries(this.stateDict())) {
      const ldm = ldmVAEKey(key, t.shape, this.config)!;
      out[LDM_VAE_PREFIX + ldm.key] = ldm.shape ? k.noGrad(() => t.reshape(ldm.shape!)) : t;
    }
    return out;
  }

  /**
   * Loads a diffusers model folder: `config.json` and `diffusion_pytorch_model[.variant].safetensors`
   * (or its sharded index), tensor by tensor into an uninitialised model, converting the old
   * attention names as diffusers does. Node only.
   *
   * @example
   * ```ts
   * const vae = await AutoencoderKL.fromPretrained('./sd15', { subfolder: 'vae', dtype: 'float16', variant: 'fp16' });
   * ```
   */
  static async fromPretrained(dir: string, options: VAEPretrainedOptions = {}): Promise<AutoencoderKL> {
    const { readVAEFolder } = await import('#node-only');
    return readVAEFolder(dir, options, (c) => new AutoencoderKL(c, { dtype: options.dtype }));
  }

  /**
   * Writes `config.json` and `diffusion_pytorch_model[.variant].safetensors` (sharded above
   * `maxShardBytes`) into `dir`, each atomically. Node only.
   *
   * @example
   * ```ts
   * await vae.savePretrained('./out/vae');
   * ```
   */
  async savePretrained(dir: string, options: { variant?: string; maxShardBytes?: number } = {}): Promise<void> {
    const { savePretrained } = await import('@kiln/nn/node');
    const config = { _class_name: 'AutoencoderKL', _diffusers_version: '0.31.0', ...this.config };
    await savePretrained(dir, { ...options, config, weights: this.stateDict() });
  }
}
