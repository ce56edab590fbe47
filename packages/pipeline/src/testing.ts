/**
 * `@kiln/pipeline/testing`: a tiny Stable Diffusion pipeline with seeded random weights, for tests
 * and benchmarks of anything built on a pipeline (diffusers' `hf-internal-testing/tiny-stable-diffusion-pipe`
 * plays this part there). Everything is made by Kiln:
 * the real CLIP tokenizer (the vocabulary `@kiln/clip` ships), a 2-layer CLIP text model of width
 * 32 over the full 49408-token vocabulary, a UNet with blocks [32, 64] and cross-attention 32, a VAE
 * with blocks [32, 64] (2 pixels per latent, so the default image is 32×32), and SD 1.5's scheduler
 * config. The same seed gives the same weights on every backend (Philox draws).
 *
 * @example
 * ```ts
 * import { writeTinyModel } from '@kiln/pipeline/testing';
 * await writeTinyModel('/tmp/tiny-sd'); // a diffusers folder StableDiffusionPipeline.fromPretrained loads
 * ```
 * @packageDocumentation
 */
import * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { LORA_TARGETS, injectLora, loraLayers, skipInit } from '@kiln/nn';
import type { LoraFormat } from '@kiln/nn';
import { schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import type { UNetConfigInput } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import type { VAEConfigInput } from '@kiln/vae';
import { StableDiffusionPipeline } from './pipeline.js';
import { SD15_SCHEDULER_CONFIG } from './sd15.js';

export { SD15_SCHEDULER_CONFIG };

/** The tiny CLIP text model's `config.json`. */
export const TINY_TEXT_CONFIG = {
  vocab_size: 49408,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
  projection_dim: 32,
} as const;

/** The tiny UNet's `config.json`. */
export const TINY_UNET_CONFIG: UNetConfigInput = {
  sample_size: 16,
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [32, 64],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  cross_attention_dim: 32,
  attention_head_dim: 8,
  norm_num_groups: 8,
};

/** The tiny VAE's `config.json`. */
export const TINY_VAE_CONFIG: VAEConfigInput = {
  sample_size: 32,
  in_channels: 3,
  out_channels: 3,
  block_out_channels: [32, 64],
  layers_per_block: 1,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  latent_channels: 4,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
};

/**
 * The tiny pipeline on the current backend, weights drawn from `seed`; norm weights and biases are
 * perturbed so they matter.
 *
 * @example
 * ```ts
 * const pipe = await buildTinyPipeline(1234);
 * const { images } = await pipe.txt2img({ prompt: 'a fox', seed: 1, numInferenceSteps: 4 }); // [1, 3, 32, 32]
 * ```
 */
export async function buildTinyPipeline(seed = 1234): Promise<StableDiffusionPipeline> {
  const tokenizer = await CLIPTokenizer.fromOpenAI();
  k.manualSeed(seed);
  const textEncoder = new CLIPTextModel(TINY_TEXT_CONFIG);
  const unet = new UNet2DConditionModel(TINY_UNET_CONFIG);
  const vae = new AutoencoderKL(TINY_VAE_CONFIG);
  k.noGrad(() => {
    for (const m of [textEncoder, unet, vae]) {
      for (const [name, p] of m.namedParameters()) if (/norm/.test(name)) p.assign_(k.tidy(() => p.add(k.randn(p.shape).mul(0.2))));
    }
  });
  const scheduler = schedulerFromConfig(SD15_SCHEDULER_CONFIG);
  return new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler });
}

/**
 * Writes the tiny pipeline as a diffusers folder.
 *
 * @example
 * ```ts
 * await writeTinyModel('/tmp/tiny-sd', 1234);
 * ```
 */
export async function writeTinyModel(dir: string, seed = 1234): Promise<void> {
  const pipe = await buildTinyPipeline(seed);
  try {
    await pipe.savePretrained(dir);
  } finally {
    pipe.dispose();
  }
}

/**
 * Options of {@link writeTinyLora}.
 *
 * @example
 * ```ts
 * await writeTinyLora('/tmp/unet-only.safetensors', { textEncoder: false, std: 0.1, seed: 9 });
 * ```
 */
export interface TinyLoraOptions {
  /** Seed of the adapter's draws (default 3). */
  seed?: number;
  /** Standard deviation of lora_B (default 0.2; a fresh adapter's B is zero and changes nothing). */
  std?: number;
  /** File layout (default diffusers). */
  format?: LoraFormat;
  /** Adapt the text encoder's attention too (default true). */
  textEncoder?: boolean;
}

/**
 * Writes a LoRA file for the tiny pipeline: rank 4, alpha 8 on the UNet's attention projections
 * (and the text encoder's), with lora_B drawn so that it visibly changes images. Node only.
 *
 * @example
 * ```ts
 * await writeTinyLora('/tmp/sks.safetensors', { format: 'kohya' });
 * await pipe.loadLoraWeights('/tmp/sks.safetensors', { scale: 0.5 });
 * ```
 */
export async function writeTinyLora(path: string, options: TinyLoraOptions = {}): Promise<void> {
  const { saveLoraWeights } = await import('@kiln/nn/node');
  const g = new k.Generator(options.seed ?? 3);
  // Only the layers' shapes matter: the base weights are placeholders, never drawn.
  const models = skipInit(() => ({
    unet: new UNet2DConditionModel(TINY_UNET_CONFIG),
    ...((options.textEncoder ?? true) ? { text_encoder: new CLIPTextModel(TINY_TEXT_CONFIG) } : {}),
  }));
  try {
    injectLora(models.unet, { targets: LORA_TARGETS.unetAttention, rank: 4, alpha: 8, generator: g });
    if (models.text_encoder)
      injectLora(models.text_encoder, { targets: LORA_TARGETS.textEncoderAttention, rank: 4, alpha: 8, generator: g });
    k.noGrad(() => {
      for (const m of Object.values(models))
        for (const [, l] of loraLayers(m))
          l.loraB.weight.assign_(k.tidy(() => k.randn(l.loraB.weight.shape, { generator: g }).mul(options.std ?? 0.2)));
    });
    await saveLoraWeights(path, models, { format: options.format });
  } finally {
    for (const m of Object.values(models)) m.dispose();
  }
}
