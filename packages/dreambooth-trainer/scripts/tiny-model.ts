// A tiny Stable Diffusion 1.x model with seeded random weights, written as a diffusers folder by
// Kiln itself (savePretrained), for the trainer's end-to-end tests and benchmark: the real CLIP
// tokenizer, a 1-layer CLIP text model of width 32, a 2-level UNet (blocks [32, 64]) and a
// 2-level VAE (2 pixels per latent). The same seed gives the same weights on every backend.
//
//   node --conditions=kiln-source --import tsx packages/dreambooth-trainer/scripts/tiny-model.ts OUT_DIR [SEED]
import * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';

/** Builds the tiny pipeline on the current backend (the browser tests build it in the page from the same code). */
export async function tinyDreamBoothPipeline(seed = 7, hidden = 32): Promise<StableDiffusionPipeline> {
  const tokenizer = await CLIPTokenizer.fromOpenAI();
  k.manualSeed(seed);
  const textEncoder = new CLIPTextModel({
    vocab_size: 49408,
    hidden_size: hidden,
    intermediate_size: 2 * hidden,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    projection_dim: hidden,
  });
  const unet = new UNet2DConditionModel({
    sample_size: 8,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [32, 64],
    layers_per_block: 1,
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    cross_attention_dim: hidden,
    attention_head_dim: 8,
    norm_num_groups: 8,
  });
  const vae = new AutoencoderKL({
    sample_size: 16,
    in_channels: 3,
    out_channels: 3,
    block_out_channels: [32, 64],
    layers_per_block: 1,
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    latent_channels: 4,
    norm_num_groups: 32,
    scaling_factor: 0.18215,
  });
  const scheduler = schedulerFromConfig({
    _class_name: 'PNDMScheduler',
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    num_train_timesteps: 1000,
    clip_sample: false,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
  });
  return new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler });
}

/** Builds the tiny pipeline on the current backend and writes it to `dir`. */
export async function writeTinyDreamBoothModel(dir: string, seed = 7, hidden = 32): Promise<void> {
  const pipe = await tinyDreamBoothPipeline(seed, hidden);
  try {
    await pipe.savePretrained(dir);
  } finally {
    pipe.dispose();
  }
}

// `globalThis.process`: the browser tests import this module too.
const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
if (argv[1]?.endsWith('tiny-model.ts') && argv[2]) {
  await k.useBackend('wasm');
  await writeTinyDreamBoothModel(argv[2], argv[3] === undefined ? 7 : Number(argv[3]));
  console.log(`tiny DreamBooth base model -> ${argv[2]}`);
}
