import { z } from 'zod';
import { configIssueLines } from '@kiln/nn';
import { VAEConfigError } from './errors.js';

const posInt = () => z.number().int().positive();

/** A field Kiln accepts only at the given value(s): anything else is refused by name. */
function only<T extends string | number | boolean | null>(...allowed: readonly T[]) {
  return z
    .unknown()
    .default(allowed[0])
    .refine((v) => allowed.some((a) => a === v), {
      message: `is not implemented by Kiln (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
    }) as unknown as z.ZodDefault<z.ZodType<T, T>>;
}

/**
 * diffusers' `AutoencoderKL` config fields (snake_case, as in `config.json`). Defaults are SD 1.x's
 * `vae/config.json` (four levels of 128…512 channels, two layers per block, 512² samples).
 * Unknown fields are kept, so a saved config round-trips.
 *
 * @example
 * ```ts
 * const config = VAEConfigSchema.parse(JSON.parse(await readFile('sd15/vae/config.json', 'utf8')));
 * ```
 */
export const VAEConfigSchema = z
  .object({
    in_channels: posInt().default(3),
    out_channels: posInt().default(3),
    down_block_types: z
      .array(z.literal('DownEncoderBlock2D'))
      .min(1)
      .default(['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D']),
    up_block_types: z
      .array(z.literal('UpDecoderBlock2D'))
      .min(1)
      .default(['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D']),
    block_out_channels: z.array(posInt()).min(1).default([128, 256, 512, 512]),
    layers_per_block: posInt().default(2),
    act_fn: only('silu'),
    latent_channels: posInt().default(4),
    norm_num_groups: posInt().default(32),
    sample_size: posInt().default(512),
    scaling_factor: z.number().positive().default(0.18215),
    shift_factor: z.number().nullable().default(null),
    latents_mean: z.array(z.number()).nullable().default(null),
    latents_std: z.array(z.number()).nullable().default(null),
    force_upcast: z.boolean().default(true),
    use_quant_conv: z.boolean().default(true),
    use_post_quant_conv: z.boolean().default(true),
    mid_block_add_attention: z.boolean().default(true),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    const n = c.block_out_channels.length;
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.down_block_types.length !== n) issue('down_block_types', `has ${c.down_block_types.length} entries, block_out_channels has ${n}`);
    if (c.up_block_types.length !== n) issue('up_block_types', `has ${c.up_block_types.length} entries, block_out_channels has ${n}`);
    c.block_out_channels.forEach((ch, i) => {
      if (ch % c.norm_num_groups !== 0)
        issue('norm_num_groups', `${c.norm_num_groups} groups do not divide block_out_channels[${i}] = ${ch}`);
    });
  });

/** A complete, validated VAE config. @example const config: VAEConfig = parseVAEConfig(JSON.parse(text)); // every field resolved */
export type VAEConfig = z.output<typeof VAEConfigSchema>;
/** What `new AutoencoderKL(config)` accepts: any subset of the fields. @example const tiny: VAEConfigInput = { block_out_channels: [32, 64], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] }; */
export type VAEConfigInput = z.input<typeof VAEConfigSchema>;

/**
 * Validates and completes an `AutoencoderKL` config (defaults: SD 1.x's VAE).
 *
 * @example
 * ```ts
 * parseVAEConfig({ block_out_channels: [32, 64], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
 *   up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] }).latent_channels; // 4
 * ```
 */
export function parseVAEConfig(raw: unknown, file = 'AutoencoderKL config'): VAEConfig {
  const r = VAEConfigSchema.safeParse(raw);
  if (!r.success) throw new VAEConfigError(file, configIssueLines(r.error));
  return r.data;
}
