import * as k from '@kiln/tensor-core';
import { Downsample2D, Module, ModuleList, ResnetBlock2D, Upsample2D, checkpoint } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { Transformer2DModel } from './attention.js';
import type { TransformerOptions } from './attention.js';

/**
 * What every UNet block needs from the config.
 *
 * @example
 * ```ts
 * // Blocks are built by UNet2DConditionModel from its config; their options are the config's fields.
 * const { resnets, attentions } = unet.downBlocks.at(0);
 * ```
 */
export interface BlockOptions extends FactoryOptions {
  layers: number;
  tembChannels: number;
  groups: number;
  eps: number;
  outputScaleFactor: number;
  /** Set for the cross-attention blocks. */
  transformer?: TransformerOptions;
}

/** The down/mid/up blocks' common state: their resnets, transformers and checkpointing switch. */
abstract class UNetBlock extends Module {
  /** Recompute each resnet and transformer in backward instead of keeping its activations. */
  gradientCheckpointing = false;
  abstract readonly resnets: ModuleList<ResnetBlock2D>;
  abstract readonly attentions: ModuleList<Transformer2DModel> | null;

  // Without gradients each resnet and transformer runs in its own tidy, so its intermediates are
  // freed when it returns instead of when the caller's scope ends (inference peaks stay small).
  protected resnet(i: number, h: k.Tensor, temb: k.Tensor): k.Tensor {
    const r = this.resnets.at(i);
    if (!k.isGradEnabled()) return k.tidy(() => r.forward(h, temb));
    if (!this.gradientCheckpointing) return r.forward(h, temb);
    return checkpoint((x: k.Tensor, t: k.Tensor) => r.forward(x, t), h, temb, { params: r.parameters() });
  }

  protected attention(i: number, h: k.Tensor, context: k.Tensor): k.Tensor {
    const a = this.attentions!.at(i);
    if (!k.isGradEnabled()) return k.tidy(() => a.forward(h, context));
    if (!this.gradientCheckpointing) return a.forward(h, context);
    return checkpoint((x: k.Tensor, c: k.Tensor) => a.forward(x, c), h, context, { params: a.parameters() });
  }
}

function resnets(o: BlockOptions, inChannels: (i: number) => number, out: number, layers = o.layers): ModuleList<ResnetBlock2D> {
  const f: FactoryOptions = { dtype: o.dtype, device: o.device };
  return new ModuleList(
    Array.from(
      { length: layers },
      (_, i) =>
        new ResnetBlock2D(inChannels(i), {
          ...f,
          outChannels: out,
          tembChannels: o.tembChannels,
          groups: o.groups,
          eps: o.eps,
          outputScaleFactor: o.outputScaleFactor,
        }),
    ),
  );
}

function transformers(o: BlockOptions, channels: number, layers: number): ModuleList<Transformer2DModel> | null {
  return o.transformer ? new ModuleList(Array.from({ length: layers }, () => new Transformer2DModel(channels, o.transformer!))) : null;
}

/**
 * diffusers' `CrossAttnDownBlock2D` (with `transformer` options) or `DownBlock2D`: resnets (each
 * followed by a transformer), then an optional stride-2 `downsamplers.0`. Returns the output and
 * every intermediate state the up path concatenates.
 *
 * @example
 * ```ts
 * const [h, skips] = unet.downBlocks.at(0).forward(x, temb, context); // skips feed the up blocks
 * ```
 */
export class DownBlock2D extends UNetBlock {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(inChannels: number, out: number, addDownsample: boolean, padding: number, o: BlockOptions) {
    super();
    this.resnets = this.registerModule(
      'resnets',
      resnets(o, (i) => (i === 0 ? inChannels : out), out),
    );
    const attn = transformers(o, out, o.layers);
    this.attentions = attn && this.registerModule('attentions', attn);
    const down = addDownsample ? new ModuleList([new Downsample2D(out, { dtype: o.dtype, device: o.device, padding })]) : null;
    this.downsamplers = down && this.registerModule('downsamplers', down);
  }

  forward(h: k.Tensor, temb: k.Tensor, context: k.Tensor): [k.Tensor, k.Tensor[]] {
    const states: k.Tensor[] = [];
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnet(i, h, temb);
      if (this.attentions) h = this.attention(i, h, context);
      states.push(h);
    }
    if (this.downsamplers) {
      h = this.downsamplers.at(0).forward(h);
      states.push(h);
    }
    return [h, states];
  }
}

/** diffusers' `UNetMidBlock2DCrossAttn`: resnet, then (transformer, resnet) per layer. @example const h = unet.midBlock.forward(x, temb, context); */
export class UNetMidBlock2DCrossAttn extends UNetBlock {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel>;
  constructor(channels: number, o: BlockOptions) {
    super();
    this.attentions = this.registerModule('attentions', transformers(o, channels, o.layers)!);
    this.resnets = this.registerModule(
      'resnets',
      resnets(o, () => channels, channels, o.layers + 1),
    );
  }

  forward(h: k.Tensor, temb: k.Tensor, context: k.Tensor): k.Tensor {
    h = this.resnet(0, h, temb);
    for (let i = 0; i < this.attentions.length; i++) h = this.resnet(i + 1, this.attention(i, h, context), temb);
    return h;
  }
}

/**
 * diffusers' `CrossAttnUpBlock2D` / `UpBlock2D`: each resnet takes the previous output
 * concatenated with a skip state (last first), then an optional `upsamplers.0` (to `upsampleSize`
 * when the latent is not a multiple of the UNet's overall factor).
 *
 * @example
 * ```ts
 * const h = unet.upBlocks.at(0).forward(x, skips, temb, context);
 * ```
 */
export class UpBlock2D extends UNetBlock {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(inChannels: number, prevOut: number, out: number, addUpsample: boolean, o: BlockOptions) {
    super();
    const n = o.layers;
    const skip = (i: number) => (i === n - 1 ? inChannels : out);
    this.resnets = this.registerModule(
      'resnets',
      resnets(o, (i) => (i === 0 ? prevOut : out) + skip(i), out),
    );
    const attn = transformers(o, out, n);
    this.attentions = attn && this.registerModule('attentions', attn);
    const up = addUpsample ? new ModuleList([new Upsample2D(out, { dtype: o.dtype, device: o.device })]) : null;
    this.upsamplers = up && this.registerModule('upsamplers', up);
  }

  forward(h: k.Tensor, skips: k.Tensor[], temb: k.Tensor, context: k.Tensor, upsampleSize?: readonly [number, number]): k.Tensor {
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnet(i, k.cat([h, skips[skips.length - 1 - i]], 1), temb);
      if (this.attentions) h = this.attention(i, h, context);
    }
    return this.upsamplers ? this.upsamplers.at(0).forward(h, upsampleSize) : h;
  }
}
