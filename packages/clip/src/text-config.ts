import { configIssueLines } from '@kiln/nn';
import { KilnError } from '@kiln/tensor-core';
import { z } from 'zod';

// Upper bounds keep an impossible config a CLIPConfigError naming the field, instead of a
// typed-array RangeError (or an allocation of terabytes) deep inside a layer's constructor.
// They are far above every released CLIP text encoder (largest: OpenCLIP bigG, 1280 wide,
// 32 layers, 49 408 tokens) and leave room for research models.
const MAX_VOCAB = 2 ** 20;
const MAX_WIDTH = 2 ** 16;
const MAX_LAYERS = 1024;
const MAX_POSITIONS = 2 ** 16;
const MAX_TOKEN_ID = 2 ** 31 - 1;
// Kernels index a weight with 32-bit integers (wasm i32, WGSL u32 with a sign bit to spare).
const MAX_WEIGHT_ELEMENTS = 2 ** 31 - 1;

const size = (max: number) => z.number().int().positive().max(max);
const tokenId = z.number().int().min(-1).max(MAX_TOKEN_ID);

/**
 * transformers' `CLIPTextConfig` fields (snake_case, as in `config.json`). Unknown fields are kept
 * so a saved config round-trips; the defaults are SD 1.x's text encoder (openai/clip-vit-large-patch14).
 *
 * @example
 * ```ts
 * import { CLIPTextConfigSchema } from '@kiln/clip';
 * CLIPTextConfigSchema.safeParse({ vocab_size: 1e12 }).success; // false: above 2^20
 * ```
 */
export const CLIPTextConfigSchema = z
  .object({
    vocab_size: size(MAX_VOCAB).default(49408),
    hidden_size: size(MAX_WIDTH).default(768),
    intermediate_size: size(4 * MAX_WIDTH).default(3072),
    num_hidden_layers: size(MAX_LAYERS).default(12),
    num_attention_heads: size(MAX_WIDTH).default(12),
    max_position_embeddings: size(MAX_POSITIONS).default(77),
    hidden_act: z.enum(['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh']).default('quick_gelu'),
    layer_norm_eps: z.number().positive().max(1).default(1e-5),
    attention_dropout: z.number().min(0).max(1).default(0),
    bos_token_id: tokenId.default(49406),
    eos_token_id: tokenId.default(49407),
    pad_token_id: tokenId.default(1),
    projection_dim: size(MAX_WIDTH).default(768),
  })
  .passthrough()
  .refine((c) => c.hidden_size % c.num_attention_heads === 0, {
    message: 'hidden_size must be divisible by num_attention_heads',
    path: ['hidden_size'],
  })
  .refine((c) => c.vocab_size * c.hidden_size <= MAX_WEIGHT_ELEMENTS, {
    message: `vocab_size × hidden_size must be at most ${MAX_WEIGHT_ELEMENTS} (the token embedding's elements)`,
    path: ['vocab_size'],
  })
  .refine((c) => c.intermediate_size * c.hidden_size <= MAX_WEIGHT_ELEMENTS, {
    message: `intermediate_size × hidden_size must be at most ${MAX_WEIGHT_ELEMENTS} (the MLP weights' elements)`,
    path: ['intermediate_size'],
  });

/** A parsed CLIP text `config.json`: every field resolved. @example const config: CLIPTextConfig = parseCLIPTextConfig(JSON.parse(text)); // SD defaults filled in */
export type CLIPTextConfig = z.output<typeof CLIPTextConfigSchema>;
/** A CLIP text `config.json` as written: any field may be missing (SD 1.x defaults). @example new CLIPTextModel({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4 } satisfies CLIPTextConfigInput); */
export type CLIPTextConfigInput = z.input<typeof CLIPTextConfigSchema>;

/** Thrown for a config.json that does not describe a CLIP text model; names the file and field. @example parseCLIPTextConfig({ hidden_size: -1 }); // throws CLIPConfigError naming hidden_size */
export class CLIPConfigError extends KilnError {
  override name = 'CLIPConfigError';
  constructor(
    readonly file: string,
    readonly issues: string[],
  ) {
    super(`${file}: invalid CLIP text config: ${issues.join('; ')}`);
  }
}

/**
 * Validates and completes a config (defaults are SD 1.x's text encoder).
 *
 * @example
 * ```ts
 * parseCLIPTextConfig({ hidden_size: 32, num_attention_heads: 4 }).num_hidden_layers; // 12
 * ```
 */
export function parseCLIPTextConfig(raw: unknown, file = 'config'): CLIPTextConfig {
  // zod's passthrough copies keys by assignment, so a "__proto__" key would become the result's
  // prototype instead of a field; no config field has that name.
  if (typeof raw === 'object' && raw !== null && Object.hasOwn(raw, '__proto__')) {
    throw new CLIPConfigError(file, ['__proto__: not a config field']);
  }
  const r = CLIPTextConfigSchema.safeParse(raw);
  if (!r.success) throw new CLIPConfigError(file, configIssueLines(r.error));
  return r.data;
}
