// Writes a VAE folder made and run by Kiln, for the reference harness's `run` to load into the
// real diffusers and compare (the committed result is test/fixtures/diffusers-run.txt):
//
//   node --conditions=kiln-source --import tsx packages/vae/scripts/write-for-diffusers.ts OUT
//   /usr/bin/python3 make_reference.py run --kind vae --dir OUT --tol 1e-4
//
// The weights are Kiln's own initialisation (seeded, norm weights and biases perturbed so they
// matter); inputs and gradient seeds are the vae_tiny fixture's. OUT gets config.json and
// diffusion_pytorch_model.safetensors (savePretrained), single_file.safetensors (LDM names) and io.safetensors with Kiln's outputs,
// every block's output and the gradients of every parameter.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { loadSafetensors, saveSafetensors } from '@kiln/nn/node';
import { AutoencoderKL } from '@kiln/vae';

const out = process.argv[2];
if (!out) throw new Error('usage: write-for-diffusers.ts OUT_DIR');
const fixture = fileURLToPath(new URL('../test/fixtures/vae_tiny/', import.meta.url));

await k.useBackend('wasm');
k.manualSeed(2024);
const vae = new AutoencoderKL(JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')));
k.noGrad(() => {
  for (const [name, p] of vae.namedParameters()) if (/norm/.test(name)) p.assign_(p.add(k.randn(p.shape).mul(0.2)));
});
vae.eval();
await vae.savePretrained(out);
// The same weights as an SD 1.x single file (LDM names), for scripts/check_single_file.py.
await saveSafetensors(join(out, 'single_file.safetensors'), vae.ldmStateDict(), { format: 'pt' });

const io = await loadSafetensors(join(fixture, 'io.safetensors'), { device: 'wasm' });
const res: Record<string, k.Tensor> = {};
for (const key of ['input.image', 'input.latent', 'grad_seed.decoded', 'grad_seed.latent_mean']) res[key] = io[key];
const trace = (name: string, v: k.Tensor) => void (res[`trace.${name}`] ??= k.keep(v.detach()));
k.noGrad(() => {
  const { latentDist } = vae.encode(io['input.image'], { trace });
  res['output.latent_mean'] = latentDist.mean;
  res['output.latent_logvar'] = latentDist.logvar;
  res['output.decoded'] = vae.decode(io['input.latent'], { trace }).sample;
  res['output.sample'] = vae.forward(io['input.image']).sample;
});
for (const [o, input] of [
  ['decoded', 'latent'],
  ['latent_mean', 'image'],
] as const) {
  for (const p of vae.parameters()) p.grad = null; // the previous gradients are kept in res
  const x = io[`input.${input}`].detach().requiresGrad_(true);
  const y = o === 'decoded' ? vae.decode(x).sample : vae.encode(x).latentDist.mean;
  y.backward(io[`grad_seed.${o}`]);
  res[`grad.${o}.input.${input}`] = x.grad!;
  // Gradients that are zero but for rounding (a bias right before a one-channel-per-group
  // GroupNorm, to_k.bias under softmax's shift invariance) compare rounding noise with rounding
  // noise; leave out those below 1e-4 of the largest.
  const grads = vae.namedParameters().filter(([, p]) => p.grad);
  const peaks = await Promise.all(grads.map(async ([, p]) => Math.max(...(await p.grad!.abs().data()))));
  const largest = Math.max(...peaks);
  grads.forEach(([name, p], i) => {
    if (peaks[i] >= 1e-4 * largest) res[`grad.${o}.param.${name}`] = p.grad!;
    else console.log(`left out grad.${o}.param.${name} (max |g| ${peaks[i].toExponential(2)}, zero up to rounding)`);
  });
}
await saveSafetensors(join(out, 'io.safetensors'), res, { format: 'pt' });
console.log(`${Object.keys(res).length} tensors -> ${out}`);
