/**
 * @kiln/vae — diffusers' `AutoencoderKL` (the Stable Diffusion VAE) with diffusers' config fields
 * and state-dict keys.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { AutoencoderKL } from '@kiln/vae';
 *
 * const vae = await AutoencoderKL.fromPretrained('./stable-diffusion-v1-5', { subfolder: 'vae' });
 * const latents = vae.encode(k.rand([1, 3, 512, 512]).mul(2).sub(1)).latentDist.sample(0);
 * ```
 * @packageDocumentation
 */
export { AutoencoderKL } from './autoencoder-kl.js';
export type { VAEForwardOptions, VAEPretrainedOptions } from './autoencoder-kl.js';
export { DiagonalGaussianDistribution } from './distribution.js';
export type { SampleGenerator } from './distribution.js';
export { VAEConfigSchema, parseVAEConfig } from './config.js';
export type { VAEConfig, VAEConfigInput } from './config.js';
export { VAEConfigError } from './errors.js';
export { VAEAttention } from './attention.js';
export { Encoder, Decoder, DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D } from './vae.js';
export type { Trace } from './vae.js';
export { convertLegacyVAEKey } from './legacy-names.js';
export { LDM_VAE_PREFIX, ldmVAEKey } from './single-file.js';
export type { LDMKey } from './single-file.js';
