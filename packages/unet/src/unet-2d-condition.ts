import * as k from '@kiln/tensor-core';
import { Conv2d, GroupNorm, Module, ModuleList, normSilu } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { parseUNetConfig, perBlock } from './config.js';
import type { UNetConfig, UNetConfigInput } from './config.js';
import { TimestepEmbedding, Timesteps } from './embeddings.js';
import { LDM_UNET_PREFIX, ldmUNetKey } from './single-file.js';
import { DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D } from './unet-2d-blocks.js';
import type { BlockOptions } from './unet-2d-blocks.js';

/** What {@link UNet2DConditionModel.forward} returns (diffusers' `UNet2DConditionOutput`). @example const { sample } = unet.forward(latents, 999, context); */
export interface UNet2DConditionOutput {
  /** `[N, out_channels, H, W]`: the predicted noise (or v / sample, per the scheduler's prediction type). */
  sample: k.Tensor;
}

/** Options of {@link UNet2DConditionModel.forward}. @example unet.forward(latents, t, context, { trace: (name, value) => console.log(name, value.shape) }); */
export interface UNetForwardOptions {
  /**
   * Called with each top-level block's output on this call, named as diffusers' module paths
   * (`conv_in`, `down_blocks.0.0`, `down_blocks.0.1.2`, `mid_block`, …), to find where a port
   * first diverges from a reference.
   */
  trace?: (name: string, value: k.Tensor) => void;
}

/** Options of {@link UNet2DConditionModel.fromPretrained} (diffusers' `from_pretrained` arguments). @example await UNet2DConditionModel.fromPretrained('./sd15', { subfolder: 'unet', variant: 'fp16', dtype: 'float16' }); */
export interface PretrainedOptions {
  /** Folder inside `dir` (`'unet'` in a pipeline folder). */
  subfolder?: string;
  /** Parameter dtype (default: float32). */
  dtype?: k.DType;
  /** Weight-file variant: `'fp16'` reads `diffusion_pytorch_model.fp16.safetensors`. */
  variant?: string;
}

/** A timestep per batch row: a number, a list, or a 0-d/1-d tensor (int or float). @example unet.forward(latents, 999, ctx); unet.forward(latents, [999, 500], ctx); unet.forward(latents, k.randint(0, 1000, [2]), ctx); */
export type Timestep = number | readonly number[] | k.Tensor;

/**
 * diffusers' `UNet2DConditionModel` for Stable Diffusion 1.x: `forward(sample, timestep,
 * encoderHiddenStates)` predicts the noise of `sample`. Built from diffusers' `config.json`
 * fields; its state-dict keys are diffusers' (`down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight`, …).
 *
 * @example
 * ```ts
 * const unet = await UNet2DConditionModel.fromPretrained('./stable-diffusion-v1-5', { subfolder: 'unet' });
 * const { sample: noisePred } = unet.forward(latents, 999, textEmbeddings); // [1, 4, 64, 64]
 * ```
 */
