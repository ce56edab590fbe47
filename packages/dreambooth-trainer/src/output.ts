import type * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline, modelIndexFor } from '@kiln/pipeline';
import type { StableDiffusionComponents } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import { LORA_WEIGHTS_NAME } from './lora-training.js';
import type { TrainingLora } from './lora-training.js';
import type { Session } from './session.js';
import { savePipelineFolder } from './storage/pipeline-folder.js';
import { writeTensors } from './storage/tensor-files.js';

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
    const file = s.storage.join(c.output_dir, LORA_WEIGHTS_NAME);
    await o.lora.save(s.storage, file);
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
  const frozen = await frozenComponents(s);
  try {
    await writePipeline(s, new StableDiffusionPipeline({ ...s.pipe, ...frozen.components, scheduler }), o);
  } finally {
    frozen.release();
  }
}

/**
 * The VAE and text encoder to save. Under --mixed_precision the frozen ones were cast to half
 * precision for the run, so they are read again from the base model, as diffusers' script
 * rebuilds the pipeline from `pretrained_model_name_or_path`: the output holds them as they were.
 */
async function frozenComponents(s: Session): Promise<{ components: Partial<StableDiffusionComponents>; release: () => void }> {
  const c = s.config;
  if (s.pipe.vae.encoder.convIn.weight.dtype === 'float32') return { components: {}, release: () => {} };
  const base = await s.loadBase();
  base.unet.dispose();
  if (c.train_text_encoder) base.textEncoder.dispose();
  return {
    components: c.train_text_encoder ? { vae: base.vae } : { vae: base.vae, textEncoder: base.textEncoder },
    release: () => {
      base.vae.dispose();
      if (!c.train_text_encoder) base.textEncoder.dispose();
    },
  };
}

async function writePipeline(s: Session, pipe: StableDiffusionPipeline, o: { steps: number; log: (line: string) => void }): Promise<void> {
  const c = s.config;
  const scheduler = pipe.scheduler;
  const storage = s.storage;
  await savePipelineFolder(storage, c.output_dir, pipe);
  if (c.skip_save_text_encoder) {
    // diffusers saves text_encoder=None: the folder is absent and model_index.json says [null, null].
    await storage.remove(storage.join(c.output_dir, 'text_encoder'));
    const index = { ...modelIndexFor(scheduler.className), text_encoder: [null, null] };
    await storage.write(storage.join(c.output_dir, 'model_index.json'), `${JSON.stringify(index, null, 2)}\n`);
  }
  o.log(`wrote the trained pipeline to ${c.output_dir}`);
  if (c.save_single_file) {
    const file = storage.join(c.output_dir, 'model.safetensors');
    const tensors = new Map<string, k.Tensor>([...Object.entries(pipe.unet.ldmStateDict()), ...Object.entries(pipe.vae.ldmStateDict())]);
    for (const [key, t] of pipe.textEncoder.namedParameters()) tensors.set(LDM_TEXT_PREFIX + key, t);
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
    await writeTensors(storage, file, tensors, metadata);
    o.log(`wrote ${file}`);
  }
}
