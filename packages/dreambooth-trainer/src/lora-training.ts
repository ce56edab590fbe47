import * as k from '@kiln/tensor-core';
import { LORA_TARGETS, extractLoraWeights, injectLora, kohyaNameMap, loraLayers, parseLoraStateDict, serializeLoraWeights } from '@kiln/nn';
import type { LoraLayer, LoraWeights, Module, Parameter } from '@kiln/nn';
import { CheckpointError } from './errors.js';
import { keyedRandom } from './rng.js';
import { openTensors, writeTensors } from './storage/tensor-files.js';
import type { TrainerStorage } from './storage/storage.js';

/** diffusers' `LORA_WEIGHT_NAME_SAFE`: the adapter file of the output folder and of each checkpoint. */
export const LORA_WEIGHTS_NAME = 'pytorch_lora_weights.safetensors';

/** Options of {@link TrainingLora}: `train_dreambooth_lora.py`'s `--rank` and `--lora_dropout`, and the run's seed. */
export interface TrainingLoraOptions {
  rank: number;
  dropout: number;
  seed: number;
}

/**
 * The adapters of a LoRA DreamBooth run, as `train_dreambooth_lora.py` attaches them: PEFT's
 * `LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian")` on the UNet's attention
 * projections and, with `--train_text_encoder`, on CLIP's. Every base weight is frozen, so only
 * lora_A and lora_B train. The adapters draw their initialisation and dropout masks from their own
 * generator (keyed by the run's seed), whose state checkpoints carry for an exact resume.
 */
export class TrainingLora {
  readonly generator: k.Generator;
  readonly models: { unet: Module; text_encoder?: Module };

  constructor(unet: Module, textEncoder: Module | null, o: TrainingLoraOptions) {
    // A stream of its own: the training generator's draws (noise, timesteps) stay those of a full fine-tune.
    this.generator = new k.Generator(Math.floor(keyedRandom(o.seed, 0x10a)() * 2 ** 32));
    this.models = textEncoder ? { unet, text_encoder: textEncoder } : { unet };
    const options = { rank: o.rank, alpha: o.rank, dropout: o.dropout, init: 'gaussian' as const, generator: this.generator };
    injectLora(unet, { ...options, targets: LORA_TARGETS.unetAttention });
    if (textEncoder) injectLora(textEncoder, { ...options, targets: LORA_TARGETS.textEncoderAttention });
  }

  /** Each adapted layer under its LoRA-file key (`unet.<path>`, `text_encoder.<path>`). */
  layers(): Map<string, LoraLayer> {
    const out = new Map<string, LoraLayer>();
    for (const [component, model] of Object.entries(this.models))
      for (const [path, l] of loraLayers(model)) out.set(`${component}.${path}`, l);
    return out;
  }

  /** lora_A and lora_B of every layer, UNet first: what the optimizer updates. */
  parameters(): Parameter[] {
    return [...this.layers().values()].flatMap((l) => l.adapterParameters());
  }

  /** Writes the adapters as diffusers' `save_lora_weights` does (`unet.…lora_A.weight`, …), atomically. */
  async save(storage: TrainerStorage, path: string, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
    const { tensors, metadata: header } = serializeLoraWeights(extractLoraWeights(this.models, undefined, metadata), 'diffusers');
    await writeTensors(storage, path, tensors, header);
  }

  /** A LoRA file of the storage, as `@kiln/nn/node`'s readLoraFile reads one from disk. */
  private async read(storage: TrainerStorage, path: string): Promise<LoraWeights> {
    const file = await openTensors(storage, path);
    const tensors = new Map<string, k.Tensor>();
    let kept = new Set<k.Tensor>();
    try {
      for (const name of file.keys()) tensors.set(name, await file.tensor(name));
      const lora = await parseLoraStateDict(tensors, file.metadata, { file: path, known: kohyaNameMap(this.models) });
      kept = new Set([...lora.modules.values()].flatMap((m) => [m.down, m.up]));
      return lora;
    } finally {
      for (const t of tensors.values()) if (!kept.has(t) && !t.isDisposed) t.dispose();
    }
  }

  /** Puts a checkpoint's adapter values back into these adapters (the optimizer's parameters stay the same objects). */
  async load(storage: TrainerStorage, path: string): Promise<void> {
    let lora;
    try {
      lora = await this.read(storage, path);
    } catch (e) {
      throw new CheckpointError(`${path}: the checkpoint's LoRA weights cannot be read (${(e as Error).message})`, { cause: e });
    }
    try {
      const layers = this.layers();
      const issues: string[] = [];
      for (const key of layers.keys()) if (!lora.modules.has(key)) issues.push(`'${key}' is missing`);
      for (const [key, m] of lora.modules) {
        const l = layers.get(key);
        if (!l) issues.push(`'${key}' is not an adapter of this run`);
        else if (m.down.shape.join() !== l.loraA.weight.shape.join() || m.up.shape.join() !== l.loraB.weight.shape.join())
          issues.push(`'${key}' has rank ${m.down.shape[0]}, this run ${l.rank}`);
      }
      if (issues.length > 0)
        throw new CheckpointError(`${path}: the checkpoint's adapters do not match this run's: ${issues.slice(0, 4).join('; ')}`);
      k.noGrad(() => {
        for (const [key, l] of layers) {
          const m = lora.modules.get(key)!;
          l.loraA.weight.assign_(k.clone(m.down));
          l.loraB.weight.assign_(k.clone(m.up));
        }
      });
    } finally {
      for (const m of lora.modules.values()) (m.down.dispose(), m.up.dispose());
    }
  }
}
