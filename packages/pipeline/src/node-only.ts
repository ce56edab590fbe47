// The pipeline's file access, reached as `#node-only` (package.json `imports`): Node gets this
// module, a bundler for the browser gets node-only.browser.ts, so that the main entry's
// `fromPretrained`, `savePretrained` and `loadLoraWeights(path)` pull no `node:` module into a bundle.
export { loadPipelineFolder } from './load-folder.js';
export { savePipelineFolder } from './save-folder.js';
export { readPipelineLora } from './lora-file.js';
