import * as k from '@kiln/tensor-core';
import { Conv2d, Dropout, GroupNorm, LayerNorm, Linear, Module, ModuleList } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';

/** Settings shared by every transformer in a UNet (from its config). @example const t = unet.downBlocks.at(0).attentions!.at(0); // a Transformer2DModel built with TransformerOptions */
export interface TransformerOptions extends FactoryOptions {
  heads: number;
  crossAttentionDim: number;
  layers: number;
  groups: number;
  useLinearProjection: boolean;
  upcastAttention: boolean;
}

/**
 * diffusers' `Attention` as SD's transformers use it: bias-free `to_q/to_k/to_v`, `to_out.0`, and
 * the fused scaled-dot-product attention over `heads` heads. Keys and values come from `context`
 * (cross-attention) or from `x` (self-attention).
 *
 * @example
 * ```ts
 * const attn2 = new CrossAttention(320, 768, 8, false);
 * attn2.forward(k.randn([1, 4096, 320]), k.randn([1, 77, 768])).shape; // [1, 4096, 320]
 * ```
 */
export class CrossAttention extends Module {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;

  constructor(
    queryDim: number,
    contextDim: number,
    readonly heads: number,
    readonly upcast: boolean,
    o: FactoryOptions = {},
  ) {
    super();
    this.toQ = this.registerModule('to_q', new Linear(queryDim, queryDim, { ...o, bias: false }));
    this.toK = this.registerModule('to_k', new Linear(contextDim, queryDim, { ...o, bias: false }));
    this.toV = this.registerModule('to_v', new Linear(contextDim, queryDim, { ...o, bias: false }));
    this.toOut = this.registerModule('to_out', new ModuleList([new Linear(queryDim, queryDim, o)]));
  }

  forward(x: k.Tensor, context: k.Tensor | null = null): k.Tensor {
    const [B, L, C] = x.shape;
    const ctx = context ?? x;
    const split = (t: k.Tensor) => t.reshape([B, t.shape[1], this.heads, C / this.heads]).transpose(1, 2);
    let q = split(this.toQ.forward(x));
    let key = split(this.toK.forward(ctx));
    const v = split(this.toV.forward(ctx));
    // upcast_attention: scores in float32 when the weights are half precision.
    const dtype = q.dtype;
    if (this.upcast && dtype !== 'float32') [q, key] = [q.to('float32'), key.to('float32')];
    const a = k.scaledDotProductAttention(q, key, this.upcast ? v.to(q.dtype) : v).to(dtype);
    return this.toOut.at(0).forward(a.transpose(1, 2).reshape([B, L, C]));
  }
}

/** diffusers' `GEGLU`: `proj` to twice the width, then `h · gelu(gate)`. @example const gate = block.ff.geglu.proj; // Linear(dim, 2·inner) */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(dim: number, inner: number, o: FactoryOptions = {}) {
    super();
    this.proj = this.registerModule('proj', new Linear(dim, inner * 2, o));
  }
  forward(x: k.Tensor): k.Tensor {
    const [h, gate] = this.proj.forward(x).chunk(2, -1);
    return h.mul(k.gelu(gate));
  }
}

/** diffusers' `FeedForward` with GEGLU: keys `net.0.proj` and `net.2` (`net.1` is dropout). @example const y = block.ff.forward(x); // GEGLU → Linear, as diffusers' FeedForward */
export class FeedForward extends Module {
  readonly geglu: GEGLU;
  readonly out: Linear;
  constructor(dim: number, o: FactoryOptions = {}) {
    super();
    this.geglu = new GEGLU(dim, dim * 4, o);
    this.out = new Linear(dim * 4, dim, o);
    this.registerModule('net', new ModuleList<Module>([this.geglu, new Dropout(0), this.out]));
  }
  forward(x: k.Tensor): k.Tensor {
    return this.out.forward(this.geglu.forward(x));
  }
}

/** diffusers' `BasicTransformerBlock`: self-attention, cross-attention and GEGLU feed-forward, each pre-normed and residual. @example const block = unet.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0); // attn1, attn2, ff */
export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: CrossAttention;
  readonly norm2: LayerNorm;
  readonly attn2: CrossAttention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  constructor(dim: number, o: TransformerOptions) {
    super();
    const f: FactoryOptions = { dtype: o.dtype, device: o.device };
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, f));
    this.attn1 = this.registerModule('attn1', new CrossAttention(dim, dim, o.heads, o.upcastAttention, f));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, f));
    this.attn2 = this.registerModule('attn2', new CrossAttention(dim, o.crossAttentionDim, o.heads, o.upcastAttention, f));
    this.norm3 = this.registerModule('norm3', new LayerNorm(dim, f));
    this.ff = this.registerModule('ff', new FeedForward(dim, f));
  }
  forward(x: k.Tensor, context: k.Tensor): k.Tensor {
    let h = this.attn1.forward(this.norm1.forward(x)).add(x);
    h = this.attn2.forward(this.norm2.forward(h), context).add(h);
    return this.ff.forward(this.norm3.forward(h)).add(h);
  }
}

/**
 * diffusers' `Transformer2DModel` for continuous [N, C, H, W] input: GroupNorm (eps 1e-6),
 * `proj_in` (1×1 conv, or linear with `useLinearProjection`), `transformer_blocks` over the H·W
 * tokens, `proj_out`, plus the residual.
 *
 * @example
 * ```ts
 * const t = new Transformer2DModel(320, { heads: 8, crossAttentionDim: 768, layers: 1, groups: 32, useLinearProjection: false, upcastAttention: false });
 * t.forward(k.randn([1, 320, 8, 8]), k.randn([1, 77, 768])).shape; // [1, 320, 8, 8]
 * ```
 */
export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Conv2d | Linear;
  readonly transformerBlocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Conv2d | Linear;
  readonly linear: boolean;
  constructor(channels: number, o: TransformerOptions) {
    super();
    const f: FactoryOptions = { dtype: o.dtype, device: o.device };
    this.linear = o.useLinearProjection;
    const proj = () => (this.linear ? new Linear(channels, channels, f) : new Conv2d(channels, channels, 1, f));
    this.norm = this.registerModule('norm', new GroupNorm(o.groups, channels, { ...f, eps: 1e-6 }));
    this.projIn = this.registerModule('proj_in', proj());
    const blocks = Array.from({ length: o.layers }, () => new BasicTransformerBlock(channels, o));
    this.transformerBlocks = this.registerModule('transformer_blocks', new ModuleList(blocks));
    this.projOut = this.registerModule('proj_out', proj());
  }
  forward(x: k.Tensor, context: k.Tensor): k.Tensor {
    const [B, C, H, W] = x.shape;
    const toTokens = (t: k.Tensor) => t.permute([0, 2, 3, 1]).reshape([B, H * W, C]);
    const toImage = (t: k.Tensor) => t.reshape([B, H, W, C]).permute([0, 3, 1, 2]);
    const normed = this.norm.forward(x);
    let h = this.linear ? this.projIn.forward(toTokens(normed)) : toTokens(this.projIn.forward(normed));
    for (const block of this.transformerBlocks) h = block.forward(h, context);
    h = this.linear ? toImage(this.projOut.forward(h)) : this.projOut.forward(toImage(h).contiguous());
    return h.add(x);
  }
}
