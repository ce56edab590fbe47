// The trainer's Node side, reached as `#node-only` (package.json `imports`): Node gets this module,
// a bundler for the browser gets node-only.browser.ts, so the main entry pulls no `node:` module.
export { nodeEnvironment } from './node-environment.js';
export { decodeWebp } from './webp-node.js';
