import { StableDiffusionPipeline, encodePng } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import type { RunLogger } from '@kiln/tracking';
import type { Session } from './session.js';

/** Validation steps, as diffusers' log_validation uses (25). */
export const VALIDATION_STEPS = 25;

/**
 * diffusers' `log_validation`: `num_validation_images` images of the validation prompt with the
 * model as it is now, through `validation_scheduler`, seeded (seed + i), written to
 * `output_dir/validation/step-N-i.png` and logged as images.
 */
export async function runValidation(s: Session, step: number, tracker: RunLogger): Promise<void> {
  const c = s.config;
  const base = s.pipe.scheduler.toJSON() as Record<string, unknown>;
  const scheduler = schedulerFromConfig({ ...base, prediction_type: s.predictionType }, { className: c.validation_scheduler });
  const pipe = new StableDiffusionPipeline({ ...s.pipe, scheduler });
  const rgba = [];
  for (let i = 0; i < c.num_validation_images; i++) {
    const out = await pipe.txt2img({
      prompt: c.validation_prompt!,
      seed: s.seed + i,
      numInferenceSteps: VALIDATION_STEPS,
      width: c.resolution,
      height: c.resolution,
    });
    out.images.dispose();
    rgba.push(out.rgba[0]);
    await s.storage.write(
      s.storage.join(c.output_dir, 'validation', `step-${step}-${i}.png`),
      encodePng(out.rgba[0], { text: { parameters: `${c.validation_prompt}\nSteps: ${VALIDATION_STEPS}, Seed: ${s.seed + i}` } }),
    );
  }
  tracker.logImages(step, 'validation', rgba);
  s.pipe.unet.train();
  if (c.train_text_encoder) s.pipe.textEncoder.train();
}
