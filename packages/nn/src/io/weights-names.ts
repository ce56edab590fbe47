// Data only (no `node:` imports), so `@kiln/nn/node`'s browser build can export it too.

/**
 * The weight file base names of the two layouts: diffusers (`unet/diffusion_pytorch_model.safetensors`)
 * and transformers (`text_encoder/model.safetensors`).
 *
 * @example
 * ```ts
 * WEIGHTS_NAMES.diffusers; // 'diffusion_pytorch_model'
 * ```
 */
export const WEIGHTS_NAMES = { diffusers: 'diffusion_pytorch_model', transformers: 'model' } as const;
