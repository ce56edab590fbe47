/**
 * @kiln/dreambooth-trainer: DreamBooth fine-tuning of Stable Diffusion 1.x, as diffusers'
 * `train_dreambooth.py` does it. This entry runs in Node and in a browser: the trainer
 * (`trainDreamBooth`), the config schema, the dataset, image decoding and resizing, the loss, and
 * the storage the trainer reads and writes through (the filesystem in Node, the Origin Private
 * File System or memory in a browser). The command-line parser, `nodeStorage` and the VAE and
 * text-to-image trainers are in `@kiln/dreambooth-trainer/node`.
 *
 * @example
 * ```ts
 * import { parseTrainerConfig, trainDreamBooth } from '@kiln/dreambooth-trainer';
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
export { decodeImage, isWebp } from './decode-image.js';
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
export { trainDreamBooth } from './train.js';
export type { StepInfo, TrainHooks, TrainResult } from './train.js';
export type { EnvironmentOptions, PipelineLoader } from './environment.js';
export { StorageError } from './storage/storage.js';
export type { TrainerStorage, StorageErrorCode } from './storage/storage.js';
export { memoryStorage } from './storage/memory-storage.js';
export { opfsStorage } from './storage/opfs-storage.js';
export { loadPipelineFolder, savePipelineFolder } from './storage/pipeline-folder.js';
export { listCheckpoints, resolveCheckpoint } from './checkpoint-io.js';
export { loadImageFolder, listImages, IMAGE_EXTENSIONS } from './image-folder.js';
export type { ImageFolderOptions } from './image-folder.js';
export { generateClassImages } from './class-images.js';
export type { ClassImageOptions } from './class-images.js';
export { decodeWebpImage } from './webp.js';
