// A diffusers Stable Diffusion folder served as static files, loaded in the browser: the
// pipeline's own `fromPretrained` reads the filesystem (Node only), so this fetches each
// component's config.json and safetensors over HTTP and fills models built without
// initialisation (`skipInit` + `loadWeights`, the same path `@kiln/nn/node` takes), reading each
// tensor's byte range from the fetched Blob.
import { CLIPTextModel, CLIPTokenizer, parseCLIPTextConfig } from '@kiln/clip';
import { loadWeights, openSafetensorsBlob, skipInit } from '@kiln/nn';
import type { Module } from '@kiln/nn';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { parseSchedulerConfigJson, schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel, parseUNetConfig } from '@kiln/unet';
import { AutoencoderKL, parseVAEConfig } from '@kiln/vae';

/** Thrown when a model file cannot be fetched; names the URL and the HTTP status. */
export class ModelFetchError extends Error {
  override name = 'ModelFetchError';
}

async function get(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new ModelFetchError(`${url}: cannot be fetched (${(e as Error).message})`, { cause: e });
  }
  if (!res.ok) throw new ModelFetchError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}

const text = async (url: string) => (await get(url)).text();

/** What was loaded, besides the pipeline: the raw scheduler config (the trainer makes its DDPM from it). */
export interface LoadedModel {
  pipe: StableDiffusionPipeline;
  schedulerConfig: Record<string, unknown>;
  /** Bytes fetched. */
  bytes: number;
}

/**
 * Loads `base` (a URL of a diffusers folder, ending in `/`) into a pipeline with float32 weights
 * (half-precision files are widened on the way). `onProgress` hears each file as it arrives.
 */
export async function loadModel(base: string, onProgress: (what: string) => void = () => {}): Promise<LoadedModel> {
  let bytes = 0;
  const weights = async (model: Module, file: string, ignoreUnexpected: string[] = []) => {
    onProgress(file);
    const blob = await (await get(base + file)).blob();
    bytes += blob.size;
    await loadWeights(model, await openSafetensorsBlob(blob, { source: file }), { ignoreUnexpected });
  };
  onProgress('tokenizer');
  const [vocab, merges, tokenizerConfig] = await Promise.all(
    ['vocab.json', 'merges.txt', 'tokenizer_config.json'].map((f) => text(`${base}tokenizer/${f}`)),
  );
  const tokenizer = CLIPTokenizer.fromHuggingFaceFiles({
    'vocab.json': vocab,
    'merges.txt': merges,
    'tokenizer_config.json': tokenizerConfig,
  });
  const schedulerFile = 'scheduler/scheduler_config.json';
  const schedulerConfig = parseSchedulerConfigJson(await text(base + schedulerFile), schedulerFile);
  const className = typeof schedulerConfig._class_name === 'string' ? schedulerConfig._class_name : 'PNDMScheduler';
  const scheduler = schedulerFromConfig(schedulerConfig, { className, file: schedulerFile });

  const [te, un, va] = await Promise.all(
    ['text_encoder', 'unet', 'vae'].map(async (p) => JSON.parse(await text(`${base}${p}/config.json`))),
  );
  const textEncoder = skipInit(() => new CLIPTextModel(parseCLIPTextConfig(te, 'text_encoder/config.json')));
  const unet = skipInit(() => new UNet2DConditionModel(parseUNetConfig(un, 'unet/config.json')));
  const vae = skipInit(() => new AutoencoderKL(parseVAEConfig(va, 'vae/config.json')));
  try {
    // transformers drops the legacy position_ids buffer older checkpoints carry; so does Kiln.
    await weights(textEncoder, 'text_encoder/model.safetensors', ['text_model.embeddings.position_ids']);
    await weights(unet, 'unet/diffusion_pytorch_model.safetensors');
    await weights(vae, 'vae/diffusion_pytorch_model.safetensors');
  } catch (e) {
    for (const m of [textEncoder, unet, vae]) m.dispose();
    throw e;
  }
  return { pipe: new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler }), schedulerConfig, bytes };
}
