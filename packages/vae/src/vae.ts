import * as k from '@kiln/tensor-core';
import { Conv2d, Downsample2D, GroupNorm, Module, ModuleList, ResnetBlock2D, Upsample2D, checkpoint, normSilu } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { VAEAttention } from './attention.js';
import type { VAEConfig } from './config.js';

/** The VAE's GroupNorm epsilon (diffusers hard-codes 1e-6 in Encoder and Decoder). */
const EPS = 1e-6;

/**
 * Calls `trace(name, value)` for each block output, named as diffusers' module paths.
 *
 * @example
 * ```ts
 * const trace: Trace = (name, value) => console.log(name, value.shape);
 * vae.decode(z, { trace });
 * ```
 */
export type Trace = (name: string, value: k.Tensor) => void;

/**
 * Without gradients, each resnet, attention and block runs in its own `tidy`, so its
 * intermediates are freed when it returns (as PyTorch frees them when the last reference goes)
 * instead of living until the caller's scope ends: a 512² decode peaks at a few activations, not
 * all of them. With gradients the graph needs them, so nothing is freed early.
 */
function step(fn: () => k.Tensor): k.Tensor {
  return k.isGradEnabled() ? fn() : k.tidy(fn);
}

function resnetList(inChannels: number, out: number, layers: number, groups: number, o: FactoryOptions): ModuleList<ResnetBlock2D> {
  return new ModuleList(
    Array.from(
      { length: layers },
      (_, i) => new ResnetBlock2D(i === 0 ? inChannels : out, { ...o, outChannels: out, tembChannels: null, groups, eps: EPS }),
    ),
  );
}

/** diffusers' `DownEncoderBlock2D`: resnets, then an optional `downsamplers.0` (padding 0: pad right/bottom, stride 2). @example const h = vae.encoder.downBlocks.at(0).forward(x); */
export class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(inChannels: number, out: number, layers: number, groups: number, addDownsample: boolean, o: FactoryOptions) {
    super();
    this.resnets = this.registerModule('resnets', resnetList(inChannels, out, layers, groups, o));
    const down = addDownsample ? new ModuleList([new Downsample2D(out, { ...o, padding: 0 })]) : null;
    this.downsamplers = down && this.registerModule('downsamplers', down);
  }
  forward(x: k.Tensor): k.Tensor {
    for (const r of this.resnets) x = step(() => r.forward(x));
    return this.downsamplers ? step(() => this.downsamplers!.at(0).forward(x)) : x;
  }
}

/** diffusers' `UpDecoderBlock2D`: resnets, then an optional nearest-×2 `upsamplers.0`. @example const h = vae.decoder.upBlocks.at(0).forward(z); */
export class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(inChannels: number, out: number, layers: number, groups: number, addUpsample: boolean, o: FactoryOptions) {
    super();
    this.resnets = this.registerModule('resnets', resnetList(inChannels, out, layers, groups, o));
    const up = addUpsample ? new ModuleList([new Upsample2D(out, o)]) : null;
    this.upsamplers = up && this.registerModule('upsamplers', up);
  }
  forward(x: k.Tensor): k.Tensor {
    for (const r of this.resnets) x = step(() => r.forward(x));
    return this.upsamplers ? step(() => this.upsamplers!.at(0).forward(x)) : x;
  }
}

/** diffusers' `UNetMidBlock2D` without time embedding: resnet, (attention, resnet). @example const h = vae.decoder.midBlock.forward(z); // resnet → attention → resnet */
export class UNetMidBlock2D extends Module {
  readonly attentions: ModuleList<VAEAttention> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(channels: number, groups: number, addAttention: boolean, o: FactoryOptions) {
    super();
    const attn = addAttention ? new ModuleList([new VAEAttention(channels, groups, EPS, o)]) : null;
    this.attentions = attn && this.registerModule('attentions', attn);
    this.resnets = this.registerModule('resnets', resnetList(channels, channels, 2, groups, o));
  }
  forward(x: k.Tensor): k.Tensor {
    x = step(() => this.resnets.at(0).forward(x));
    if (this.attentions) x = step(() => this.attentions!.at(0).forward(x));
    return step(() => this.resnets.at(1).forward(x));
  }
}

