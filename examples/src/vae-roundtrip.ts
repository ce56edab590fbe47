/**
 * Encoding an image to latents and decoding it back with the VAE (`AutoencoderKL`): read a PNG or
 * JPEG, resize the shorter side and center-crop (as the DreamBooth trainer prepares images), scale
 * to [−1, 1], encode to the latent posterior, take its mean (or a sample) × `scaling_factor` (the
 * latents a UNet sees), decode, and write the reconstruction as PNG with its PSNR. SD's VAE maps
 * 512×512×3 to 4×64×64; the tiny model's maps 32×32 to 4×16×16.
 *
 * node --conditions=kiln-source --import tsx examples/src/vae-roundtrip.ts [image.png] [model-folder]
 */
import { readFile, writeFile } from 'node:fs/promises';
import * as k from '@kiln/tensor-core';
import { centerCropOffsets, cropToChw, decodeImage, resizeShorterSide } from '@kiln/dreambooth-trainer';
import { encodePng, toRgba } from '@kiln/pipeline';
import type { RgbaImage } from '@kiln/pipeline';
import type { AutoencoderKL } from '@kiln/vae';
import { imageSize, loadPipeline } from './model.js';
import { isMain, pickBackend } from './setup.js';

/** An image file as a tensor [1, 3, size, size] in [−1, 1]: shorter side resized to `size`, then center-cropped. */
export function imageToTensor(bytes: Uint8Array, name: string, size: number): k.Tensor {
  const img = resizeShorterSide(decodeImage(bytes, name), size);
  const [left, top] = centerCropOffsets(img, size);
  return k.tensor(cropToChw(img, size, left, top, false), { shape: [1, 3, size, size] });
}

export interface RoundTrip {
  /** Mean of the posterior × scaling_factor: [N, latent_channels, h, w]. */
  latents: k.Tensor;
  /** The decoded images [N, 3, H, W] in [−1, 1]. */
  reconstruction: k.Tensor;
}

/** Encodes `images` ([N, 3, H, W] in [−1, 1]) and decodes the latents; `sampleSeed` draws from the posterior instead of taking its mean. */
export function roundTrip(vae: AutoencoderKL, images: k.Tensor, sampleSeed?: number): RoundTrip {
  return k.noGrad(() =>
    k.tidy(() => {
      const dist = vae.encode(images).latentDist;
      const latents = (sampleSeed === undefined ? dist.mode() : dist.sample(sampleSeed)).mul(vae.config.scaling_factor);
      const reconstruction = vae.decode(latents.div(vae.config.scaling_factor)).sample.clamp(-1, 1);
      return { latents, reconstruction };
    }),
  );
}

/** Peak signal-to-noise ratio in dB of two [−1, 1] image tensors, on the [0, 1] scale. */
export async function psnr(a: k.Tensor, b: k.Tensor): Promise<number> {
  const mse = k.tidy(() => k.mseLoss(a.div(2), b.div(2)));
  const v = await mse.item();
  mse.dispose();
  return -10 * Math.log10(v);
}

/** [N, 3, H, W] in [−1, 1] → RGBA bytes. */
export async function tensorToRgba(x: k.Tensor): Promise<RgbaImage[]> {
  const unit = k.tidy(() => x.div(2).add(0.5).clamp(0, 1));
  const out = await toRgba(unit);
  unit.dispose();
  return out;
}

if (isMain(import.meta.url)) {
  console.log(`backend: ${await pickBackend()}`);
  const [imagePath, modelDir] = process.argv.slice(2);
  const pipe = await loadPipeline(modelDir);
  const size = imageSize(pipe);
  let bytes: Uint8Array;
  if (imagePath) bytes = await readFile(imagePath);
  else {
    // No image given: a colour gradient.
    const data = new Uint8ClampedArray(size * size * 4).map((_, i) =>
      i % 4 === 3 ? 255 : ((i >> 2) % size) * (255 / size) + (i % 4) * 60,
    );
    bytes = encodePng({ width: size, height: size, data });
  }
  const x = imageToTensor(bytes, imagePath ?? 'gradient.png', size);
  const { latents, reconstruction } = roundTrip(pipe.vae, x);
  console.log(`image [${x.shape.join(', ')}] → latents [${latents.shape.join(', ')}] → [${reconstruction.shape.join(', ')}]`);
  console.log(`PSNR ${(await psnr(x, reconstruction)).toFixed(2)} dB`);
  await writeFile('vae-roundtrip.png', encodePng((await tensorToRgba(reconstruction))[0]));
  console.log('wrote vae-roundtrip.png');
  for (const t of [x, latents, reconstruction]) t.dispose();
  pipe.dispose();
}
