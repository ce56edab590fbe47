import * as k from '@kiln/tensor-core';
import type { FactoryOptions } from '../init.js';
import { Conv2d } from '../layers/conv2d.js';
import { Module } from '../module.js';

/**
 * diffusers' `Upsample2D` with `use_conv=True`: nearest-neighbour upsampling by 2 (or to
 * `outputSize`, which the UNet passes when the latent is not a multiple of its overall factor),
 * then a 3×3 convolution (key `conv`).
 *
 * @example
 * ```ts
 * new Upsample2D(1280).forward(k.randn([1, 1280, 8, 8])).shape; // [1, 1280, 16, 16]
 * ```
 */
export class Upsample2D extends Module {
  readonly conv: Conv2d;

  constructor(channels: number, options: FactoryOptions & { outChannels?: number } = {}) {
    super();
    const f: FactoryOptions = { dtype: options.dtype, device: options.device };
    this.conv = this.registerModule('conv', new Conv2d(channels, options.outChannels ?? channels, 3, { ...f, padding: 1 }));
  }

  forward(x: k.Tensor, outputSize?: readonly [number, number]): k.Tensor {
    const up = k.interpolate(x, outputSize ? { size: outputSize } : { scaleFactor: 2 });
    return this.conv.forward(up);
  }
}