export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  readonly convIn: Conv2d;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  readonly downBlocks: ModuleList<DownBlock2D>;
  readonly midBlock: UNetMidBlock2DCrossAttn;
  readonly upBlocks: ModuleList<UpBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(config: UNetConfigInput = {}, options: FactoryOptions = {}) {
    super();
    const c = (this.config = parseUNetConfig(config));
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    const ch = c.block_out_channels;
    const n = ch.length;
    const tembChannels = ch[0] * 4;
    const heads = c.num_attention_heads ?? c.attention_head_dim;
    const block = (i: number, layers: number, cross: boolean, scale = c.resnet_out_scale_factor): BlockOptions => ({
      ...f,
      layers,
      tembChannels,
      groups: c.norm_num_groups,
      eps: c.norm_eps,
      outputScaleFactor: scale,
      transformer: cross
        ? {
            ...f,
            heads: perBlock(heads, i),
            crossAttentionDim: c.cross_attention_dim,
            layers: perBlock(c.transformer_layers_per_block, i),
            groups: c.norm_num_groups,
            useLinearProjection: c.use_linear_projection,
            upcastAttention: c.upcast_attention,
          }
        : undefined,
    });

    this.convIn = this.registerModule('conv_in', new Conv2d(c.in_channels, ch[0], 3, { ...f, padding: 1 }));
    this.timeProj = this.registerModule('time_proj', new Timesteps(ch[0], c.flip_sin_to_cos, c.freq_shift));
    this.timeEmbedding = this.registerModule('time_embedding', new TimestepEmbedding(ch[0], tembChannels, f));

    const down = c.down_block_types.map((type, i) => {
      const o = block(i, perBlock(c.layers_per_block, i), type === 'CrossAttnDownBlock2D');
      return new DownBlock2D(i === 0 ? ch[0] : ch[i - 1], ch[i], i < n - 1, c.downsample_padding, o);
    });
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(down));
    this.midBlock = this.registerModule(
      'mid_block',
      new UNetMidBlock2DCrossAttn(ch[n - 1], block(n - 1, 1, true, c.mid_block_scale_factor)),
    );

    const up = c.up_block_types.map((type, i) => {
      const r = n - 1 - i; // the down block this up block mirrors
      const o = block(r, perBlock(c.layers_per_block, r) + 1, type === 'CrossAttnUpBlock2D');
      const prevOut = i === 0 ? ch[n - 1] : ch[r + 1];
      return new UpBlock2D(ch[Math.max(r - 1, 0)], prevOut, ch[r], i < n - 1, o);
    });
    this.upBlocks = this.registerModule('up_blocks', new ModuleList(up));
    this.convNormOut = this.registerModule('conv_norm_out', new GroupNorm(c.norm_num_groups, ch[0], { ...f, eps: c.norm_eps }));
    this.convOut = this.registerModule('conv_out', new Conv2d(ch[0], c.out_channels, 3, { ...f, padding: 1 }));
  }

  /**
   * Predicts the noise of `sample` [N, in_channels, H, W] at `timestep` given the text encoder's
   * `encoderHiddenStates` [N, L, cross_attention_dim]. Any H and W work; sizes that are not a
   * multiple of 2^(blocks−1) upsample to the skip connections' sizes, as diffusers does.
   *
   * @example
   * ```ts
   * const { sample } = unet.forward(k.randn([2, 4, 64, 64]), k.tensor([999, 37], { dtype: 'int32' }), context);
   * ```
   */
  forward(sample: k.Tensor, timestep: Timestep, encoderHiddenStates: k.Tensor, options: UNetForwardOptions = {}): UNet2DConditionOutput {
    const c = this.config;
    const trace = options.trace ?? (() => {});
    if (sample.ndim !== 4 || sample.shape[1] !== c.in_channels) {
      throw new k.ShapeError(`UNet2DConditionModel: sample must be [N, ${c.in_channels}, H, W], got [${sample.shape.join(', ')}]`);
    }
    const [N, , H, W] = sample.shape;
    if (encoderHiddenStates.ndim !== 3 || encoderHiddenStates.shape[0] !== N || encoderHiddenStates.shape[2] !== c.cross_attention_dim) {
      throw new k.ShapeError(
        `UNet2DConditionModel: encoderHiddenStates must be [${N}, L, ${c.cross_attention_dim}], got [${encoderHiddenStates.shape.join(', ')}]`,
      );
    }
    const factor = 2 ** (this.upBlocks.length - 1);
    const forwardUpsampleSize = H % factor !== 0 || W % factor !== 0;
    const x = c.center_input_sample ? sample.mul(2).sub(1) : sample;

    const tEmb = this.timeProj.forward(this.timesteps(timestep, N, sample.device), { device: sample.device, dtype: sample.dtype });
    trace('time_proj', tEmb);
    const emb = this.timeEmbedding.forward(tEmb);
    trace('time_embedding', emb);

    let h = this.convIn.forward(x);
    trace('conv_in', h);
    const skips: k.Tensor[] = [h];
    this.downBlocks.namedChildren().forEach(([i, b]) => {
      const [out, states] = (b as DownBlock2D).forward(h, emb, encoderHiddenStates);
      trace(`down_blocks.${i}.0`, out);
      states.forEach((s, j) => trace(`down_blocks.${i}.1.${j}`, s));
      skips.push(...states);
      h = out;
    });
    h = this.midBlock.forward(h, emb, encoderHiddenStates);
    trace('mid_block', h);
    this.upBlocks.namedChildren().forEach(([i, b], idx) => {
      const block = b as UpBlock2D;
      const mine = skips.splice(skips.length - block.resnets.length);
      const last = skips[skips.length - 1];
      const size = idx < this.upBlocks.length - 1 && forwardUpsampleSize ? ([last.shape[2], last.shape[3]] as const) : undefined;
      h = block.forward(h, mine, emb, encoderHiddenStates, size);
      trace(`up_blocks.${i}`, h);
    });
    trace('conv_norm_out', this.convNormOut.forward(h));
    h = this.convOut.forward(normSilu(this.convNormOut, h));
    trace('conv_out', h);
    return { sample: h };
  }

  /** One timestep per batch row: numbers stay on the host, tensors are broadcast on their backend. */
  private timesteps(t: Timestep, N: number, device: string): k.Tensor | number[] {
    if (typeof t === 'number') return new Array<number>(N).fill(t);
    if (!(t instanceof k.Tensor)) {
      if (t.length === N) return [...t];
      if (t.length === 1) return new Array<number>(N).fill(t[0]);
    } else if (t.ndim <= 1 && (t.numel() === N || t.numel() === 1)) {
      if (t.device !== device) throw new k.BackendError(`UNet2DConditionModel: timestep is on ${t.device}, sample on ${device}`);
      return t.reshape([-1]).expand([N]);
    }
    const shape = t instanceof k.Tensor ? `tensor [${t.shape.join(', ')}]` : `list of ${t.length}`;
    throw new k.ShapeError(`UNet2DConditionModel: timestep must be a number or hold 1 or ${N} values, got a ${shape}`);
  }

  /**
   * Loads a diffusers model folder: `config.json` and `diffusion_pytorch_model[.variant].safetensors`
   * (or its sharded `.index.json`), tensor by tensor into an uninitialised model (peak memory is
   * the model's size). `dtype` converts the weights as they load. Node only.
   *
   * @example
   * ```ts
   * const unet = await UNet2DConditionModel.fromPretrained('./sd15', { subfolder: 'unet', variant: 'fp16', dtype: 'float16' });
   * ```
   */
  static async fromPretrained(dir: string, options: PretrainedOptions = {}): Promise<UNet2DConditionModel> {
    const { loadPretrained } = await import('@kiln/nn/node');
    const { model } = await loadPretrained(dir, {
      subfolder: options.subfolder,
      variant: options.variant,
      config: parseUNetConfig,
      build: (config) => new UNet2DConditionModel(config, { dtype: options.dtype }),
    });
    return model;
  }

  /**
   * Writes `config.json` and `diffusion_pytorch_model[.variant].safetensors` (sharded with an
   * index above `maxShardBytes`) into `dir`, each atomically. Node only.
   *
   * @example
   * ```ts
   * await unet.savePretrained('./out/unet');
   * ```
   */
  async savePretrained(dir: string, options: { variant?: string; maxShardBytes?: number } = {}): Promise<void> {
    const { savePretrained } = await import('@kiln/nn/node');
    const config = { _class_name: 'UNet2DConditionModel', _diffusers_version: '0.31.0', ...this.config };
    await savePretrained(dir, { ...options, config, weights: this.stateDict() });
  }

  /**
   * Loads the UNet of an SD 1.x single-file checkpoint (`model.diffusion_model.*` in the original
   * LDM layout, as the common SD front ends write them); other parts of the file are ignored.
   * `config` defaults to SD 1.x's UNet. Node only.
   *
   * @example
   * ```ts
   * const unet = await UNet2DConditionModel.fromSingleFile('./v1-5-pruned-emaonly.safetensors');
   * ```
   */
  static async fromSingleFile(path: string, options: { config?: UNetConfigInput; dtype?: k.DType } = {}): Promise<UNet2DConditionModel> {
    const { readUNetSingleFile } = await import('./single-file-node.js');
    return readUNetSingleFile(path, () => new UNet2DConditionModel(options.config ?? {}, { dtype: options.dtype }));
  }

  /**
   * The state dict under LDM names with the `model.diffusion_model.` prefix, for writing an SD 1.x
   * single-file checkpoint together with the VAE's and the text encoder's parts. The values are the
   * live parameters (no copies), as in `stateDict()`.
   *
   * @example
   * ```ts
   * const text = Object.entries(textEncoder.stateDict()).map(([key, t]) => [LDM_TEXT_ENCODER_PREFIX + key, t] as const);
   * await saveSafetensors('model.safetensors', new Map([...Object.entries(unet.ldmStateDict()), ...Object.entries(vae.ldmStateDict()), ...text]));
   * ```
   */
  ldmStateDict(): Record<string, k.Tensor> {
    const out: Record<string, k.Tensor> = {};
    for (const [key, t] of Object.entries(this.stateDict())) out[LDM_UNET_PREFIX + ldmUNetKey(key, this.config)!] = t;
    return out;
  }

  /**
   * Turns on gradient checkpointing in every down, mid and up block: each resnet and transformer
   * is recomputed during backward, so training keeps only block boundaries alive.
   *
   * @example
   * ```ts
   * unet.enableGradientCheckpointing();
   * ```
   */
  enableGradientCheckpointing(enabled = true): this {
    for (const b of [...this.downBlocks, this.midBlock, ...this.upBlocks]) b.gradientCheckpointing = enabled;
    return this;
  }
}
