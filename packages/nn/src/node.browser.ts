/**
 * `@kiln/nn/node` in a browser bundle (its `browser` export condition): the same names, each
 * throwing {@link NodeOnlyError}, so that models' `fromPretrained`/`savePretrained` bundle
 * without `node:` modules and fail with a typed error if called. `test/node-browser.test.ts`
 * checks that the names match `node.ts`.
 *
 * @packageDocumentation
 */
import { nodeOnly } from './errors.js';

const stub = (name: string) => nodeOnly(`${name} (@kiln/nn/node)`);

export const openSafetensors = stub('openSafetensors');
export const loadSafetensors = stub('loadSafetensors');
export const saveSafetensors = stub('saveSafetensors');
export const parseShardIndex = stub('parseShardIndex');
export const SafetensorsFile = stub('SafetensorsFile');
export const ShardedSafetensors = stub('ShardedSafetensors');
export const writeAtomic = stub('writeAtomic');
export const writeFileAtomic = stub('writeFileAtomic');
export { WEIGHTS_NAMES } from './io/weights-names.js';
export const variantFileName = stub('variantFileName');
export const modelRoot = stub('modelRoot');
export const findWeightsFile = stub('findWeightsFile');
export const openWeights = stub('openWeights');
export const readConfig = stub('readConfig');
export const loadPretrained = stub('loadPretrained');
export const savePretrained = stub('savePretrained');
export const readLoraFile = stub('readLoraFile');
export const saveLoraWeights = stub('saveLoraWeights');
export const loadLoraWeights = stub('loadLoraWeights');
export const convertLoraFile = stub('convertLoraFile');
