// Writes the tiny model folder and the inputs of the diffusers img2img reference run:
//
//   node --conditions=kiln-source --import tsx packages/pipeline/scripts/write-img2img-inputs.ts OUT
//   REF_SRC=… /usr/bin/python3 packages/pipeline/scripts/make_img2img_reference.py OUT HARNESS_DIR
//   cp OUT/img2img-reference.safetensors packages/pipeline/test/fixtures/
//
// OUT/io.safetensors holds the init image (`image`, [1, 3, 32, 32] in [0, 1]) and, per case of
// test/img2img-reference-cases.ts, Kiln's prompt embeddings (`<case>.prompt_embeds`,
// `<case>.negative_prompt_embeds`) and the two draws Kiln's img2img makes from the case's seed, in
// its order: the VAE posterior's ε (`<case>.vae_eps`, one per image) and the noise (`<case>.noise`,
// one per output). OUT/cases.json holds the cases.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '../src/index.js';
import { IMG2IMG_REFERENCE_CASES } from '../test/img2img-reference-cases.js';
import { writeTinyModel } from '../src/testing.js';

const out = process.argv[2];
if (!out) throw new Error('usage: write-img2img-inputs.ts OUT_DIR');
await k.useBackend('cpu');
await writeTinyModel(out);
const pipe = await StableDiffusionPipeline.fromPretrained(out);

// A smooth, colourful 32×32 picture with edges (a disc on a gradient), so the VAE sees structure.
const [H, W] = [32, 32];
const pixels = new Float32Array(3 * H * W);
for (let c = 0; c < 3; c++)
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const disc = (x - 18) ** 2 + (y - 13) ** 2 < 64 ? 0.35 : 0;
      pixels[(c * H + y) * W + x] = Math.min(
        1,
        0.15 + 0.3 * (c === 0 ? x / W : c === 1 ? y / H : 1 - x / W) + 0.2 * Math.sin(x / 3 + c) ** 2 + disc,
      );
    }
const io: Record<string, k.Tensor> = { image: k.tensor(pixels, { shape: [1, 3, H, W] }) };
for (const c of IMG2IMG_REFERENCE_CASES) {
  io[`${c.name}.prompt_embeds`] = pipe.encodePrompt(c.prompts);
  io[`${c.name}.negative_prompt_embeds`] = pipe.encodePrompt(c.prompts.map(() => c.negativePrompt));
  const g = new k.Generator(c.seed);
  io[`${c.name}.vae_eps`] = k.randn([1, 4, H / 2, W / 2], { generator: g });
  io[`${c.name}.noise`] = k.randn([c.prompts.length, 4, H / 2, W / 2], { generator: g });
}
await saveSafetensors(join(out, 'io.safetensors'), io, { format: 'pt' });
writeFileSync(join(out, 'cases.json'), `${JSON.stringify(IMG2IMG_REFERENCE_CASES, null, 2)}\n`);
console.log(`${Object.keys(io).length} tensors -> ${out}/io.safetensors`);
