/**
 * `@kiln/dreambooth-trainer/node`: the trainer (`trainDreamBooth`), the command-line parser
 * (`parseTrainerArgs`, `trainerHelp`), image folders, class-image generation and checkpoints.
 * Node only: it reads image folders and writes checkpoints and the trained model.
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
