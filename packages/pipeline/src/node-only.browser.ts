// `#node-only` in a browser bundle: the same names as node-only.ts, each throwing NodeOnlyError.
import { nodeOnly } from '@kiln/nn';

export const loadPipelineFolder = nodeOnly('StableDiffusionPipeline.fromPretrained (a folder or a Hub id)');
export const savePipelineFolder = nodeOnly('StableDiffusionPipeline.savePretrained');
export const readPipelineLora = nodeOnly('StableDiffusionPipeline.loadLoraWeights from a file (pass LoraWeights in a browser)');
