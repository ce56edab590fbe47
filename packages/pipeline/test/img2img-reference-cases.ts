// The img2img runs compared with diffusers' StableDiffusionImg2ImgPipeline
// (scripts/make_img2img_reference.py runs the same cases). Each case's prompts are encoded by Kiln's
// tiny text encoder; diffusers gets those embeddings, the same init image and the same random
// draws (the VAE posterior's ε, then the noise, as Kiln's generator makes them from `seed`).
export interface Img2ImgReferenceCase {
  name: string;
  scheduler: string;
  prompts: string[];
  negativePrompt: string;
  steps: number;
  strength: number;
  guidanceScale: number;
  seed: number;
}

export const IMG2IMG_REFERENCE_CASES: Img2ImgReferenceCase[] = [
  {
    name: 'ddim_0.5',
    scheduler: 'DDIMScheduler',
    prompts: ['a lighthouse at dusk'],
    negativePrompt: '',
    steps: 10,
    strength: 0.5,
    guidanceScale: 7.5,
    seed: 11,
  },
  {
    name: 'ddim_0.8',
    scheduler: 'DDIMScheduler',
    prompts: ['a red fox in the snow'],
    negativePrompt: 'blurry',
    steps: 10,
    strength: 0.8,
    guidanceScale: 5,
    seed: 12,
  },
  {
    name: 'dpm_0.5',
    scheduler: 'DPMSolverMultistepScheduler',
    prompts: ['a bowl of fruit'],
    negativePrompt: '',
    steps: 8,
    strength: 0.5,
    guidanceScale: 7.5,
    seed: 13,
  },
  {
    // Two prompts share one init image (diffusers repeats its latents; the noise is per image).
    name: 'dpm_0.8',
    scheduler: 'DPMSolverMultistepScheduler',
    prompts: ['a photo of an astronaut riding a horse', 'a castle on a hill'],
    negativePrompt: 'low quality',
    steps: 8,
    strength: 0.8,
    guidanceScale: 6,
    seed: 14,
  },
];
