import * as k from '@kiln/tensor-core';
import { GroupNorm, Linear, Module, ModuleList } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';

/**
 * The VAE mid-block's spatial self-attention (diffusers' `Attention` with `group_norm`,
 * `residual_connection=True`, biased projections and one head of all channels): GroupNorm over
 * [N, C, H, W], attention over the H·W positions, `to_out.0`, plus the input.
 *
 * @example
 * ```ts
 * new VAEAttention(512, 32, 1e-6).forward(k.randn([1, 512, 8, 8])).shape; // [1, 512, 8, 8]
 * ```
 */
export class VAEAttention extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;

  constructor(
    readonly channels: number,
    groups: number,
    eps: number,
    o: FactoryOptions = {},
  ) {
    super();
    this.groupNorm = this.registerModule('group_norm', new GroupNorm(groups, channels, { ...o, eps }));
    this.toQ = this.registerModule('to_q', new Linear(channels, channels, o));
    this.toK = this.registerModule('to_k', new Linear(channels, channels, o));
    this.toV = this.registerModule('to_v', new Linear(channels, channels, o));
    this.toOut = this.registerModule('to_out', new ModuleList([new Linear(channels, channels, o)]));
  }

  forward(x: k.Tensor): k.Tensor {
    const [N, C, H, W] = x.shape;
    const tokens = this.groupNorm
      .forward(x)
      .reshape([N, C, H * W])
      .transpose(1, 2);
    const heads = (t: k.Tensor) => t.unsqueeze(1); // [N, 1, HW, C]: a single head
    const q = heads(this.toQ.forward(tokens));
    const key = heads(this.toK.forward(tokens));
    const v = heads(this.toV.forward(tokens));
    // diffusers upcasts these scores (upcast_softmax); in half precision compute them in float32.
    const dtype = q.dtype;
    const up = (t: k.Tensor) => (dtype === 'float32' ? t : t.to('float32'));
    const a = k.scaledDotProductAttention(up(q), up(key), up(v)).to(dtype).squeeze(1);
    const out = this.toOut.at(0).forward(a);
    return out.transpose(1, 2).reshape([N, C, H, W]).add(x);
  }
}
