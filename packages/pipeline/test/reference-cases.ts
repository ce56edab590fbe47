// The txt2img runs compared with diffusers (scripts/make_reference_image.py runs the same cases).
// Each case's prompts are encoded by Kiln's tiny text encoder; diffusers gets those embeddings and
// the same initial latents, so the comparison covers UNet, guidance, scheduler loop and VAE.
export interface ReferenceCase {
  name: string;
  scheduler: string;
  prompts: string[];
  negativePrompt: string;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  seed: number;
}

export const REFERENCE_CASES: ReferenceCase[] = [
  {
    name: 'pndm',
    scheduler: 'PNDMScheduler',
    prompts: ['a photo of an astronaut riding a horse'],
    negativePrompt: '',
    steps: 10,
    guidanceScale: 7.5,
    guidanceRescale: 0,
    seed: 42,
  },
  {
    name: 'dpm',
    scheduler: 'DPMSolverMultistepScheduler',
    prompts: ['a red fox in the snow', 'a lighthouse at dusk'],
    negativePrompt: 'blurry',
    steps: 8,
    guidanceScale: 5,
    guidanceRescale: 0.7,
    seed: 7,
  },
  {
    name: 'euler',
    scheduler: 'EulerDiscreteScheduler',
    prompts: ['a bowl of fruit'],
    negativePrompt: '',
    steps: 6,
    guidanceScale: 1,
    guidanceRescale: 0,
    seed: 3,
  },
];
