// Writes a UNet folder made and run by Kiln, for the reference harness's `run` to load into the
// real diffusers and compare (the committed result is test/fixtures/diffusers-run.txt):
//
//   node --conditions=kiln-source --import tsx packages/unet/scripts/write-for-diffusers.ts OUT
//   /usr/bin/python3 make_reference.py run --kind unet --dir OUT --tol 1e-4
//
// The weights are Kiln's own initialisation (seeded, norm weights and biases perturbed so they
// matter); inputs and the gradient seed are the unet_tiny fixture's. OUT gets config.json and
// diffusion_pytorch_model.safetensors (savePretrained), single_file.safetensors (LDM names) and io.safetensors with Kiln's outputs,
// every block's output and the gradients of every parameter.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { loadSafetensors, saveSafetensors } from '@kiln/nn/node';
import { UNet2DConditionModel } from '@kiln/unet';

const out = process.argv[2];
if (!out) throw new Error('usage: write-for-diffusers.ts OUT_DIR');
const fixture = fileURLToPath(new URL('../test/fixtures/unet_tiny/', import.meta.url));

await k.useBackend('wasm');
k.manualSeed(2024);
const unet = new UNet2DConditionModel(JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')));
k.noGrad(() => {
  for (const [name, p] of unet.namedParameters()) if (/norm/.test(name)) p.assign_(p.add(k.randn(p.shape).mul(0.2)));
});
unet.eval();
await unet.savePretrained(out);
// The same weights as an SD 1.x single file (LDM names), for scripts/check_single_file.py.
await saveSafetensors(join(out, 'single_file.safetensors'), unet.ldmStateDict(), { format: 'pt' });

const io = await loadSafetensors(join(fixture, 'io.safetensors'), { device: 'wasm' });
const res: Record<string, k.Tensor> = {};
for (const key of ['input.sample', 'input.timestep', 'input.encoder_hidden_states', 'grad_seed.sample']) res[key] = io[key];
const x = io['input.sample'].detach().requiresGrad_(true);
const ctx = io['input.encoder_hidden_states'].detach().requiresGrad_(true);
const { sample } = unet.forward(x, io['input.timestep'], ctx, { trace: (name, v) => (res[`trace.${name}`] = k.keep(v.detach())) });
res['output.sample'] = k.keep(sample.detach());
sample.backward(io['grad_seed.sample']);
res['grad.sample.input.sample'] = x.grad!;
res['grad.sample.input.encoder_hidden_states'] = ctx.grad!;
for (const [name, p] of unet.namedParameters()) res[`grad.sample.param.${name}`] = p.grad!;
await saveSafetensors(join(out, 'io.safetensors'), res, { format: 'pt' });
console.log(`${Object.keys(res).length} tensors -> ${out}`);
