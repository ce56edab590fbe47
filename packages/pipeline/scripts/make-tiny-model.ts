// Writes the tiny Stable Diffusion folder (see src/testing.ts) in diffusers' layout:
//
//   node --conditions=kiln-source --import tsx packages/pipeline/scripts/make-tiny-model.ts OUT_DIR [SEED]
import * as k from '@kiln/tensor-core';
import { writeTinyModel } from '../src/testing.js';

const [out, seed] = process.argv.slice(2);
if (!out) throw new Error('usage: make-tiny-model.ts OUT_DIR [SEED]');
await k.useBackend('wasm');
await writeTinyModel(out, seed === undefined ? 1234 : Number(seed));
console.log(`tiny Stable Diffusion pipeline -> ${out}`);