/** Runs a block, through `checkpoint` when gradient checkpointing is on and gradients are recorded. */
function run(block: Module & { forward(x: k.Tensor): k.Tensor }, x: k.Tensor, checkpointing: boolean): k.Tensor {
  return checkpointing && k.isGradEnabled() ? checkpoint(block, x) : block.forward(x);
}

/** diffusers' VAE `Encoder`: image → 2·latent_channels moments (mean and log-variance). @example const moments = vae.encoder.forward(image); // [N, 2·latent_channels, h, w] before quant_conv */
export class Encoder extends Module {
  gradientCheckpointing = false;
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(c: VAEConfig, o: FactoryOptions) {
    super();
    const ch = c.block_out_channels;
    const g = c.norm_num_groups;
    this.convIn = this.registerModule('conv_in', new Conv2d(c.in_channels, ch[0], 3, { ...o, padding: 1 }));
    const down = ch.map((out, i) => new DownEncoderBlock2D(i === 0 ? ch[0] : ch[i - 1], out, c.layers_per_block, g, i < ch.length - 1, o));
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(down));
    this.midBlock = this.registerModule('mid_block', new UNetMidBlock2D(ch[ch.length - 1], g, c.mid_block_add_attention, o));
    this.convNormOut = this.registerModule('conv_norm_out', new GroupNorm(g, ch[ch.length - 1], { ...o, eps: EPS }));
    this.convOut = this.registerModule('conv_out', new Conv2d(ch[ch.length - 1], 2 * c.latent_channels, 3, { ...o, padding: 1 }));
  }
  forward(x: k.Tensor, trace: Trace = () => {}): k.Tensor {
    let h = this.convIn.forward(x);
    trace('encoder.conv_in', h);
    this.downBlocks.namedChildren().forEach(([i, b]) => {
      h = run(b as DownEncoderBlock2D, h, this.gradientCheckpointing);
      trace(`encoder.down_blocks.${i}`, h);
    });
    h = run(this.midBlock, h, this.gradientCheckpointing);
    trace('encoder.mid_block', h);
    h = step(() => this.convOut.forward(normSilu(this.convNormOut, h)));
    trace('encoder.conv_out', h);
    return h;
  }
}

/** diffusers' VAE `Decoder`: latent → image. @example const image = vae.decoder.forward(z); // after post_quant_conv */
export class Decoder extends Module {
  gradientCheckpointing = false;
  readonly convIn: Conv2d;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(c: VAEConfig, o: FactoryOptions) {
    super();
    const rev = [...c.block_out_channels].reverse();
    const g = c.norm_num_groups;
    this.convIn = this.registerModule('conv_in', new Conv2d(c.latent_channels, rev[0], 3, { ...o, padding: 1 }));
    this.midBlock = this.registerModule('mid_block', new UNetMidBlock2D(rev[0], g, c.mid_block_add_attention, o));
    const up = rev.map(
      (out, i) => new UpDecoderBlock2D(i === 0 ? rev[0] : rev[i - 1], out, c.layers_per_block + 1, g, i < rev.length - 1, o),
    );
    this.upBlocks = this.registerModule('up_blocks', new ModuleList(up));
    this.convNormOut = this.registerModule('conv_norm_out', new GroupNorm(g, rev[rev.length - 1], { ...o, eps: EPS }));
    this.convOut = this.registerModule('conv_out', new Conv2d(rev[rev.length - 1], c.out_channels, 3, { ...o, padding: 1 }));
  }
  forward(z: k.Tensor, trace: Trace = () => {}): k.Tensor {
    let h = this.convIn.forward(z);
    trace('decoder.conv_in', h);
    h = run(this.midBlock, h, this.gradientCheckpointing);
    trace('decoder.mid_block', h);
    this.upBlocks.namedChildren().forEach(([i, b]) => {
      h = run(b as UpDecoderBlock2D, h, this.gradientCheckpointing);
      trace(`decoder.up_blocks.${i}`, h);
    });
    h = step(() => this.convOut.forward(normSilu(this.convNormOut, h)));
    trace('decoder.conv_out', h);
    return h;
  }
}
