import { z } from 'zod';
import { configIssueLines } from '@kiln/nn';
import { UNetConfigError } from './errors.js';

const int = () => z.number().int();
const posInt = () => z.number().int().positive();
const intOrList = () => z.union([posInt(), z.array(posInt()).min(1)]);

/**
 * A field Kiln accepts only at the given value(s) (its SD 1.x default first): anything else is
 * refused by name rather than silently ignored.
 */
function only<T extends string | number | boolean | null>(...allowed: readonly T[]) {
  return z
    .unknown()
    .default(allowed[0])
    .refine((v) => allowed.some((a) => a === v), {
      message: `is not implemented by Kiln (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
    }) as unknown as z.ZodDefault<z.ZodType<T, T>>;
}

const DOWN = z.enum(['CrossAttnDownBlock2D', 'DownBlock2D']);
const UP = z.enum(['CrossAttnUpBlock2D', 'UpBlock2D']);

/**
 * diffusers' `UNet2DConditionModel` config fields (snake_case, as in `config.json`), with diffusers'
 * defaults except where SD 1.x's `unet/config.json` is the useful default (block types, channels,
 * `cross_attention_dim` 768). Unknown fields are kept, so a saved config round-trips. Fields whose
 * non-default values select features Kiln does not implement accept only the default.
 *
 * @example
 * ```ts
 * const config = UNetConfigSchema.parse(JSON.parse(await readFile('sd15/unet/config.json', 'utf8')));
 * ```
 */
export const UNetConfigSchema = z
  .object({
    sample_size: posInt().nullable().default(64),
    in_channels: posInt().default(4),
    out_channels: posInt().default(4),
    center_input_sample: z.boolean().default(false),
    flip_sin_to_cos: z.boolean().default(true),
    freq_shift: z.number().default(0),
    down_block_types: z.array(DOWN).min(1).default(['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']),
    mid_block_type: only('UNetMidBlock2DCrossAttn'),
    up_block_types: z.array(UP).min(1).default(['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']),
    only_cross_attention: only(false),
    block_out_channels: z.array(posInt()).min(1).default([320, 640, 1280, 1280]),
    layers_per_block: intOrList().default(2),
    downsample_padding: int().nonnegative().default(1),
    mid_block_scale_factor: z.number().positive().default(1),
    dropout: only(0),
    act_fn: only('silu'),
    norm_num_groups: posInt().default(32),
    norm_eps: z.number().positive().default(1e-5),
    cross_attention_dim: posInt().default(768),
    transformer_layers_per_block: intOrList().default(1),
    attention_head_dim: intOrList().default(8),
    num_attention_heads: intOrList().nullable().default(null),
    use_linear_projection: z.boolean().default(false),
    upcast_attention: z.boolean().default(false),
    resnet_out_scale_factor: z.number().positive().default(1),
    conv_in_kernel: only(3),
    conv_out_kernel: only(3),
    encoder_hid_dim: only(null),
    encoder_hid_dim_type: only(null),
    dual_cross_attention: only(false),
    class_embed_type: only(null),
    addition_embed_type: only(null),
    addition_time_embed_dim: only(null),
    num_class_embeds: only(null),
    resnet_time_scale_shift: only('default'),
    resnet_skip_time_act: only(false),
    time_embedding_type: only('positional'),
    time_embedding_dim: only(null),
    time_embedding_act_fn: only(null),
    timestep_post_act: only(null),
    time_cond_proj_dim: only(null),
    projection_class_embeddings_input_dim: only(null),
    attention_type: only('default'),
    class_embeddings_concat: only(false),
    mid_block_only_cross_attention: only(null, false),
    cross_attention_norm: only(null),
    reverse_transformer_layers_per_block: only(null),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    const n = c.block_out_channels.length;
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.down_block_types.length !== n) issue('down_block_types', `has ${c.down_block_types.length} entries, block_out_channels has ${n}`);
    if (c.up_block_types.length !== n) issue('up_block_types', `has ${c.up_block_types.length} entries, block_out_channels has ${n}`);
    for (const name of ['layers_per_block', 'transformer_layers_per_block', 'attention_head_dim', 'num_attention_heads'] as const) {
      const v = c[name];
      if (Array.isArray(v) && v.length !== n) issue(name, `has ${v.length} entries, block_out_channels has ${n}`);
    }
    const heads = c.num_attention_heads ?? c.attention_head_dim;
    c.block_out_channels.forEach((ch, i) => {
      const h = perBlock(heads, i);
      if (ch % h !== 0) issue('attention_head_dim', `${h} heads do not divide block_out_channels[${i}] = ${ch}`);
      if (ch % c.norm_num_groups !== 0)
        issue('norm_num_groups', `${c.norm_num_groups} groups do not divide block_out_channels[${i}] = ${ch}`);
    });
  });

/** A complete, validated UNet config. @example const config: UNetConfig = parseUNetConfig(JSON.parse(text)); // every field resolved */
export type UNetConfig = z.output<typeof UNetConfigSchema>;
/** What `new UNet2DConditionModel(config)` accepts: any subset of the fields. @example const tiny: UNetConfigInput = { block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], cross_attention_dim: 32 }; */
export type UNetConfigInput = z.input<typeof UNetConfigSchema>;

/** Value of a per-block field (a number, or a list with one entry per block). */
export function perBlock(v: number | readonly number[], i: number): number {
  return typeof v === 'number' ? v : v[i];
}

/**
 * Validates and completes a UNet config. SD 1.x's `attention_head_dim` is the number of heads
 * (diffusers' legacy naming), used when `num_attention_heads` is null.
 *
 * @example
 * ```ts
 * parseUNetConfig({ block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
 *   up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], norm_num_groups: 8 }).layers_per_block; // 2
 * ```
 */
export function parseUNetConfig(raw: unknown, file = 'UNet2DConditionModel config'): UNetConfig {
  const r = UNetConfigSchema.safeParse(raw);
  if (!r.success) throw new UNetConfigError(file, configIssueLines(r.error));
  return r.data;
}
