import * as k from '@kiln/tensor-core';
import type { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { ClassifierFreeGuidance, guidedStep } from '@kiln/guidance';
import { schedulerFromConfig } from '@kiln/scheduler';
import type { SchedulerBase } from '@kiln/scheduler';
import type { UNet2DConditionModel } from '@kiln/unet';
import type { AutoencoderKL } from '@kiln/vae';
import type { LoraWeights } from '@kiln/nn';
import { PipelineError } from './errors.js';
import { toRgba } from './images.js';
import { attachLora, fuse, listAdapters, setAdapterScale, unfuse, unload } from './lora.js';
import type { LoadLoraOptions, LoraAdapterInfo, LoraHost } from './lora.js';
import type { SingleFileOptions } from './single-file.js';
import type { Txt2ImgOptions, Txt2ImgResult } from './txt2img-options.js';
import { imagePixels, img2imgTimesteps } from './img2img.js';
import type { Img2ImgOptions } from './img2img.js';

/** The five parts of a Stable Diffusion 1.x pipeline (diffusers' component names, camel-cased). */
export interface StableDiffusionComponents {
  tokenizer: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  scheduler: SchedulerBase;
}

/** Options of {@link StableDiffusionPipeline.fromPretrained} (diffusers' `from_pretrained` arguments). */
export interface PipelineLoadOptions {
  /** Parameter dtype of the three models (default float32); `'float16'` with `variant: 'fp16'` loads SD at half size. */
  dtype?: k.DType;
  /** Weight-file variant, e.g. `'fp16'` (`unet/diffusion_pytorch_model.fp16.safetensors`, …). */
  variant?: string;
  /** A Hugging Face Hub revision (branch, tag or commit); only meaningful for Hub ids. */
  revision?: string;
  /** Told about each file of a Hub download (or cache hit), for a progress display. */
  onDownload?: (info: { path: string; index: number; count: number; cached: boolean }) => void;
  /** Told as each downloaded file's bytes arrive (bytes so far, total or null), for a byte-level progress bar. */
  onDownloadProgress?: (info: { path: string; bytes: number; total: number | null }) => void;
}

/** Options of {@link StableDiffusionPipeline.encodePrompt}. */
export interface EncodePromptOptions {
  /** Repeat each prompt's embedding this many times, consecutively (default 1). */
  numImagesPerPrompt?: number;
  /** See {@link Txt2ImgOptions.clipSkip}. */
  clipSkip?: number;
}

const positiveInt = (v: number | undefined, name: string, fallback: number, what: string): number => {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new PipelineError(`${what}: ${name} must be a positive integer, got ${String(v)}`);
  return x;
};

/** What one generation runs with, checked once. */
interface Run {
  what: string;
  steps: number;
  perPrompt: number;
  guidance: ClassifierFreeGuidance;
  scheduler: SchedulerBase;
  generator: k.Generator;
  seed?: number;
}

const asList = (p: string | readonly string[]): string[] => (typeof p === 'string' ? [p] : [...p]);

/**
 * diffusers' `StableDiffusionPipeline` for SD 1.x: tokenizer, CLIP text encoder, UNet, VAE and a
 * scheduler, and `txt2img`, which runs the same computation as diffusers' `__call__` (classifier-free
 * guidance in one batched UNet forward, any scheduler), so the same weights, initial latents and
 * prompt embeddings give the same image. The seed gives the same image on every backend.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { StableDiffusionPipeline } from '@kiln/pipeline';
 * import { writePng } from '@kiln/pipeline/node';
 *
 * await k.useBackend('wasm');
 * const pipe = await StableDiffusionPipeline.fromPretrained('./stable-diffusion-v1-5');
 * const { images, rgba } = await pipe.txt2img({ prompt: 'a photo of an astronaut riding a horse', seed: 42, numInferenceSteps: 25 });
 * await writePng('astronaut.png', rgba[0], { parameters: 'a photo of an astronaut riding a horse\nSteps: 25, Seed: 42' });
 * images.dispose();
 * ```
 */
export class StableDiffusionPipeline {
  readonly tokenizer: CLIPTokenizer;
  readonly textEncoder: CLIPTextModel;
  readonly unet: UNet2DConditionModel;
  readonly vae: AutoencoderKL;
  scheduler: SchedulerBase;

  constructor(components: StableDiffusionComponents) {
    ({ tokenizer: this.tokenizer, textEncoder: this.textEncoder, unet: this.unet, vae: this.vae, scheduler: this.scheduler } = components);
    for (const m of [this.textEncoder, this.unet, this.vae]) m.eval();
  }

  /**
   * Loads a pipeline from a diffusers folder (`model_index.json` with `tokenizer/`, `text_encoder/`,
   * `unet/`, `vae/` and `scheduler/`), or from a Hugging Face Hub id (`org/name`), downloaded into
   * the standard Hugging Face cache (`@huggingface/hub` resolves the revision and lists the files;
   * Kiln's own resumable downloader fetches them, honouring `HF_ENDPOINT`, `HF_TOKEN`,
   * `HF_HUB_OFFLINE`, `HF_HOME`; see `downloadPipeline`); the scheduler's class is the `_class_name` of its
   * `scheduler_config.json`. Each model is read tensor by tensor into an uninitialised model, so
   * loading peaks at the models' own size. Node only.
   *
   * @example
   * ```ts
   * const pipe = await StableDiffusionPipeline.fromPretrained('./sd15', { variant: 'fp16', dtype: 'float16' });
   * ```
   */
  static async fromPretrained(source: string, options: PipelineLoadOptions = {}): Promise<StableDiffusionPipeline> {
    if (source.endsWith('.safetensors')) return StableDiffusionPipeline.fromSingleFile(source, { dtype: options.dtype });
    const { loadPipelineFolder } = await import('#node-only');
    return new StableDiffusionPipeline(await loadPipelineFolder(source, options));
  }

  /**
   * Loads an SD 1.x single-file checkpoint (`.safetensors` in the original LDM layout:
   * `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`), as
   * diffusers' `from_single_file`: SD 1.5's configs (or `configs`), the CLIP tokenizer `@kiln/clip`
   * ships, and SD 1.5's PNDM scheduler. `fromPretrained` does the same for a `.safetensors` path.
   * Node only.
   *
   * @example
   * ```ts
   * const pipe = await StableDiffusionPipeline.fromSingleFile('./v1-5-pruned-emaonly.safetensors', { dtype: 'float16' });
   * ```
   */
  static async fromSingleFile(path: string, options: SingleFileOptions = {}): Promise<StableDiffusionPipeline> {
    const { loadSingleFile } = await import('./single-file.js');
    return new StableDiffusionPipeline(await loadSingleFile(path, options));
  }

  /**
   * Writes the pipeline as a diffusers folder (`model_index.json`, one subfolder per component),
   * each file atomically; diffusers' `StableDiffusionPipeline.from_pretrained` loads it. Node only.
   *
   * @example
   * ```ts
   * await pipe.savePretrained('./out/my-model');
   * ```
   */
  async savePretrained(dir: string, options: { variant?: string } = {}): Promise<void> {
    const { savePipelineFolder } = await import('#node-only');
    await savePipelineFolder(dir, this, options);
  }

  /**
   * Loads a LoRA file into the UNet and text encoder as one adapter, as diffusers'
   * `load_lora_weights`: the diffusers/PEFT layout (`pytorch_lora_weights.safetensors`, `unet.`/
   * `text_encoder.` prefixes, `lora_A`/`lora_B`) or kohya/A1111's (`lora_unet_…`/`lora_te_…`,
   * `lora_down`/`lora_up`/`alpha`), detected from the keys. `source` is a file, a folder holding
   * `pytorch_lora_weights.safetensors` (or `weightName`), or {@link LoraWeights} already in memory
   * (the only form in a browser). Call again to stack adapters; each applies at its `scale`.
   * Everything is checked before anything is attached. Resolves to the adapter's name.
   *
   * @example
   * ```ts
   * await pipe.loadLoraWeights('sks-dog/pytorch_lora_weights.safetensors');
   * await pipe.loadLoraWeights('watercolor_kohya.safetensors', { adapterName: 'style', scale: 0.6 });
   * const { images } = await pipe.txt2img({ prompt: 'a watercolor of sks dog', seed: 1 });
   * ```
   */
  async loadLoraWeights(source: string | LoraWeights, options: LoadLoraOptions = {}): Promise<string> {
    const host = this.loraHost;
    if (typeof source !== 'string') return attachLora(host, source, 'LoRA weights', options);
    const { readPipelineLora } = await import('#node-only');
    const { file, lora, release } = await readPipelineLora(source, host, options.weightName);
    try {
      return attachLora(host, lora, file, options);
    } finally {
      release();
    }
  }

  /**
   * The loaded LoRA adapters, in load order (diffusers' `get_list_adapters` with their scales).
   *
   * @example
   * ```ts
   * pipe.loraAdapters(); // [{ name: 'default_0', scale: 1, components: ['unet', 'text_encoder'], fused: false }]
   * ```
   */
  loraAdapters(): LoraAdapterInfo[] {
    return listAdapters(this.loraHost);
  }

  /**
   * Changes a loaded adapter's multiplier (diffusers' `set_adapters` weight); 0 turns it off.
   *
   * @example
   * ```ts
   * pipe.setLoraScale('style', 0.3);
   * ```
   */
  setLoraScale(adapterName: string, scale: number): void {
    setAdapterScale(this.loraHost, adapterName, scale);
  }

  /**
   * Folds adapter `adapterName` (or every adapter) into the base weights at its scale (diffusers'
   * `fuse_lora`): the same images, without the adapters' extra matmuls per step.
   *
   * @example
   * ```ts
   * await pipe.loadLoraWeights('sks.safetensors', { scale: 0.8 });
   * pipe.fuseLora();
   * ```
   */
  fuseLora(adapterName?: string): void {
    fuse(this.loraHost, adapterName);
  }

  /**
   * Takes fused adapters out of the base weights again (diffusers' `unfuse_lora`).
   *
   * @example
   * ```ts
   * pipe.unfuseLora();
   * ```
   */
  unfuseLora(adapterName?: string): void {
    unfuse(this.loraHost, adapterName);
  }

  /**
   * Removes adapter `adapterName` (or every adapter) and frees its weights; fused ones are
   * unfused first, so the base model is back (diffusers' `unload_lora_weights` / `delete_adapters`).
   *
   * @example
   * ```ts
   * pipe.unloadLoraWeights();
   * ```
   */
  unloadLoraWeights(adapterName?: string): void {
    unload(this.loraHost, adapterName);
  }

  private get loraHost(): LoraHost {
    return { unet: this.unet, text_encoder: this.textEncoder };
  }

  /** 2^(VAE blocks − 1): pixels per latent (8 for SD). */
  get vaeScaleFactor(): number {
    return 2 ** (this.vae.config.block_out_channels.length - 1);
  }

  /**
   * Text-encoder embeddings of prompts, as diffusers' `encode_prompt` makes them: tokens padded and
   * truncated to 77, the last hidden state (or, with `clipSkip`, an earlier one through the final
   * layer norm), in the UNet's dtype, each row repeated `numImagesPerPrompt` times.
   *
   * @example
   * ```ts
   * const embeds = pipe.encodePrompt(['a red fox']); // [1, 77, 768]
   * ```
   */
  encodePrompt(prompts: readonly string[], options: EncodePromptOptions = {}): k.Tensor {
    const n = options.numImagesPerPrompt ?? 1;
    const layers = this.textEncoder.config.num_hidden_layers;
    const skip = options.clipSkip;
    if (skip !== undefined && !(Number.isInteger(skip) && skip >= 0 && skip < layers)) {
      throw new PipelineError(`clipSkip must be an integer from 0 to ${layers - 1} (the text encoder has ${layers} layers), got ${skip}`);
    }
    return k.tidy(() =>
      k.noGrad(() => {
        const ids = prompts.map((p) => this.tokenizer.encode(p, { maxLength: this.tokenizer.modelMaxLength }));
        const out = this.textEncoder.forward(ids);
        const embeds =
          skip === undefined
            ? out.lastHiddenState
            : this.textEncoder.textModel.finalLayerNorm.forward(out.hiddenStates[out.hiddenStates.length - (skip + 1)]);
        return this.repeatRows(embeds.to(this.dtype), n);
      }),
    );
  }

  /** The UNet's parameter dtype, which latents and embeddings take. */
  get dtype(): k.DType {
    return this.unet.convIn.weight.dtype;
  }

  /**
   * Text to image: diffusers' `StableDiffusionPipeline.__call__`. Draws the initial latents from
   * the generator (or takes `latents`), runs `numInferenceSteps` guided steps (each in its own
   * `tidy`, so memory stays flat), decodes with the VAE and returns the images as a tensor in
   * [0, 1] and as RGBA bytes.
   *
   * @example
   * ```ts
   * const { images, rgba, seed } = await pipe.txt2img({
   *   prompt: 'a watercolor of a lighthouse', negativePrompt: 'blurry', seed: 7,
   *   numInferenceSteps: 30, guidanceScale: 7, scheduler: 'dpm++_2m', width: 512, height: 512,
   * });
   * ```
   */
  async txt2img(options: Txt2ImgOptions): Promise<Txt2ImgResult> {
    const o = options;
    const run = this.startRun(o, 'txt2img');
    const scale = this.vaeScaleFactor;
    const defaultSize = (this.unet.config.sample_size ?? 64) * scale;
    const width = positiveInt(o.width, 'width', defaultSize, 'txt2img');
    const height = positiveInt(o.height, 'height', defaultSize, 'txt2img');
    if (width % scale || height % scale)
      throw new PipelineError(`txt2img: width and height must be multiples of ${scale} (the VAE's scale factor), got ${width}×${height}`);
    const { context, N } = this.guidedContext(o, run);
    const latentShape = [N, this.unet.config.in_channels, height / scale, width / scale];
    let latents: k.Tensor;
    try {
      if (o.latents && o.latents.shape.join() !== latentShape.join()) {
        throw new PipelineError(
          `txt2img: latents must be [${latentShape.join(', ')}] for ${N} images of ${width}×${height}, got [${o.latents.shape.join(', ')}]`,
        );
      }
      run.scheduler.setTimesteps(run.steps);
      latents = k.tidy(() => {
        const noise = o.latents ?? k.randn(latentShape, { generator: run.generator });
        return k.mul(noise.to(this.dtype), run.scheduler.initNoiseSigma);
      });
    } catch (e) {
      context.dispose();
      throw e;
    }
    return this.denoiseAndDecode(run, context, latents, run.scheduler.timesteps, o);
  }

  /**
   * Image to image: diffusers' `StableDiffusionImg2ImgPipeline.__call__`. Encodes `image` with
   * the VAE (a latent sample drawn from the generator), noises it to the timestep where the last
   * `⌊numInferenceSteps × strength⌋` steps of the schedule begin (the scheduler's `addNoise`), runs
   * those guided steps and decodes. The images keep the input's size; the seed gives the same
   * image on every backend.
   *
   * @example
   * ```ts
   * const sketch = await pipe.txt2img({ prompt: 'a house on a hill', seed: 1 });
   * const { images, rgba } = await pipe.img2img({
   *   image: sketch.images, prompt: 'a house on a hill, oil painting', strength: 0.6, seed: 2, numInferenceSteps: 30,
   * });
   * ```
   */
  async img2img(options: Img2ImgOptions): Promise<Txt2ImgResult> {
    const o = options;
    const run = this.startRun(o, 'img2img');
    const pixels = imagePixels(o.image, this.vaeScaleFactor);
    let guided: { context: k.Tensor; N: number };
    try {
      guided = this.guidedContext(o, run);
    } catch (e) {
      pixels.dispose();
      throw e;
    }
    const { context, N } = guided;
    let latents: k.Tensor;
    let timesteps: number[];
    try {
      const B = pixels.shape[0];
      if (N % B !== 0)
        throw new PipelineError(
          `img2img: ${B} images cannot be shared by ${N} outputs (prompts × numImagesPerPrompt must be a multiple of it)`,
        );
      run.scheduler.setTimesteps(run.steps);
      const ts = img2imgTimesteps(run.scheduler, run.steps, o.strength ?? 0.8);
      timesteps = ts;
      latents = k.tidy(() =>
        k.noGrad(() => {
          // diffusers' prepare_latents: the VAE's sample first, then the noise, from one generator.
          const vaeDtype = this.vae.encoder.convIn.weight.dtype;
          const z = this.vae.encode(pixels.to(vaeDtype)).latentDist.sample(run.generator).to('float32').mul(this.vae.config.scaling_factor);
          const init = N === B ? z : k.cat(new Array<k.Tensor>(N / B).fill(z), 0);
          const noise = k.randn(init.shape, { generator: run.generator });
          return run.scheduler.addNoise(init, noise, new Array<number>(N).fill(ts[0]!)).to(this.dtype);
        }),
      );
    } catch (e) {
      context.dispose();
      throw e;
    } finally {
      pixels.dispose();
    }
    return this.denoiseAndDecode(run, context, latents, timesteps, o);
  }

  /** Checks the options every generation shares and picks guidance, scheduler and generator. */
  private startRun(o: Txt2ImgOptions | Img2ImgOptions, what: string): Run {
    const steps = positiveInt(o.numInferenceSteps, 'numInferenceSteps', 50, what);
    const perPrompt = positiveInt(o.numImagesPerPrompt, 'numImagesPerPrompt', 1, what);
    const guidance = new ClassifierFreeGuidance({ guidanceScale: o.guidanceScale ?? 7.5, guidanceRescale: o.guidanceRescale ?? 0 });
    const scheduler = this.schedulerFor(o.scheduler);
    let seed: number | undefined;
    let generator = o.generator;
    if (!generator) {
      seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new PipelineError(`${what}: seed must be a non-negative integer, got ${o.seed}`);
      generator = new k.Generator(seed);
    }
    return { what, steps, perPrompt, guidance, scheduler, generator, seed };
  }

  /** The guidance's conditioning batch and the number of images it makes. */
  private guidedContext(o: Txt2ImgOptions | Img2ImgOptions, run: Run): { context: k.Tensor; N: number } {
    const { cond, uncond } = this.conditioning(o, run.guidance.active, run.perPrompt, run.what);
    const context = k.tidy(() => run.guidance.conditioning(cond, uncond));
    if (context !== cond) cond.dispose();
    uncond?.dispose();
    return { context, N: context.shape[0] / run.guidance.copies };
  }

  /** The guided denoising loop over `timesteps` (each step in its own tidy), then the VAE decode; frees `context` and `latents`. */
  private async denoiseAndDecode(
    run: Run,
    context: k.Tensor,
    latents: k.Tensor,
    timesteps: readonly number[],
    o: Txt2ImgOptions | Img2ImgOptions,
  ): Promise<Txt2ImgResult> {
    const { scheduler, guidance, generator } = run;
    const denoise = (x: k.Tensor, t: number, c: k.Tensor) => this.unet.forward(x, t, c).sample;
    try {
      for (let i = 0; i < timesteps.length; i++) {
        const next = k.noGrad(() =>
          guidedStep(scheduler, guidance, denoise, latents, timesteps[i]!, i, context, { generator, eta: o.eta }),
        );
        latents.dispose();
        latents = next;
        await o.callback?.({ step: i, numSteps: timesteps.length, timestep: timesteps[i]!, latents });
      }
    } catch (e) {
      latents.dispose();
      throw e;
    } finally {
      context.dispose();
    }
    const images = k.tidy(() =>
      k.noGrad(() => {
        const z = latents.to(this.vae.decoder.convIn.weight.dtype).div(this.vae.config.scaling_factor);
        return this.vae.decode(z).sample.to('float32').div(2).add(0.5).clamp(0, 1);
      }),
    );
    latents.dispose();
    return { images, rgba: await toRgba(images), scheduler: scheduler.className, ...(run.seed !== undefined ? { seed: run.seed } : {}) };
  }

  /** Frees every model's parameters. */
  dispose(): void {
    for (const m of [this.textEncoder, this.unet, this.vae]) m.dispose();
  }

  private schedulerFor(choice: Txt2ImgOptions['scheduler']): SchedulerBase {
    if (choice === undefined) return this.scheduler;
    if (typeof choice !== 'string') return choice;
    return schedulerFromConfig(this.scheduler.toJSON(), { className: choice });
  }

  private repeatRows(x: k.Tensor, n: number): k.Tensor {
    if (n === 1) return x;
    const [B, ...rest] = x.shape;
    return k
      .expand(x.unsqueeze(1), [B, n, ...rest])
      .contiguous()
      .reshape([B * n, ...rest]);
  }

  /** The conditional and (with guidance) unconditional embeddings, each [B·n, 77, D]. */
  private conditioning(
    o: Txt2ImgOptions | Img2ImgOptions,
    guided: boolean,
    n: number,
    what: string,
  ): { cond: k.Tensor; uncond?: k.Tensor } {
    if ((o.prompt === undefined) === (o.promptEmbeds === undefined))
      throw new PipelineError(`${what}: give either prompt or promptEmbeds (exactly one)`);
    if (o.negativePrompt !== undefined && o.negativePromptEmbeds !== undefined)
      throw new PipelineError(`${what}: give negativePrompt or negativePromptEmbeds, not both`);
    const D = this.unet.config.cross_attention_dim;
    const check = (t: k.Tensor, name: string) => {
      if (t.ndim !== 3 || t.shape[2] !== D)
        throw new PipelineError(`${what}: ${name} must be [B, L, ${D}] (the UNet's cross_attention_dim), got [${t.shape.join(', ')}]`);
    };
    let cond: k.Tensor;
    let prompts: string[] | undefined;
    if (o.promptEmbeds) {
      check(o.promptEmbeds, 'promptEmbeds');
      cond = k.tidy(() => this.repeatRows(k.clone(o.promptEmbeds!.to(this.dtype)), n));
    } else {
      prompts = asList(o.prompt!);
      if (prompts.length === 0) throw new PipelineError(`${what}: prompt is an empty list`);
      cond = this.encodePrompt(prompts, { numImagesPerPrompt: n, clipSkip: o.clipSkip });
    }
    if (!guided) return { cond };
    const B = cond.shape[0] / n;
    try {
      if (o.negativePromptEmbeds) {
        check(o.negativePromptEmbeds, 'negativePromptEmbeds');
        if (
          o.negativePromptEmbeds.shape.join() !== (o.promptEmbeds ?? o.negativePromptEmbeds).shape.join() ||
          o.negativePromptEmbeds.shape[0] !== B
        ) {
          throw new PipelineError(
            `${what}: negativePromptEmbeds [${o.negativePromptEmbeds.shape.join(', ')}] must have the prompt embeddings' shape [${B}, ${cond.shape.slice(1).join(', ')}]`,
          );
        }
        return { cond, uncond: k.tidy(() => this.repeatRows(k.clone(o.negativePromptEmbeds!.to(this.dtype)), n)) };
      }
      let negatives = o.negativePrompt === undefined ? [''] : asList(o.negativePrompt);
      if (negatives.length === 1) negatives = new Array<string>(B).fill(negatives[0]);
      if (negatives.length !== B) throw new PipelineError(`${what}: ${negatives.length} negative prompts for ${B} prompts`);
      // diffusers encodes the negative prompt without clip_skip.
      return { cond, uncond: this.encodePrompt(negatives, { numImagesPerPrompt: n }) };
    } catch (e) {
      cond.dispose();
      throw e;
    }
  }
}
