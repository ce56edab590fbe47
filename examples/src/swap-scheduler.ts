/**
 * Swapping the scheduler, as diffusers' `pipe.scheduler = X.from_config(pipe.scheduler.config)`
 * does: every scheduler is built from the model's own `scheduler_config.json` (its betas,
 * `steps_offset`, prediction type carry over), with overrides such as Karras sigmas. Three ways:
 * a name for one call (`txt2img({ scheduler: 'euler_a' })`), a configured scheduler object for one
 * call, or replacing `pipe.scheduler` for every later call.
 *
 * node --conditions=kiln-source --import tsx examples/src/swap-scheduler.ts [model-folder]
 */
import { writeFile } from 'node:fs/promises';
import { encodePng } from '@kiln/pipeline';
import type { RgbaImage, StableDiffusionPipeline } from '@kiln/pipeline';
import { DPMSolverMultistepScheduler, schedulerFromConfig } from '@kiln/scheduler';
import { imageSize, loadPipeline } from './model.js';
import { isMain, pickBackend } from './setup.js';

export interface SchedulerRun {
  /** diffusers' class name of the scheduler that ran. */
  scheduler: string;
  label: string;
  image: RgbaImage;
}

/** One image per scheduler, same prompt and seed. */
export async function compareSchedulers(pipe: StableDiffusionPipeline, options: { steps: number; seed: number }): Promise<SchedulerRun[]> {
  const size = imageSize(pipe);
  const base = { prompt: 'a lighthouse at dusk', seed: options.seed, numInferenceSteps: options.steps, width: size, height: size };
  const runs: SchedulerRun[] = [];
  const record = async (label: string, o: Parameters<StableDiffusionPipeline['txt2img']>[0]) => {
    const { images, rgba, scheduler } = await pipe.txt2img(o);
    images.dispose();
    runs.push({ scheduler, label, image: rgba[0] });
  };
  // 1. The folder's own scheduler (PNDM for SD 1.5).
  await record('default', base);
  // 2. A diffusers class name or a front-end alias, made from the folder's config, for this call only.
  for (const name of ['ddim', 'euler', 'euler_a', 'UniPCMultistepScheduler']) await record(name, { ...base, scheduler: name });
  // 3. A scheduler object with config overrides: DPM-Solver++ 2M with Karras sigmas ("DPM++ 2M Karras").
  const karras = DPMSolverMultistepScheduler.fromConfig({ ...pipe.scheduler.toJSON(), use_karras_sigmas: true });
  await record('dpm++_2m karras', { ...base, scheduler: karras });
  // 4. Replace the pipeline's scheduler for every later call (and for savePretrained).
  const original = pipe.scheduler;
  pipe.scheduler = schedulerFromConfig(original.toJSON(), { className: 'lms' });
  await record('pipe.scheduler = lms', base);
  pipe.scheduler = original;
  return runs;
}

if (isMain(import.meta.url)) {
  console.log(`backend: ${await pickBackend()}`);
  const pipe = await loadPipeline(process.argv[2]);
  for (const run of await compareSchedulers(pipe, { steps: 20, seed: 7 })) {
    const file = `scheduler-${run.label.replace(/\W+/g, '-')}.png`;
    await writeFile(file, encodePng(run.image));
    console.log(`${run.label.padEnd(22)} ${run.scheduler.padEnd(32)} → ${file}`);
  }
  pipe.dispose();
}
