/**
 * Name mapping between Kiln/diffusers module paths and kohya's flattened LoRA names
 * (`unet` + `down_blocks.0.attentions.0.proj_in` ↔ `lora_unet_down_blocks_0_attentions_0_proj_in`).
 */

/** Model components a LoRA file covers, by their diffusers prefix. @example LORA_COMPONENTS.includes('unet'); // true */
export const LORA_COMPONENTS = ['unet', 'text_encoder', 'text_encoder_2'] as const;
/** A pipeline component a LoRA file can adapt. @example const component: LoraComponent = 'text_encoder'; */
export type LoraComponent = (typeof LORA_COMPONENTS)[number];

/** kohya's prefix of each component (`lora_te1_` is read as the first text encoder too). @example KOHYA_PREFIXES.unet; // 'lora_unet' */
export const KOHYA_PREFIXES: Readonly<Record<LoraComponent, string>> = {
  unet: 'lora_unet',
  text_encoder: 'lora_te',
  text_encoder_2: 'lora_te2',
};

/**
 * Path segments that contain '_' in diffusers' UNet and transformers' CLIP: kohya joins
 * everything with '_', so these are what a name is split back into (longest first).
 */
const MULTI_TOKEN_SEGMENTS = [
  'down_blocks',
  'up_blocks',
  'mid_block',
  'transformer_blocks',
  'proj_in',
  'proj_out',
  'to_q',
  'to_k',
  'to_v',
  'to_out',
  'add_k_proj',
  'add_v_proj',
  'add_q_proj',
  'to_add_out',
  'conv_shortcut',
  'time_emb_proj',
  'conv_in',
  'conv_out',
  'conv_norm_out',
  'time_embedding',
  'linear_1',
  'linear_2',
  'class_embedding',
  'add_embedding',
  'encoder_hid_proj',
  'text_model',
  'self_attn',
  'q_proj',
  'k_proj',
  'v_proj',
  'out_proj',
  'text_projection',
  'final_layer_norm',
  'layer_norm1',
  'layer_norm2',
  'token_embedding',
  'position_embedding',
]
  .map((s) => s.split('_'))
  .sort((a, b) => b.length - a.length);

/**
 * kohya's name of a module: prefix + path with '.' → '_'.
 *
 * @example
 * ```ts
 * kohyaName('unet', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q');
 * // 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q'
 * ```
 */
export function kohyaName(component: LoraComponent, path: string): string {
  return `${KOHYA_PREFIXES[component]}_${path.replace(/\./g, '_')}`;
}

/**
 * Splits a kohya name back into component and module path. With `known` (the model's module
 * paths per component) the match is exact; without, segments are rebuilt from diffusers' and
 * transformers' names (what diffusers' own converter assumes). Returns null for another prefix.
 *
 * @example
 * ```ts
 * parseKohyaName('lora_te_text_model_encoder_layers_0_self_attn_q_proj');
 * // { component: 'text_encoder', path: 'text_model.encoder.layers.0.self_attn.q_proj' }
 * ```
 */
export function parseKohyaName(
  name: string,
  known?: ReadonlyMap<string, { component: LoraComponent; path: string }>,
): { component: LoraComponent; path: string } | null {
  const exact = known?.get(name);
  if (exact) return exact;
  const prefixes: [string, LoraComponent][] = [
    ['lora_unet_', 'unet'],
    ['lora_te1_', 'text_encoder'],
    ['lora_te2_', 'text_encoder_2'],
    ['lora_te_', 'text_encoder'],
  ];
  const hit = prefixes.find(([p]) => name.startsWith(p));
  if (!hit) return null;
  const tokens = name.slice(hit[0].length).split('_');
  const segments: string[] = [];
  for (let i = 0; i < tokens.length;) {
    const word = MULTI_TOKEN_SEGMENTS.find((w) => w.every((t, j) => tokens[i + j] === t));
    const n = word ? word.length : 1;
    segments.push(tokens.slice(i, i + n).join('_'));
    i += n;
  }
  return { component: hit[1], path: segments.join('.') };
}

/**
 * Normalises a diffusers-style LoRA key (after its component prefix) to PEFT's form, as
 * diffusers' `convert_unet_state_dict_to_peft` / `convert_state_dict_to_peft` do: the older
 * `…to_q.lora.down.weight`, `…processor.to_q_lora.down.weight` and
 * `…q_proj.lora_linear_layer.down.weight` become `…to_q.lora_A.weight` / `…q_proj.lora_A.weight`.
 * Returns the module path and which matrix, `alpha` for a network-alpha key, or null.
 */
export function parseDiffusersKey(component: LoraComponent, key: string): { path: string; part: 'A' | 'B' | 'alpha' } | null {
  let k = key.replace(/\.processor\./g, '.');
  const te = component !== 'unet';
  k = k.replace(/\.to_(q|k|v)_lora\.(down|up)/, (_, p: string, d: string) => (te ? `.${p}_proj.lora.${d}` : `.to_${p}.lora.${d}`));
  k = k.replace(/\.to_out_lora\.(down|up)/, (_, d: string) => (te ? `.out_proj.lora.${d}` : `.to_out.0.lora.${d}`));
  k = k.replace(/\.lora(?:_linear_layer)?\.down\./, '.lora_A.').replace(/\.lora(?:_linear_layer)?\.up\./, '.lora_B.');
  const m = /^(.+)\.lora_(A|B)\.weight$/.exec(k);
  if (m) return { path: m[1]!, part: m[2] as 'A' | 'B' };
  const a = /^(.+)\.alpha$/.exec(k);
  return a ? { path: a[1]!, part: 'alpha' } : null;
}
