import * as k from '@kiln/tensor-core';
import type { AdamW, AdamWHyper, LambdaLR, LRSchedulerState, Module, OptimizerStateDict } from '@kiln/nn';
import { z } from 'zod';
import { resolveEnvironment } from './environment.js';
import { loadTensors, saveModelFolder, writeTensors } from './storage/tensor-files.js';
import { baseName, dirName, readText } from './storage/storage.js';
import type { TrainerStorage } from './storage/storage.js';
import { CheckpointError } from './errors.js';
import { GradScalerStateSchema } from './grad-scaler.js';
import type { GradScalerState } from './grad-scaler.js';

/** Where training stands: enough to continue with the identical loss curve. */
export interface TrainerState {
  /** Optimizer steps done. */
  globalStep: number;
  /** The epoch and the index of the next batch in it. */
  epoch: number;
  batchIndex: number;
  /** The epoch's batch order (dataset indices), for the record and to check on resume. */
  dataOrder: number[];
  generator: k.GeneratorState;
  dataSeed: number;
  lrScheduler: LRSchedulerState;
  /** What the weights must match: parameter names and shapes of the trained models. */
  fingerprint: string;
  /** What the data position depends on; a resume with other values is refused. */
  batching: { train_batch_size: number; gradient_accumulation_steps: number; dataset_length: number };
  /** A LoRA run's adapter generator (initialisation and dropout masks). */
  adapterGenerator?: k.GeneratorState;
  /** A `--mixed_precision fp16` run's loss scale and growth count. */
  gradScaler?: GradScalerState;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** Writes the trained weights into the folder instead of each model's folder (a LoRA run writes its adapters). */
  writeWeights?: (dir: string) => Promise<void>;
}

const GeneratorStateSchema = z.object({
  algorithm: z.literal('philox4x32-10'),
  seed: z.number().int().min(0),
  offset: z.number().int().min(0),
});

const StateSchema = z.object({
  format: z.literal('kiln-dreambooth-checkpoint'),
  version: z.literal(1),
  globalStep: z.number().int().min(0),
  epoch: z.number().int().min(0),
  batchIndex: z.number().int().min(0),
  dataOrder: z.array(z.number().int().min(0)),
  generator: GeneratorStateSchema,
  adapterGenerator: GeneratorStateSchema.optional(),
  gradScaler: GradScalerStateSchema.optional(),
  dataSeed: z.number().int(),
  lrScheduler: z.object({ lastEpoch: z.number().int(), baseLrs: z.array(z.number()) }),
  fingerprint: z.string(),
  batching: z.object({
    train_batch_size: z.number().int(),
    gradient_accumulation_steps: z.number().int(),
    dataset_length: z.number().int(),
  }),
  optimizer: z.object({
    paramGroups: z.array(z.record(z.string(), z.unknown())),
    steps: z.record(z.string(), z.number().int()),
  }),
});

const STATE_FILE = 'trainer_state.json';
const OPT_FILE = 'optimizer.safetensors';

/** A short description of the trained parameters (names and shapes), so a checkpoint of another model is refused. */
export function fingerprintOf(models: Record<string, Module>): string {
  const parts: string[] = [];
  for (const [name, m] of Object.entries(models))
    for (const [key, p] of m.namedParameters()) parts.push(`${name}.${key}:${p.shape.join('x')}`);
  let h = 0x811c9dc5;
  const text = parts.join(';');
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return `${parts.length} tensors, fnv1a ${h.toString(16).padStart(8, '0')}`;
}

/** The storage a public helper uses when none is given: the filesystem in Node, OPFS in a browser. */
const defaultStorage = async () => (await resolveEnvironment({})).storage;

/**
 * The `checkpoint-N` folders of `outputDir`, oldest first.
 *
 * @example
 * ```ts
 * await listCheckpoints('out/dog'); // [{ step: 100, path: 'out/dog/checkpoint-100' }, …]
 * ```
 */
