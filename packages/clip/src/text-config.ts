import { z } from 'zod';

/**
 * transformers' `CLIPTextConfig` fields (snake_case, as in `config.json`). Unknown fields are kept
 * so a saved config round-trips; the defaults are SD 1.x's text encoder (openai/clip-vit-large-patch14).
 */
export const CLIPTextConfigSchema = z
  .object({
    vocab_size: z.number().int().positive().default(49408),
    hidden_size: z.number().int().positive().default(768),
    intermediate_size: z.number().int().positive().default(3072),
    num_hidden_layers: z.number().int().positive().default(12),
    num_attention_heads: z.number().int().positive().default(12),
    max_position_embeddings: z.number().int().positive().default(77),
    hidden_act: z.enum(['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh']).default('quick_gelu'),
    layer_norm_eps: z.number().positive().default(1e-5),
    attention_dropout: z.number().min(0).max(1).default(0),
    bos_token_id: z.number().int().default(49406),
    eos_token_id: z.number().int().default(49407),
    pad_token_id: z.number().int().default(1),
    projection_dim: z.number().int().positive().default(768),
  })
  .passthrough()
  .refine((c) => c.hidden_size % c.num_attention_heads === 0, {
    message: 'hidden_size must be divisible by num_attention_heads',
    path: ['hidden_size'],
  });

export type CLIPTextConfig = z.output<typeof CLIPTextConfigSchema>;
export type CLIPTextConfigInput = z.input<typeof CLIPTextConfigSchema>;

/** Thrown for a config.json that does not describe a CLIP text model; names the file and field. */
export class CLIPConfigError extends Error {
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
  const r = CLIPTextConfigSchema.safeParse(raw);
  if (!r.success) throw new CLIPConfigError(file, r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  return r.data;
}
