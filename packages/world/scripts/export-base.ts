// Writes a trained base pipeline (train-base.ts's output) into packages/world/model/ with float16
// weights: half the bytes in the repository; models built in float32 convert them on load.
// Usage: node --conditions=kiln-source --import tsx packages/world/scripts/export-base.ts world-run/base
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';

const src = process.argv[2] ?? 'world-run/base';
const out = fileURLToPath(new URL('../model/', import.meta.url));
await k.useBackend('cpu');
const pipe = await StableDiffusionPipeline.fromPretrained(src, { dtype: 'float16' });
await rm(out, { recursive: true, force: true });
await pipe.savePretrained(out);
pipe.dispose();
console.log(`wrote ${out}`);
