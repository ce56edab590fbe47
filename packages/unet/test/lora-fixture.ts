import { readFileSync } from 'node:fs';
import * as k from '@kiln/tensor-core';
import { LORA_TARGETS, injectLora, loraLayers } from '@kiln/nn';
import { UNet2DConditionModel } from '@kiln/unet';

export const LORA_DIR = new URL('./fixtures/lora/', import.meta.url);

/**
 * The tiny UNet (fixtures/unet_tiny/config.json) with kohya's wide LoRA set: rank 4 / alpha 2 on
 * every Linear and 1×1 conv of the transformers, rank 2 / alpha 1 on the ResNet, down- and
 * upsampler convs (so diffusers' alpha_pattern and rank_pattern are exercised). Deterministic:
 * weights from seed 0, lora_A from Generator(1), lora_B from seeds 1000… (B is zero at init,
 * which would make every check trivial).
 */
export function tinyLoraUnet(): UNet2DConditionModel {
  const config = JSON.parse(readFileSync(new URL('./fixtures/unet_tiny/config.json', import.meta.url), 'utf8'));
  k.manualSeed(0);
  const unet = new UNet2DConditionModel(config);
  injectLora(unet, {
    targets: [...LORA_TARGETS.kohyaUnet, ...LORA_TARGETS.kohyaUnetConv],
    rank: 4,
    alpha: 2,
    convRank: 2,
    convAlpha: 1,
    generator: new k.Generator(1),
  });
  k.noGrad(() => {
    let seed = 1000;
    for (const [, l] of loraLayers(unet)) l.loraB.weight.assign_(k.randn(l.loraB.weight.shape, { seed: seed++ }).mul(0.1));
  });
  return unet;
}
