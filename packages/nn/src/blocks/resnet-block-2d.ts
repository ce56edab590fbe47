import * as k from '@kiln/tensor-core';
import type { FactoryOptions } from '../init.js';
import { Conv2d } from '../layers/conv2d.js';
import { GroupNorm } from '../layers/group-norm.js';
import { Linear } from '../layers/linear.js';
import { Module } from '../module.js';

/** Options of {@link ResnetBlock2D} (diffusers' keyword arguments, camel-cased). @example new ResnetBlock2D(320, { outChannels: 640, tembChannels: 1280, groups: 32, eps: 1e-5 }); */
export interface ResnetBlock2DOptions extends FactoryOptions {
  /** Output channels (default: `inChannels`). */
  outChannels?: number;
  /** Width of the time embedding; null for the VAE's blocks, which have no `time_emb_proj`. */
  tembChannels?: number | null;
  /** GroupNorm groups (default 32). */
  groups?: number;
  /** GroupNorm epsilon (default 1e-6). */
  eps?: number;
  /** The residual sum is divided by this (default 1). */
  outputScaleFactor?: number;
}

/**
 * diffusers' `ResnetBlock2D` (SD 1.x's "default" time-embedding norm, SiLU):
 * `out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + time_emb_proj(silu(temb)))))) / outputScaleFactor`,
 * where `shortcut` is a 1×1 `conv_shortcut` when the channel count changes. GroupNorm and SiLU
 * run as one fused op.
 *
 * @example
 * ```ts
 * const block = new ResnetBlock2D(320, { outChannels: 640, tembChannels: 1280 });
 * block.forward(k.randn([1, 320, 8, 8]), k.randn([1, 1280])).shape; // [1, 640, 8, 8]
 * ```
 */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  readonly outputScaleFactor: number;

  constructor(
    readonly inChannels: number,
    options: ResnetBlock2DOptions = {},
  ) {
    super();
    const out = options.outChannels ?? inChannels;
    const groups = options.groups ?? 32;
    const eps = options.eps ?? 1e-6;
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    this.outputScaleFactor = options.outputScaleFactor ?? 1;
    this.norm1 = this.registerModule('norm1', new GroupNorm(groups, inChannels, { ...f, eps }));
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, out, 3, { ...f, padding: 1 }));
    const temb = options.tembChannels ?? null;
    this.timeEmbProj = temb === null ? null : this.registerModule('time_emb_proj', new Linear(temb, out, f));
    this.norm2 = this.registerModule('norm2', new GroupNorm(groups, out, { ...f, eps }));
    this.conv2 = this.registerModule('conv2', new Conv2d(out, out, 3, { ...f, padding: 1 }));
    this.convShortcut = inChannels === out ? null : this.registerModule('conv_shortcut', new Conv2d(inChannels, out, 1, f));
  }

  /** `x` [N, C, H, W]; `temb` [N, tembChannels] when the block has a time projection. */
  forward(x: k.Tensor, temb: k.Tensor | null = null): k.Tensor {
    let h = this.conv1.forward(normSilu(this.norm1, x));
    if (this.timeEmbProj) {
      if (!temb) throw new k.ArgumentError('ResnetBlock2D: this block has a time_emb_proj and needs a time embedding');
      h = h.add(this.timeEmbProj.forward(k.silu(temb)).unsqueeze(-1).unsqueeze(-1));
    }
    h = this.conv2.forward(normSilu(this.norm2, h));
    const skip = this.convShortcut ? this.convShortcut.forward(x) : x;
    const sum = skip.add(h);
    return this.outputScaleFactor === 1 ? sum : sum.div(this.outputScaleFactor);
  }
}

/**
 * `silu(norm(x))` for a {@link GroupNorm} module, through the fused groupNorm+SiLU op.
 *
 * @example
 * ```ts
 * const h = normSilu(block.norm1, x); // same as k.silu(block.norm1.forward(x))
 * ```
 */
export function normSilu(norm: GroupNorm, x: k.Tensor): k.Tensor {
  return k.groupNormSilu(x, norm.numGroups, norm.weight, norm.bias, norm.eps);
}
