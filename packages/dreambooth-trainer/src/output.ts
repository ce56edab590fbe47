import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type * as k from '@kiln/tensor-core';
import { saveSafetensors, writeFileAtomic } from '@kiln/nn/node';
import { StableDiffusionPipeline, modelIndexFor } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import { LORA_WEIGHTS_NAME } from './lora-training.js';
import type { TrainingLora } from './lora-training.js';
import type { Session } from './session.js';

/** The SD 1.x single-file key of a transformers CLIP text-model key (`cond_stage_model.transformer.` + key). */
export const LDM_TEXT_PREFIX = 'cond_stage_model.transformer.';

/**
 * Writes the trained pipeline to output_dir as diffusers does at the end of train_dreambooth.py:
 * every component (the trained UNet and text encoder, the base VAE, tokenizer and scheduler,
 * with prediction_type and zero-terminal-SNR carried into its config), `model_index.json` last;
 * optionally without `text_encoder/`, and optionally an SD 1.x single file with the training
 * settings in its header. A `--lora` run writes `pytorch_lora_weights.safetensors` instead, as
 * `train_dreambooth_lora.py` does.
 */
export async function saveOutput(s: Session, o: { steps: number; log: (line: string) => void; lora?: TrainingLora | null }): Promise<void> {
  const c = s.config;
  if (o.lora) {
    // train_dreambooth_lora.py's output: the adapters alone, which load_lora_weights reads onto the base model.
    const file = join(c.output_dir, LORA_WEIGHTS_NAME);
    await o.lora.save(file);
    o.log(`wrote the LoRA weights to ${file}`);
    return;
  }
  const base = s.pipe.scheduler.toJSON() as Record<string, unknown>;
  const scheduler = schedulerFromConfig(
    {
      ...base,
      prediction_type: s.predictionType,
      ...(c.zero_terminal_snr ? { rescale_betas_zero_snr: true, timestep_spacing: 'trailing' } : {}),
    },
    { className: s.pipe.scheduler.className },
  );
  const pipe = new StableDiffusionPipeline({ ...s.pipe, scheduler });
  await pipe.savePretrained(c.output_dir);
  if (c.skip_save_text_encoder) {
    // diffusers saves text_encoder=None: the folder is absent and model_index.json says [null, null].
    await rm(join(c.output_dir, 'text_encoder'), { recursive: true, force: true });
    const index = { ...modelIndexFor(scheduler.className), text_encoder: [null, null] };
    await writeFileAtomic(join(c.output_dir, 'model_index.json'), `${JSON.stringify(index, null, 2)}\n`);
  }
  o.log(`wrote the trained pipeline to ${c.output_dir}`);
  if (c.save_single_file) {
    const file = join(c.output_dir, 'model.safetensors');
    const tensors = new Map<string, k.Tensor>([
      ...Object.entries(s.pipe.unet.ldmStateDict()),
      ...Object.entries(s.pipe.vae.ldmStateDict()),
    ]);
    for (const [key, t] of s.pipe.textEncoder.namedParameters()) tensors.set(LDM_TEXT_PREFIX + key, t);
    const metadata = {
      format: 'pt',
      'modelspec.architecture': 'stable-diffusion-v1',
      ss_training_comment: 'DreamBooth (Kiln)',
      ss_base_model: c.pretrained_model_name_or_path,
      ss_steps: String(o.steps),
      ss_learning_rate: String(c.learning_rate),
      ss_instance_prompt: c.instance_prompt,
      ss_prediction_type: s.predictionType,
      ss_resolution: String(c.resolution),
      ss_seed: String(s.seed),
    };
    await saveSafetensors(file, tensors, metadata);
    o.log(`wrote ${file}`);
  }
}
