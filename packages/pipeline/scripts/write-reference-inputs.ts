// Writes the tiny model folder and the inputs of the diffusers reference run:
//
//   node --conditions=kiln-source --import tsx packages/pipeline/scripts/write-reference-inputs.ts OUT
//   REF_SRC=… /usr/bin/python3 packages/pipeline/scripts/make_reference_image.py OUT HARNESS_DIR
//   cp OUT/reference.safetensors packages/pipeline/test/fixtures/
//
// OUT/io.safetensors holds, per case of test/reference-cases.ts, Kiln's prompt embeddings
// (`<case>.prompt_embeds`, `<case>.negative_prompt_embeds`) and the initial latents drawn from the
// case's seed (`<case>.latents`); OUT/cases.json the cases.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '../src/index.js';
import { REFERENCE_CASES } from '../test/reference-cases.js';
import { writeTinyModel } from '../src/testing.js';

const out = process.argv[2];
if (!out) throw new Error('usage: write-reference-inputs.ts OUT_DIR');
await k.useBackend('cpu');
await writeTinyModel(out);
const pipe = await StableDiffusionPipeline.fromPretrained(out);
const io: Record<string, k.Tensor> = {};
for (const c of REFERENCE_CASES) {
  io[`${c.name}.prompt_embeds`] = pipe.encodePrompt(c.prompts);
  io[`${c.name}.negative_prompt_embeds`] = pipe.encodePrompt(c.prompts.map(() => c.negativePrompt));
  io[`${c.name}.latents`] = k.randn([c.prompts.length, 4, 16, 16], { generator: new k.Generator(c.seed) });
}
await saveSafetensors(join(out, 'io.safetensors'), io, { format: 'pt' });
writeFileSync(join(out, 'cases.json'), `${JSON.stringify(REFERENCE_CASES, null, 2)}\n`);
console.log(`${Object.keys(io).length} tensors -> ${out}/io.safetensors`);
