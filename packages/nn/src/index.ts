/**
 * @kiln/nn — modules with upstream state-dict names, layers, optimizers, LR schedules, gradient
 * checkpointing and safetensors.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { AdamW, Linear, Sequential, SiLU } from '@kiln/nn';
 *
 * const mlp = new Sequential([new Linear(4, 8), new SiLU(), new Linear(8, 1)]);
 * const opt = new AdamW(mlp.parameters(), { lr: 1e-3 });
 * k.tidy(() => {
 *   const loss = k.mseLoss(mlp.forward(k.randn([16, 4])), k.zeros([16, 1]));
 *   loss.backward();
 * });
 * opt.step();
 * opt.zeroGrad();
 * ```
 * @packageDocumentation
 */
export { StateDictError, SafetensorsError, OptimizerError, ConfigError, configIssueLines, NodeOnlyError, nodeOnly } from './errors.js';
export type { ShapeMismatch, InvalidValue, StateDictErrorDetails, SafetensorsErrorCode } from './errors.js';
export { parameter, isParameter } from './parameter.js';
export type { Parameter } from './parameter.js';
export { Module } from './module.js';
export type { StateDict, LoadStateDictResult, UnaryModule, ModuleAdapter } from './module.js';
export type { KeyPattern } from './state-dict.js';
export { skipInit, isPlaceholder, uninitializedKeys } from './skip-init.js';
export { loadWeights, prefixedSource, renamedSource } from './load-weights.js';
export type { TensorSource, Rename, LoadWeightsOptions } from './load-weights.js';
export { uniform, normal, fanIn, kaimingUniform } from './init.js';
export type { FactoryOptions } from './init.js';

export { Linear } from './layers/linear.js';
export type { LinearOptions } from './layers/linear.js';
export { Conv2d } from './layers/conv2d.js';
export type { Conv2dLayerOptions, Pair } from './layers/conv2d.js';
export { GroupNorm } from './layers/group-norm.js';
export { LayerNorm } from './layers/layer-norm.js';
export type { LayerNormOptions } from './layers/layer-norm.js';
export { Embedding } from './layers/embedding.js';
export { Dropout } from './layers/dropout.js';
export { SiLU, GELU, QuickGELU, Identity } from './layers/activations.js';
export { ModuleList } from './layers/module-list.js';
export { Sequential } from './layers/sequential.js';

export { checkpoint } from './checkpoint.js';
export type { Checkpointable, CheckpointArg, CheckpointOptions } from './checkpoint.js';
export { clipGradNorm } from './clip-grad.js';

export { Optimizer } from './optim/optimizer.js';
export type { BaseHyper, HyperValue, ParamGroup, ParamGroupInput, ParamState, OptimizerStateDict } from './optim/optimizer.js';
export { AdamW } from './optim/adamw.js';
export type { AdamWHyper, AdamWState } from './optim/adamw.js';
export { SGD } from './optim/sgd.js';
export type { SGDHyper, SGDState } from './optim/sgd.js';
export { LambdaLR, getScheduler } from './optim/lr-scheduler.js';
export type { LrLambda, LRSchedulerState, SchedulerName, GetSchedulerOptions } from './optim/lr-scheduler.js';

export { SAFETENSORS_DTYPE_SIZES, LOADABLE_DTYPES, SAVE_DTYPES, MAX_HEADER_BYTES } from './safetensors/header.js';
export type { SafetensorsDType, TensorInfo } from './safetensors/header.js';
export { parseSafetensors, SafetensorsBytes } from './safetensors/read.js';
export { openSafetensorsBlob, SafetensorsBlob } from './safetensors/blob.js';
export type { LoadTensorOptions } from './safetensors/read.js';
export { serializeSafetensors } from './safetensors/write.js';
export type { TensorMap } from './safetensors/write.js';
// File access (openSafetensors, loadSafetensors, saveSafetensors, model folders) is in `@kiln/nn/node`.
export * from './blocks/index.js';

// LoRA: adapters on Linear/Conv2d, target sets, diffusers/PEFT and kohya layouts (files: `@kiln/nn/node`).
export { LoraLayer } from './lora/lora-layer.js';
export type { LoraOptions, LoraTarget } from './lora/lora-layer.js';
export { injectLora, loraLayers, loraNames, mergeLora, unmergeLora, setLoraScale, setLoraEnabled, removeLora } from './lora/inject.js';
export type { InjectLoraOptions, LoraAdapter } from './lora/inject.js';
export { LORA_TARGETS, matchesTarget } from './lora/targets.js';
export type { LoraTargetPattern } from './lora/targets.js';
export { LORA_COMPONENTS, KOHYA_PREFIXES, kohyaName, parseKohyaName } from './lora/keys.js';
export type { LoraComponent } from './lora/keys.js';
export { LoraFormatError, LORA_ADAPTER_METADATA_KEY, detectLoraFormat, parseLoraStateDict, serializeLoraWeights } from './lora/format.js';
export type { LoraFormat, LoraModuleWeights, LoraWeights } from './lora/format.js';
export { loraStateDict, extractLoraWeights, applyLoraWeights, kohyaNameMap } from './lora/model-io.js';
export type { LoraModels, ApplyLoraOptions } from './lora/model-io.js';
