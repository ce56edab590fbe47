/**
 * `@kiln/dreambooth-trainer/node`: the command-line parser (`parseTrainerArgs`, `trainerHelp`),
 * config files, the filesystem storage (`nodeStorage`), WebP decoding from disk, and the VAE and
 * text-to-image trainers. `trainDreamBooth`, image folders, class images and checkpoints are
 * re-exported from the main entry (the same functions, which in Node default to the filesystem).
 *
 * @example
 * ```ts
 * import { parseTrainerArgs, trainDreamBooth } from '@kiln/dreambooth-trainer/node';
 * const config = parseTrainerArgs(process.argv.slice(2));
 * await trainDreamBooth(config, { progress: (line) => process.stderr.write(`\r${line}`) });
 * ```
 * @packageDocumentation
 */
export { trainDreamBooth, runTrainer } from './train.js';
export { nodeStorage } from './storage/node-storage.js';
export type { StepInfo, TrainHooks, TrainResult } from './train.js';
export { parseTrainerArgs, readConfigFile, trainerHelp, readFlags } from './args.js';
export { loadImageFolder, listImages, IMAGE_EXTENSIONS } from './image-folder.js';
export { decodeWebp } from './webp-node.js';
export { isWebp } from './decode-image.js';
export type { ImageFolderOptions } from './image-folder.js';
export { generateClassImages } from './class-images.js';
export type { ClassImageOptions } from './class-images.js';
export { listCheckpoints, resolveCheckpoint, fingerprintOf } from './checkpoint-io.js';
export type { TrainerState } from './checkpoint-io.js';
export { LDM_TEXT_PREFIX } from './output.js';
export { trainVae, VaeTrainerConfigSchema, parseVaeTrainerArgs, vaeTrainerHelp } from './train-vae.js';
export type { VaeTrainerConfig, VaeTrainerConfigInput, VaeTrainResult } from './train-vae.js';
export {
  trainTextToImage,
  parseTextToImageConfig,
  parseTextToImageArgs,
  textToImageHelp,
  TextToImageConfigSchema,
} from './text-to-image.js';
export type { TextToImageConfigInput } from './text-to-image.js';
