/**
 * @kiln/dreambooth-trainer: DreamBooth fine-tuning of Stable Diffusion 1.x, as diffusers'
 * `train_dreambooth.py` does it. This entry holds what runs anywhere (the config schema, the
 * dataset, image decoding and resizing, the loss); the trainer itself, which reads folders and
 * writes checkpoints, is `trainDreamBooth` in `@kiln/dreambooth-trainer/node`.
 *
 * @example
 * ```ts
 * import { parseTrainerConfig } from '@kiln/dreambooth-trainer';
 * import { trainDreamBooth } from '@kiln/dreambooth-trainer/node';
 *
 * const config = parseTrainerConfig({ pretrained_model_name_or_path: './sd15', instance_data_dir: './dog', instance_prompt: 'a photo of sks dog', max_train_steps: 400 });
 * await trainDreamBooth(config, { onStep: ({ step, loss }) => console.log(step, loss) });
 * ```
 * @packageDocumentation
 */
export { TrainerConfigError, DatasetError, CheckpointError, TrainingDivergedError, OutputError } from './errors.js';
export { TrainerConfigSchema, OPTION_HELP, OPTION_NAMES, COMPAT_NOTES, compatNotes, optionDefaults, parseTrainerConfig } from './config.js';
export type { TrainerConfig, TrainerConfigInput, OptionName } from './config.js';
export { LORA_LEARNING_RATE, LORA_OUTPUT_DIR } from './config.js';
export { nearest, editDistance } from './nearest.js';
export { decodeImage } from './decode-image.js';
export type { RgbImage } from './decode-image.js';
export { exifOrientation, orient } from './exif.js';
export { resizeBilinear, resizeShorterSide, cropToChw, centerCropOffsets } from './resize.js';
export { DreamBoothDataset } from './dataset.js';
export type { Example, TransformOptions, BatchRows } from './dataset.js';
export { epochPermutation, keyedRandom } from './rng.js';
export { dreamBoothLoss } from './loss.js';
export { GradScaler } from './grad-scaler.js';
export type { GradScalerOptions, GradScalerState } from './grad-scaler.js';
export { MixedPrecision, halfDTypeOf } from './mixed-precision.js';
export type { HalfDType, MixedPrecisionOptions } from './mixed-precision.js';
export type { LossInputs, LossTerms } from './loss.js';
