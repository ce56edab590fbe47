import type { VAEConfig } from './config.js';

/** The VAE's prefix in an SD 1.x single-file checkpoint (the original LDM layout). @example const vaePart = prefixedSource(file, LDM_VAE_PREFIX); */
export const LDM_VAE_PREFIX = 'first_stage_model.';

const ATTENTION: Readonly<Record<string, string>> = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };

/** An LDM name, and for the attention projections the LDM shape (1×1 convolutions there, linears in diffusers). @example const { key, shape } = ldmVAEKey('decoder.mid_block.attentions.0.to_q.weight', [512, 512], vae.config)!; */
export interface LDMKey {
  key: string;
  /** Set when LDM stores the tensor in another shape (same elements). */
  shape?: readonly number[];
}

/**
 * The LDM (original Stable Diffusion) name of a diffusers VAE state-dict key, without the
 * `first_stage_model.` prefix: `decoder.up_blocks.0.resnets.2.conv_shortcut.weight` →
 * `decoder.up.3.block.2.nin_shortcut.weight` in SD 1.x (LDM numbers the decoder's levels from
 * the bottom). The mid-block attention's linears are 1×1 convolutions there, so their weights
 * carry an LDM `shape`. This is the mapping of diffusers' `convert_diffusers_to_original_stable_diffusion.py`,
 * generalised to any depth. Returns null for a key that is not part of a VAE.
 *
 * @example
 * ```ts
 * ldmVAEKey('encoder.mid_block.attentions.0.to_q.weight', [512, 512], vae.config); // { key: 'encoder.mid.attn_1.q.weight', shape: [512, 512, 1, 1] }
 * ```
 */
export function ldmVAEKey(key: string, shape: readonly number[], config: VAEConfig): LDMKey | null {
  const n = config.block_out_channels.length;
  const resnet = (rest: string) => rest.replace(/^conv_shortcut\./, 'nin_shortcut.');
  let m: RegExpExecArray | null;
  if ((m = /^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$/.exec(key))) return { key };
  if ((m = /^(encoder|decoder)\.conv_norm_out\.(.+)$/.exec(key))) return { key: `${m[1]}.norm_out.${m[2]}` };
  if ((m = /^(quant_conv|post_quant_conv)\./.exec(key))) return { key };
  if ((m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(key)))
    return { key: `encoder.down.${m[1]}.block.${m[2]}.${resnet(m[3])}` };
  if ((m = /^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)$/.exec(key))) return { key: `encoder.down.${m[1]}.downsample.${m[2]}` };
  if ((m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(key)))
    return { key: `decoder.up.${n - 1 - Number(m[1])}.block.${m[2]}.${resnet(m[3])}` };
  if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/.exec(key)))
    return { key: `decoder.up.${n - 1 - Number(m[1])}.upsample.${m[2]}` };
  if ((m = /^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)$/.exec(key)))
    return { key: `${m[1]}.mid.block_${Number(m[2]) + 1}.${resnet(m[3])}` };
  if ((m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(key))) {
    const ldm = `${m[1]}.mid.attn_1.${ATTENTION[m[2]]}.${m[3]}`;
    return m[2] !== 'group_norm' && m[3] === 'weight' ? { key: ldm, shape: [...shape, 1, 1] } : { key: ldm };
  }
  return null;
}
