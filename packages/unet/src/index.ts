/**
 * @kiln/unet — diffusers' `UNet2DConditionModel` (Stable Diffusion 1.x) with diffusers' config
 * fields and state-dict keys.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { UNet2DConditionModel } from '@kiln/unet';
 *
 * const unet = await UNet2DConditionModel.fromPretrained('./stable-diffusion-v1-5', { subfolder: 'unet' });
 * const { sample } = unet.forward(k.randn([1, 4, 64, 64]), 999, k.randn([1, 77, 768]));
 * ```
 * @packageDocumentation
 */
export { UNet2DConditionModel } from './unet-2d-condition.js';
export type { UNet2DConditionOutput, UNetForwardOptions, Timestep, PretrainedOptions } from './unet-2d-condition.js';
export { UNetConfigSchema, parseUNetConfig } from './config.js';
export type { UNetConfig, UNetConfigInput } from './config.js';
export { UNetConfigError } from './errors.js';
export { Timesteps, TimestepEmbedding } from './embeddings.js';
export { CrossAttention, GEGLU, FeedForward, BasicTransformerBlock, Transformer2DModel } from './attention.js';
export type { TransformerOptions } from './attention.js';
export { DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D } from './unet-2d-blocks.js';
export type { BlockOptions } from './unet-2d-blocks.js';
export { LDM_UNET_PREFIX, ldmUNetKey } from './single-file.js';
