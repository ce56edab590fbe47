import { TrainerConfigError } from '@kiln/dreambooth-trainer';
import {
  parseTextToImageArgs,
  parseTrainerArgs,
  parseVaeTrainerArgs,
  runTrainer,
  textToImageHelp,
  trainDreamBooth,
  trainerHelp,
  trainVae,
  vaeTrainerHelp,
} from '@kiln/dreambooth-trainer/node';
import type { CommandIO } from './generate.js';
import { UsageError } from './usage-error.js';

export const TRAIN_DREAMBOOTH_USAGE = trainerHelp();
export const TRAIN_TEXT_TO_IMAGE_USAGE = textToImageHelp();
export const TRAIN_VAE_USAGE = vaeTrainerHelp();

/** What a training command runs: its flag parser and its trainer. */
interface Trainer<C> {
  name: string;
  parse: (args: readonly string[]) => C;
  train: (
    config: C,
    hooks: { signal: AbortSignal; log: (line: string) => void; progress: (line: string) => void },
  ) => Promise<{ step: number; interrupted: boolean; outputDir: string }>;
}

const TRAINERS = {
  'train-dreambooth': { name: 'train-dreambooth', parse: parseTrainerArgs, train: trainDreamBooth },
  'train-text-to-image': { name: 'train-text-to-image', parse: parseTextToImageArgs, train: runTrainer },
  'train-vae': {
    name: 'train-vae',
    parse: parseVaeTrainerArgs,
    train: async (c, hooks) => {
      const r = await trainVae(c, {
        signal: hooks.signal,
        log: hooks.log,
        onStep: (step, mse) => hooks.progress(`step ${step} mse ${mse.toFixed(5)}`),
      });
      return { ...r, outputDir: c.output_dir ?? 'vae-model' };
    },
  } satisfies Trainer<ReturnType<typeof parseVaeTrainerArgs>>,
};

/**
 * `kiln train-dreambooth`: diffusers' train_dreambooth.py flags (and `--config run.yaml`).
 * Ctrl-C stops at the next step after saving a checkpoint (a second Ctrl-C exits at once).
 * Resolves to what was written.
 */
export async function trainDreamboothCommand(
  args: readonly string[],
  io: CommandIO,
  signals: NodeJS.EventEmitter = process,
  command: keyof typeof TRAINERS = 'train-dreambooth',
): Promise<string> {
  const trainer = TRAINERS[command] as Trainer<unknown>;
  let config;
  try {
    config = trainer.parse(args);
  } catch (e) {
    if (e instanceof TrainerConfigError) throw new UsageError(`${e.message}\n\nkiln ${trainer.name} --help lists every option.`);
    throw e;
  }
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    io.err('\nstopping after this step (a checkpoint is saved); Ctrl-C again to quit now');
    controller.abort();
  };
  signals.on('SIGINT', onSigint);
  try {
    let last = 0;
    const result = await trainer.train(config, {
      signal: controller.signal,
      log: io.err,
      progress: (line) => {
        if (io.progress) io.progress(line);
        else if (Date.now() - last > 10_000) {
          last = Date.now();
          io.err(line);
        }
      },
    });
    return result.interrupted
      ? `checkpoint-${result.step} in ${result.outputDir} (stopped; resume with --resume_from_checkpoint latest)`
      : result.outputDir;
  } finally {
    signals.off('SIGINT', onSigint);
  }
}
