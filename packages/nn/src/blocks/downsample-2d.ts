import * as k from '@kiln/tensor-core';
import type { FactoryOptions } from '../init.js';
import { Conv2d } from '../layers/conv2d.js';
import { Module } from '../module.js';

/**
 * diffusers' `Downsample2D` with `use_conv=True`: a 3×3 convolution with stride 2 (key `conv`).
 * With `padding: 0` (the VAE encoder's `downsample_padding`) the input is first padded by one
 * pixel on the right and bottom only, as diffusers does.
 *
 * @example
 * ```ts
 * new Downsample2D(320, { padding: 1 }).forward(k.randn([1, 320, 64, 64])).shape; // [1, 320, 32, 32]
 * ```
 */
export class Downsample2D extends Module {
  readonly conv: Conv2d;
  readonly padding: number;

  constructor(channels: number, options: FactoryOptions & { outChannels?: number; padding?: number } = {}) {
    super();
    this.padding = options.padding ?? 1;
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    this.conv = this.registerModule(
      'conv',
      new Conv2d(channels, options.outChannels ?? channels, 3, { ...f, stride: 2, padding: this.padding }),
    );
  }

  forward(x: k.Tensor): k.Tensor {
    return this.conv.forward(this.padding === 0 ? k.pad(x, [0, 1, 0, 1]) : x);
  }
}
