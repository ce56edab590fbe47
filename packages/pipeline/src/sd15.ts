/** SD 1.5's `scheduler/scheduler_config.json` (PNDM), the scheduler single-file checkpoints get. */
export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
} as const;

/** The text encoder's prefix in an SD 1.x single-file checkpoint (transformers' names follow it). */
export const LDM_TEXT_ENCODER_PREFIX = 'cond_stage_model.transformer.';
