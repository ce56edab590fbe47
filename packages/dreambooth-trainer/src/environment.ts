import type * as k from '@kiln/tensor-core';
import type { CLIPTokenizer } from '@kiln/clip';
import type { StableDiffusionPipeline } from '@kiln/pipeline';
import type { RunLogger } from '@kiln/tracking';
import { opfsStorage } from './storage/opfs-storage.js';
import { loadPipelineFolder, loadTokenizerFolder } from './storage/pipeline-folder.js';
import { openStorageRun } from './storage/storage-tracker.js';
import { baseName } from './storage/storage.js';
import type { TrainerStorage } from './storage/storage.js';

/**
 * Loads the base model for a run. The trainer calls it once per pipeline it needs (the training
 * one, and one in `dtype` for class images under `--prior_generation_precision`, and the frozen
 * VAE and text encoder again at the end of a mixed-precision run) and disposes what it gets, so
 * each call must return a new pipeline.
 *
 * @example
 * ```ts
 * const loadPipeline: PipelineLoader = async ({ dtype }) => loadPipelineFolder(storage, 'models/sd15', { dtype });
 * ```
 */
export type PipelineLoader = (options: { dtype?: k.DType }) => Promise<StableDiffusionPipeline>;

/** Where a run reads and writes, and how it loads models: Node's filesystem, or a {@link TrainerStorage}. */
export interface TrainerEnvironment {
  storage: TrainerStorage;
  loadPipeline(source: string, options: { dtype?: k.DType; variant?: string; revision?: string }): Promise<StableDiffusionPipeline>;
  loadTokenizer(source: string): Promise<CLIPTokenizer>;
  openTracker(dir: string, reportTo: readonly ('tensorboard' | 'html')[], log: (line: string) => void): RunLogger;
  log(line: string): void;
}

/** Whether this runs in Node (rather than a browser or a worker). */
export const isNode = (): boolean =>
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

/** Everything through `storage`: the base model is a diffusers folder in it, logs are files in it. */
export function storageEnvironment(storage: TrainerStorage): TrainerEnvironment {
  return {
    storage,
    loadPipeline: (source, o) => loadPipelineFolder(storage, source, { dtype: o.dtype, variant: o.variant }),
    async loadTokenizer(source) {
      const sub = storage.join(source, 'tokenizer');
      return loadTokenizerFolder(storage, (await storage.kind(storage.join(sub, 'vocab.json'))) === 'file' ? sub : source);
    },
    openTracker(dir, reportTo, log) {
      if (reportTo.includes('tensorboard'))
        log(
          `--report_to tensorboard: a ${storage.name} storage gets metrics.jsonl (and report.html with --report_to all), not TensorBoard event files`,
        );
      return openStorageRun(storage, dir, { html: reportTo.includes('html'), name: baseName(dir) });
    },
    log: (line) => console.log(line),
  };
}

/**
 * The options of `trainDreamBooth` that choose the environment.
 *
 * @example
 * ```ts
 * // A pipeline already fetched over HTTP, and the run's files in memory:
 * await trainDreamBooth(config, { storage: memoryStorage(), loadPipeline: async () => (await loadModel(url)).pipe });
 * ```
 */
export interface EnvironmentOptions {
  /** Where paths of the config are (default: the filesystem in Node, the Origin Private File System in a browser). */
  storage?: TrainerStorage;
  /** Loads the base model instead of reading `pretrained_model_name_or_path` from the storage (a model fetched over HTTP, built in memory). */
  loadPipeline?: PipelineLoader;
}

/** The environment of a run: Node's (filesystem, Hub downloads) unless a storage is given or this is a browser. */
export async function resolveEnvironment(o: EnvironmentOptions): Promise<TrainerEnvironment> {
  const env = o.storage
    ? storageEnvironment(o.storage)
    : isNode()
      ? (await import('#node-only')).nodeEnvironment()
      : storageEnvironment(await opfsStorage());
  return o.loadPipeline ? { ...env, loadPipeline: (_source, { dtype }) => o.loadPipeline!({ dtype }) } : env;
}
