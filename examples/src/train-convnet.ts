/**
 * A tiny denoiser, shaped like a diffusion model's building blocks: conv → groupNorm → SiLU →
 * self-attention over pixels → avgPool → nearest upsample → conv. It learns to predict the noise
 * added to 8×8 bar patterns (the DDPM objective in miniature), trained with Adam over the public API.
 */
import * as k from '@kiln/tensor-core';
import { Adam, isMain, pickBackend, summary, trainLoop, uniformInit } from './setup.js';
import type { TrainResult } from './setup.js';

const C = 8;

function makeData(n: number): { clean: k.Tensor; noise: k.Tensor } {
  return k.tidy(() => {
    // Horizontal or vertical bars at seeded positions.
    const rows = k.rand([n, 1, 8, 1], { seed: 3 }).gt(0.5).to('float32');
    const cols = k.rand([n, 1, 1, 8], { seed: 4 }).gt(0.5).to('float32');
    const horizontal = k.rand([n, 1, 1, 1], { seed: 5 }).gt(0.5).to('float32');
    const clean = rows
      .expand([n, 1, 8, 8])
      .mul(horizontal)
      .add(cols.expand([n, 1, 8, 8]).mul(horizontal.neg().add(1)))
      .mul(2)
      .sub(1);
    const noise = k.randn([n, 1, 8, 8], { seed: 6 });
    return { clean, noise };
  });
}

export async function trainConvnet(options: { steps?: number; backend?: string; log?: boolean } = {}): Promise<TrainResult> {
  const backend = await pickBackend(options.backend);
  const steps = options.steps ?? 150;
  const { clean, noise } = makeData(16);
  const noisy = k.tidy(() => clean.mul(0.8).add(noise.mul(0.6)));
  const p = {
    convIn: uniformInit([C, 1, 3, 3], 9, 31),
    convInB: uniformInit([C], 9, 32),
    gnW: k.ones([C]).requiresGrad_(true),
    gnB: k.zeros([C]).requiresGrad_(true),
    qkv: uniformInit([3 * C, C], C, 33),
    proj: uniformInit([C, C], C, 34),
    convOut: uniformInit([1, C, 3, 3], 9 * C, 35),
    convOutB: uniformInit([1], 9 * C, 36),
  };
  const forward = (x: k.Tensor) => {
    const h = k.conv2d(x, p.convIn, p.convInB, { padding: 1 });
    const n = k.groupNormSilu(h, 2, p.gnW, p.gnB, 1e-5);
    const [N] = n.shape;
    const tokens = n.reshape([N, C, 64]).transpose(1, 2); // [N, 64, C]
    const [q, key, v] = k.linear(tokens, p.qkv).chunk(3, -1);
    const attn = k.linear(k.scaledDotProductAttention(q, key, v), p.proj);
    const mixed = h.add(attn.transpose(1, 2).reshape([N, C, 8, 8]));
    const coarse = k.interpolate(k.avgPool2d(mixed, 2), { scaleFactor: 2 });
    return k.conv2d(mixed.add(coarse).silu(), p.convOut, p.convOutB, { padding: 1 });
  };
  const opt = new Adam(Object.values(p), 1e-2);
  return trainLoop(backend, () => k.mseLoss(forward(noisy), noise), opt, steps, options.log ? 25 : 0);
}

if (isMain(import.meta.url)) {
  console.log(`\n${summary(await trainConvnet({ log: true }))}`);
}
