// Writes a trained base pipeline (train-base.ts's output) with float16 weights, by default into
// packages/world/model/: half the bytes in the repository; models built in float32 convert them on
// load. Usage: node --conditions=kiln-source --import tsx packages/world/scripts/export-base.ts world-run/base [outDir]
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';

const src = process.argv[2] ?? 'world-run/base';
const out = process.argv[3] ?? fileURLToPath(new URL('../model/', import.meta.url));
// The package's own model folder is replaced; another folder must be new (nothing of the user's is removed).
if (process.argv[3] && existsSync(out)) throw new Error(`export-base: ${out} already exists; give a new folder`);
await k.useBackend('cpu');
const pipe = await StableDiffusionPipeline.fromPretrained(src, { dtype: 'float16' });
await rm(out, { recursive: true, force: true });
await pipe.savePretrained(out);
pipe.dispose();
console.log(`wrote ${out}`);
