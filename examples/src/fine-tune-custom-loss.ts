/**
 * Fine-tuning the UNet with a loss of your own, from the packages' parts: the VAE encodes the
 * training images to latents once (frozen, no graph), the text encoder embeds the prompt once, and
 * each step adds noise at random timesteps (`scheduler.addNoise`) and trains the UNet's prediction
 * with a pseudo-Huber loss (diffusers' `--loss_type huber`, robust to outlier pixels) weighted by
 * min-SNR-γ (`minSnrLossWeights`), AdamW and gradient clipping from `@kiln/nn`. The step is
 * `tidy` → `backward` → `step`, so memory is flat across steps (tested). Swap `pseudoHuberLoss` for
 * any differentiable function of the prediction and the target.
 *
 * node --conditions=kiln-source --import tsx examples/src/fine-tune-custom-loss.ts [model-folder]
 */
import * as k from '@kiln/tensor-core';
import { AdamW, clipGradNorm } from '@kiln/nn';
import type { StableDiffusionPipeline } from '@kiln/pipeline';
import { DDPMScheduler, minSnrLossWeights } from '@kiln/scheduler';
import { imageSize, loadPipeline } from './model.js';
import { isMain, pickBackend } from './setup.js';

/**
 * Pseudo-Huber loss per sample, `√((p − t)² + c²) − c` averaged over C, H, W: quadratic for small
 * errors, linear for large ones. [B, C, H, W] × 2 → [B].
 */
export function pseudoHuberLoss(pred: k.Tensor, target: k.Tensor, c = 0.1): k.Tensor {
  return pred
    .sub(target)
    .square()
    .add(c * c)
    .sqrt()
    .sub(c)
    .mean([1, 2, 3]);
}

/** `n` training images [n, 3, size, size] in [−1, 1]: a red disc at seeded positions on a grey gradient. */
export function subjectImages(n: number, size: number): k.Tensor {
  const data = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < n; i++) {
    const cx = size * (0.35 + (0.3 * ((i * 7) % 5)) / 4);
    const cy = size * (0.35 + (0.3 * ((i * 3) % 5)) / 4);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < (size / 5) ** 2;
        const grey = (x + y) / (2 * size) - 0.5;
        const rgb = inDisc ? [0.9, -0.8, -0.7] : [grey, grey, grey];
        for (let ch = 0; ch < 3; ch++) data[((i * 3 + ch) * size + y) * size + x] = rgb[ch];
      }
    }
  }
  return k.tensor(data, { shape: [n, 3, size, size] });
}

export interface FineTuneOptions {
  prompt: string;
  steps: number;
  learningRate: number;
  batchSize: number;
  seed: number;
  /** min-SNR γ (5 in the paper); null for unweighted. */
  snrGamma: number | null;
  onStep?: (step: number, loss: number) => void;
}

export interface FineTuneResult {
  losses: number[];
  /** The loss on a fixed batch (fixed noise and timesteps) before and after training. */
  evalBefore: number;
  evalAfter: number;
  /** `k.memory().liveTensors` after each step: flat when nothing leaks. */
  liveTensors: number[];
}

export async function fineTune(pipe: StableDiffusionPipeline, images: k.Tensor, o: FineTuneOptions): Promise<FineTuneResult> {
  const { unet, vae, textEncoder } = pipe;
  const noiseScheduler = DDPMScheduler.fromConfig(pipe.scheduler.toJSON());
  const T = noiseScheduler.config.num_train_timesteps;
  const predictionType = noiseScheduler.config.prediction_type;
  // Frozen parts run once, without a graph; their outputs are kept outside every tidy.
  vae.requiresGrad_(false);
  textEncoder.requiresGrad_(false);
  const latents = k.noGrad(() => k.tidy(() => vae.encode(images).latentDist.sample(o.seed).mul(vae.config.scaling_factor)));
  const text = k.noGrad(() => pipe.encodePrompt([o.prompt]));
  const g = new k.Generator(o.seed);

  const lossOn = (batch: k.Tensor, noise: k.Tensor, t: k.Tensor) => {
    const noisy = noiseScheduler.addNoise(batch, noise, t);
    const context = k.expand(text, [batch.shape[0], ...text.shape.slice(1)]);
    const pred = unet.forward(noisy, t, context).sample;
    const target = predictionType === 'v_prediction' ? noiseScheduler.getVelocity(batch, noise, t) : noise;
    const perSample = pseudoHuberLoss(pred, target);
    if (o.snrGamma === null) return perSample.mean();
    return perSample.mul(minSnrLossWeights(noiseScheduler.snr(t), o.snrGamma, predictionType)).mean();
  };
  // A fixed evaluation batch: the same noise and timesteps before and after training.
  const evalNoise = k.randn(latents.shape, { seed: o.seed + 1 });
  const evalT = k.randint(0, T, [latents.shape[0]], { seed: o.seed + 2 });
  const evaluate = async () => {
    const l = k.noGrad(() => k.tidy(() => lossOn(latents, evalNoise, evalT)));
    const v = await l.item();
    l.dispose();
    return v;
  };

  unet.train();
  unet.requiresGrad_(true);
  const evalBefore = await evaluate();
  const opt = new AdamW(unet.parameters(), { lr: o.learningRate, weightDecay: 1e-2 });
  const result: FineTuneResult = { losses: [], evalBefore, evalAfter: NaN, liveTensors: [] };
  const N = latents.shape[0];
  for (let step = 0; step < o.steps; step++) {
    const loss = k.tidy(() => {
      const rows = k.randint(0, N, [o.batchSize], { generator: g });
      const batch = k.indexSelect(latents, 0, rows);
      const noise = k.randnLike(batch, { generator: g });
      const t = k.randint(0, T, [o.batchSize], { generator: g });
      const l = lossOn(batch, noise, t);
      l.backward();
      clipGradNorm(unet.parameters(), 1.0);
      return l;
    });
    opt.step();
    opt.zeroGrad();
    result.losses.push(await loss.item());
    loss.dispose();
    result.liveTensors.push(k.memory().liveTensors);
    o.onStep?.(step, result.losses[step]);
  }
  unet.eval();
  result.evalAfter = await evaluate();
  for (const t of [latents, text, evalNoise, evalT]) t.dispose();
  opt.dispose();
  return result;
}

if (isMain(import.meta.url)) {
  console.log(`backend: ${await pickBackend()}`);
  const pipe = await loadPipeline(process.argv[2]);
  const images = subjectImages(4, imageSize(pipe));
  const r = await fineTune(pipe, images, {
    prompt: 'a photo of sks disc',
    steps: 100,
    learningRate: 1e-3,
    batchSize: 2,
    seed: 0,
    snrGamma: 5,
    onStep: (step, loss) => step % 10 === 0 && console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(5)}`),
  });
  console.log(`fixed-batch loss: ${r.evalBefore.toFixed(5)} → ${r.evalAfter.toFixed(5)}`);
  images.dispose();
  pipe.dispose();
}
