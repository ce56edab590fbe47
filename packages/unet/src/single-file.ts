import type { UNetConfig } from './config.js';
import { perBlock } from './config.js';

/** The UNet's prefix in an SD 1.x single-file checkpoint (the original LDM layout). @example const unetPart = prefixedSource(file, LDM_UNET_PREFIX); */
export const LDM_UNET_PREFIX = 'model.diffusion_model.';

/** diffusers' ResnetBlock2D names → LDM's ResBlock names. */
const RESNET: Readonly<Record<string, string>> = {
  norm1: 'in_layers.0',
  conv1: 'in_layers.2',
  norm2: 'out_layers.0',
  conv2: 'out_layers.3',
  time_emb_proj: 'emb_layers.1',
  conv_shortcut: 'skip_connection',
};

const FIXED: Readonly<Record<string, string>> = {
  'time_embedding.linear_1': 'time_embed.0',
  'time_embedding.linear_2': 'time_embed.2',
  conv_in: 'input_blocks.0.0',
  conv_norm_out: 'out.0',
  conv_out: 'out.2',
};

const resnetRest = (rest: string) => rest.replace(/^([a-z_0-9]+)\./, (m, name: string) => (RESNET[name] ? `${RESNET[name]}.` : m));

/**
 * The LDM (original Stable Diffusion) name of a diffusers UNet state-dict key, without the
 * `model.diffusion_model.` prefix: `down_blocks.1.attentions.0.proj_in.weight` →
 * `input_blocks.4.1.proj_in.weight` in SD 1.x. The block numbering follows the config's layers
 * per block; transformer internals have the same names in both layouts. This is the mapping of
 * diffusers' `convert_diffusers_to_original_stable_diffusion.py`, generalised to any depth.
 * Returns null for a key that is not part of a UNet.
 *
 * @example
 * ```ts
 * ldmUNetKey('up_blocks.0.upsamplers.0.conv.weight', unet.config); // 'output_blocks.2.1.conv.weight'
 * ```
 */
export function ldmUNetKey(key: string, config: UNetConfig): string | null {
  const n = config.block_out_channels.length;
  const layers = (i: number) => perBlock(config.layers_per_block, i);
  const cross = (types: readonly string[], i: number) => types[i].startsWith('CrossAttn');
  const downStart = (i: number) => 1 + Array.from({ length: i }, (_, m) => layers(m) + 1).reduce((a, b) => a + b, 0);
  const upStart = (i: number) => Array.from({ length: i }, (_, m) => layers(n - 1 - m) + 1).reduce((a, b) => a + b, 0);
  let m: RegExpExecArray | null;
  for (const [from, to] of Object.entries(FIXED)) if (key.startsWith(`${from}.`)) return to + key.slice(from.length);
  if ((m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(key))) {
    const [i, j] = [Number(m[1]), Number(m[3])];
    const at = `input_blocks.${downStart(i) + j}`;
    return m[2] === 'resnets' ? `${at}.0.${resnetRest(m[4])}` : `${at}.1.${m[4]}`;
  }
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(key)))
    return `input_blocks.${downStart(Number(m[1])) + layers(Number(m[1]))}.0.op.${m[2]}`;
  if ((m = /^mid_block\.resnets\.(\d+)\.(.+)$/.exec(key))) return `middle_block.${2 * Number(m[1])}.${resnetRest(m[2])}`;
  if ((m = /^mid_block\.attentions\.(\d+)\.(.+)$/.exec(key))) return `middle_block.${2 * Number(m[1]) + 1}.${m[2]}`;
  if ((m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(key))) {
    const [i, j] = [Number(m[1]), Number(m[3])];
    const at = `output_blocks.${upStart(i) + j}`;
    return m[2] === 'resnets' ? `${at}.0.${resnetRest(m[4])}` : `${at}.1.${m[4]}`;
  }
  if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/.exec(key))) {
    const i = Number(m[1]);
    const r = n - 1 - i;
    return `output_blocks.${upStart(i) + layers(r)}.${cross(config.up_block_types, i) ? 2 : 1}.${m[2]}`;
  }
  return null;
}
