/** What {@link formatParameters} writes: the settings an image was made with. */
export interface GenerationParameters {
  prompt: string;
  negativePrompt?: string;
  steps: number;
  /** A diffusers scheduler class name (written under the front ends' sampler name) or a sampler name. */
  scheduler: string;
  guidanceScale: number;
  seed: number;
  width: number;
  height: number;
  /** diffusers' clip_skip (written as the front ends' "Clip skip", which is one more). */
  clipSkip?: number;
  /** The model's name (a folder name or Hub id). */
  model?: string;
  /** Whether the scheduler used Karras sigmas ("DPM++ 2M Karras"). */
  karras?: boolean;
  /** img2img's strength (written as the front ends' "Denoising strength"). */
  denoisingStrength?: number;
}

/** AUTOMATIC1111's sampler names for diffusers' scheduler classes. */
export const SAMPLER_NAMES: Readonly<Record<string, string>> = {
  DDPMScheduler: 'DDPM',
  DDIMScheduler: 'DDIM',
  PNDMScheduler: 'PLMS',
  EulerDiscreteScheduler: 'Euler',
  EulerAncestralDiscreteScheduler: 'Euler a',
  DPMSolverMultistepScheduler: 'DPM++ 2M',
};

/**
 * The generation parameters as AUTOMATIC1111's web UI writes them into a PNG's `parameters` text
 * chunk (read back by it, ComfyUI, InvokeAI and civitai): the prompt, a `Negative prompt:` line
 * when there is one, then `Steps: …, Sampler: …, CFG scale: …, Seed: …, Size: WxH, …`.
 *
 * @example
 * ```ts
 * formatParameters({ prompt: 'a fox', steps: 20, scheduler: 'EulerAncestralDiscreteScheduler', guidanceScale: 7.5, seed: 42, width: 512, height: 512 });
 * // 'a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512'
 * ```
 */
export function formatParameters(p: GenerationParameters): string {
  const sampler = (SAMPLER_NAMES[p.scheduler] ?? p.scheduler) + (p.karras ? ' Karras' : '');
  const fields: [string, string | number | undefined][] = [
    ['Steps', p.steps],
    ['Sampler', sampler],
    ['CFG scale', p.guidanceScale],
    ['Seed', p.seed],
    ['Size', `${p.width}x${p.height}`],
    ['Model', p.model],
    ['Denoising strength', p.denoisingStrength],
    ['Clip skip', p.clipSkip === undefined ? undefined : p.clipSkip + 1],
  ];
  // A1111 quotes a value holding its separators so that the line parses back.
  const value = (v: string | number) => (typeof v === 'string' && /[,:\n]/.test(v) ? JSON.stringify(v) : String(v));
  const line = fields.flatMap(([k, v]) => (v === undefined ? [] : [`${k}: ${value(v)}`])).join(', ');
  const negative = p.negativePrompt ? `\nNegative prompt: ${p.negativePrompt}` : '';
  return `${p.prompt}${negative}\n${line}`;
}