export async function listCheckpoints(outputDir: string, storage?: TrainerStorage): Promise<{ step: number; path: string }[]> {
  const s = storage ?? (await defaultStorage());
  const names = await s.list(outputDir).catch(() => [] as string[]);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: s.join(outputDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** diffusers' rule: before saving, remove the oldest so that at most `limit − 1` remain. */
export async function pruneCheckpoints(storage: TrainerStorage, outputDir: string, limit: number | null): Promise<string[]> {
  if (limit === null) return [];
  const all = await listCheckpoints(outputDir, storage);
  if (all.length < limit) return [];
  const remove = all.slice(0, all.length - limit + 1);
  for (const c of remove) await storage.remove(c.path);
  return remove.map((c) => c.path);
}

/**
 * Writes `checkpoint-N/` (the trained models' weights in diffusers' layout, the optimizer's
 * moments, the LR schedule, the step, the generator and the data position) into a temporary
 * folder and renames it into place, so a kill never leaves a half-written checkpoint.
 */
export async function saveCheckpoint(
  storage: TrainerStorage,
  dir: string,
  models: Record<string, Module>,
  optimizer: AdamW,
  lrScheduler: LambdaLR,
  state: Omit<TrainerState, 'lrScheduler'>,
  options: SaveCheckpointOptions = {},
): Promise<void> {
  const tmp = storage.join(dirName(dir), `.${baseName(dir)}.tmp`);
  try {
    await writeCheckpointFolder(storage, tmp, models, optimizer, lrScheduler, state, options);
  } catch (e) {
    // A full disk or an I/O error: drop the partial folder; earlier checkpoints stay as they were.
    await storage.remove(tmp).catch(() => {});
    throw new CheckpointError(
      `${dir}: the checkpoint could not be written (${(e as Error).message}); nothing was left half-written and earlier checkpoints are intact`,
      { cause: e },
    );
  }
  await storage.remove(dir);
  await storage.rename(tmp, dir);
}

async function writeCheckpointFolder(
  storage: TrainerStorage,
  tmp: string,
  models: Record<string, Module>,
  optimizer: AdamW,
  lrScheduler: LambdaLR,
  state: Omit<TrainerState, 'lrScheduler'>,
  options: SaveCheckpointOptions,
): Promise<void> {
  await storage.remove(tmp);
  await storage.mkdir(tmp);
  if (options.writeWeights) await options.writeWeights(tmp);
  else for (const [name, m] of Object.entries(models)) await saveModelFolder(storage, storage.join(tmp, name), m);
  const opt = optimizer.stateDict();
  const tensors = new Map<string, k.Tensor>();
  const steps: Record<string, number> = {};
  try {
    for (const [id, s] of Object.entries(opt.state)) {
      steps[id] = s.step as number;
      tensors.set(`${id}.exp_avg`, s.expAvg as k.Tensor);
      tensors.set(`${id}.exp_avg_sq`, s.expAvgSq as k.Tensor);
    }
    await writeTensors(storage, storage.join(tmp, OPT_FILE), tensors);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  const json = {
    format: 'kiln-dreambooth-checkpoint',
    version: 1,
    ...state,
    lrScheduler: lrScheduler.stateDict(),
    optimizer: { paramGroups: opt.paramGroups, steps },
  };
  await storage.write(storage.join(tmp, STATE_FILE), `${JSON.stringify(json, null, 1)}\n`);
}

/**
 * Finds the checkpoint `--resume_from_checkpoint` names: a path, a name inside `outputDir`, or `latest`. Null when `latest` finds none.
 *
 * @example
 * ```ts
 * await resolveCheckpoint('latest', 'out/dog'); // 'out/dog/checkpoint-200', or null
 * ```
 */
export async function resolveCheckpoint(spec: string, outputDir: string, storage?: TrainerStorage): Promise<string | null> {
  const s = storage ?? (await defaultStorage());
  if (spec === 'latest') {
    const all = await listCheckpoints(outputDir, s);
    return all.length ? all[all.length - 1].path : null;
  }
  const inside = s.join(outputDir, baseName(spec));
  for (const p of [spec, inside]) if ((await s.kind(p).catch(() => null)) === 'folder') return p;
  throw new CheckpointError(`resume_from_checkpoint: ${spec} is not a checkpoint folder (looked in ${spec} and ${inside})`);
}

/** Reads a checkpoint's state and checks it belongs to these models; the caller then loads weights and optimizer. */
export async function readCheckpointState(
  storage: TrainerStorage,
  dir: string,
  fingerprint: string,
  batching: TrainerState['batching'],
): Promise<TrainerState & { optimizer: z.infer<typeof StateSchema>['optimizer'] }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readText(storage, storage.join(dir, STATE_FILE)));
  } catch (e) {
    throw new CheckpointError(
      `${storage.join(dir, STATE_FILE)}: cannot be read as JSON (${(e as Error).message}); is ${dir} a Kiln DreamBooth checkpoint?`,
    );
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new CheckpointError(`${storage.join(dir, STATE_FILE)}: ${i.path.join('.') || 'file'}: ${i.message}`);
  }
  if (parsed.data.fingerprint !== fingerprint) {
    throw new CheckpointError(
      `${dir}: checkpoint of another model: its trained parameters are ${parsed.data.fingerprint}, this run's are ${fingerprint} (different base model, --train_text_encoder, --lora or --rank setting)`,
    );
  }
  for (const [field, value] of Object.entries(batching) as [keyof TrainerState['batching'], number][]) {
    const saved = parsed.data.batching[field];
    if (saved !== value) {
      const what = field === 'dataset_length' ? 'the dataset has' : `--${field} is`;
      throw new CheckpointError(
        `${dir}: saved with ${field} = ${saved}, but ${what} ${value} now; the data position would not carry over (resume with the same setting)`,
      );
    }
  }
  return parsed.data;
}

/** Loads the optimizer moments of a checkpoint into `optimizer` (its param order must match, which the fingerprint ensures). */
export async function loadOptimizer(
  storage: TrainerStorage,
  dir: string,
  optimizer: AdamW,
  saved: { paramGroups: Record<string, unknown>[]; steps: Record<string, number> },
): Promise<void> {
  const tensors = await loadTensors(storage, storage.join(dir, OPT_FILE));
  try {
    const state: OptimizerStateDict<AdamWHyper>['state'] = {};
    for (const [id, step] of Object.entries(saved.steps)) {
      const expAvg = tensors[`${id}.exp_avg`];
      const expAvgSq = tensors[`${id}.exp_avg_sq`];
      if (!expAvg || !expAvgSq) throw new CheckpointError(`${storage.join(dir, OPT_FILE)}: moments of parameter ${id} are missing`);
      state[Number(id)] = { step, expAvg, expAvgSq };
    }
    optimizer.loadStateDict({ state, paramGroups: saved.paramGroups as unknown as OptimizerStateDict<AdamWHyper>['paramGroups'] });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
