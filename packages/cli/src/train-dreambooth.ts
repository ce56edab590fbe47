import { TrainerConfigError } from '@kiln/dreambooth-trainer';
import { parseTrainerArgs, trainDreamBooth, trainerHelp } from '@kiln/dreambooth-trainer/node';
import type { CommandIO } from './generate.js';
import { UsageError } from './usage-error.js';

export const TRAIN_DREAMBOOTH_USAGE = trainerHelp();

/**
 * `kiln train-dreambooth`: diffusers' train_dreambooth.py flags (and `--config run.yaml`).
 * Ctrl-C stops at the next step after saving a checkpoint (a second Ctrl-C exits at once).
 * Resolves to what was written.
 */
export async function trainDreamboothCommand(
  args: readonly string[],
  io: CommandIO,
  signals: NodeJS.EventEmitter = process,
): Promise<string> {
  let config;
  try {
    config = parseTrainerArgs(args);
  } catch (e) {
    if (e instanceof TrainerConfigError) throw new UsageError(`${e.message}\n\nkiln train-dreambooth --help lists every option.`);
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
    const result = await trainDreamBooth(config, {
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
