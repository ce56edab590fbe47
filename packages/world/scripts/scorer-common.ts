// What the scorer's training and validation scripts share: rendering scenes to model input, the
// world VAE's round trip, and the light augmentation that stands in for generation artefacts.
import * as k from '@kiln/tensor-core';
import type { AutoencoderKL } from '@kiln/vae';
import { chwBatch, renderScene, toChw } from '../src/index.js';
import type { Scene } from '../src/index.js';

export const SIZE = 32;
const PLANE = SIZE * SIZE;

/** Scenes as model inputs (CHW in [−1, 1]). */
export const renderAll = (scenes: readonly Scene[]): Float32Array[] => scenes.map((s) => toChw(renderScene(s, SIZE), SIZE));

/** Images as one [N, 3, 32, 32] tensor. */
export const batchTensor = (images: readonly Float32Array[]): k.Tensor => chwBatch(images, SIZE);

/**
 * Encodes and decodes each image with the VAE (the posterior's mean, as a converged sampler's
 * latents are), clamped to [−1, 1]: what the UNet's samples look like after decoding at best.
 */
export async function vaeRoundTrip(vae: AutoencoderKL, images: readonly Float32Array[], chunk = 32): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < images.length; i += chunk) {
    const y = k.noGrad(() =>
      k.tidy(() => {
        const x = batchTensor(images.slice(i, i + chunk));
        return k.keep(vae.decode(vae.encode(x).latentDist.mode()).sample.clamp(-1, 1));
      }),
    );
    const data = (await y.data()) as Float32Array;
    y.dispose();
    for (let j = 0; j * 3 * PLANE < data.length; j++) out.push(data.slice(j * 3 * PLANE, (j + 1) * 3 * PLANE));
  }
  return out;
}

/** Augmentation strengths: Gaussian noise of std up to `noise`, and a 3×3 blur with probability `blur`. */
export interface Augment {
  noise: number;
  blur: number;
}

/** A lightly degraded copy of an image: a random-strength 3×3 box blur (sometimes) and Gaussian noise. */
export function augment(im: Float32Array, rand: () => number, o: Augment): Float32Array {
  let x = im;
  if (rand() < o.blur) {
    const a = 0.3 + 0.7 * rand();
    const b = new Float32Array(x.length);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < SIZE; y++)
        for (let xx = 0; xx < SIZE; xx++) {
          let s = 0;
          let n = 0;
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const yy = y + dy;
              const xq = xx + dx;
              if (yy < 0 || yy >= SIZE || xq < 0 || xq >= SIZE) continue;
              s += x[c * PLANE + yy * SIZE + xq];
              n++;
            }
          const i = c * PLANE + y * SIZE + xx;
          b[i] = (1 - a) * x[i] + (a * s) / n;
        }
    x = b;
  }
  const sigma = o.noise * rand();
  if (sigma > 0) {
    if (x === im) x = im.slice();
    for (let i = 0; i < x.length; i += 2) {
      // Box–Muller: two normals per two uniforms.
      const r = Math.sqrt(-2 * Math.log(1 - rand()));
      const t = 2 * Math.PI * rand();
      x[i] += sigma * r * Math.cos(t);
      if (i + 1 < x.length) x[i + 1] += sigma * r * Math.sin(t);
    }
  }
  return x;
}
