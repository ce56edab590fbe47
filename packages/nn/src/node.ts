/**
 * `@kiln/nn/node`: the filesystem side of `@kiln/nn` (Node only), kept out of the main entry so
 * that browser bundles have no `node:` imports. Safetensors files and sharded checkpoints, model
 * folders in diffusers' and transformers' layouts (`config.json`, weights, `fp16` variants,
 * `subfolder`), and atomic writes.
 *
 * @example
 * ```ts
 * import { skipInit, loadWeights } from '@kiln/nn';
 * import { loadPretrained, savePretrained } from '@kiln/nn/node';
 *
 * const { model } = await loadPretrained('sd15', {
 *   subfolder: 'text_encoder',
 *   weightsName: 'model',
 *   config: CLIPTextConfigSchema,
 *   build: (config) => new CLIPTextModel(config),
 * });
 * await savePretrained('out/text_encoder', { config: model.config, weights: model.stateDict(), weightsName: 'model' });
 * ```
 * @packageDocumentation
 */
export {
  openSafetensors,
  loadSafetensors,
  saveSafetensors,
  parseShardIndex,
  SafetensorsFile,
  ShardedSafetensors,
} from './safetensors/node.js';
export type { SafetensorsReader } from './safetensors/node.js';
export { writeAtomic, writeFileAtomic } from './io/atomic.js';
export {
  WEIGHTS_NAMES,
  variantFileName,
  modelRoot,
  findWeightsFile,
  openWeights,
  readConfig,
  loadPretrained,
  savePretrained,
} from './io/model-folder.js';
export type { WeightsLocation, ConfigParser, LoadPretrainedOptions, SavePretrainedOptions } from './io/model-folder.js';
export { readLoraFile, saveLoraWeights, loadLoraWeights, convertLoraFile } from './lora/node.js';
