/** diffusers' old attention parameter names (before 0.14) and the current ones. */
const OLD_ATTENTION: Readonly<Record<string, string>> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/**
 * A VAE key in diffusers' current naming: the mid-block attention's `query/key/value/proj_attn`
 * become `to_q/to_k/to_v/to_out.0`, as diffusers' `_convert_deprecated_attention_blocks` does.
 * Other keys are unchanged.
 *
 * @example
 * ```ts
 * convertLegacyVAEKey('decoder.mid_block.attentions.0.proj_attn.weight'); // 'decoder.mid_block.attentions.0.to_out.0.weight'
 * ```
 */
export function convertLegacyVAEKey(key: string): string {
  return key.replace(
    /^((?:encoder|decoder)\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/,
    (_, p: string, old: string, w: string) => `${p}.${OLD_ATTENTION[old]}.${w}`,
  );
}
