import type { CommandIO } from './generate.js';

/** A command as its module gives it; `raw` ones print their result as it is (a job id, JSON) instead of "kiln NAME: wrote …". */
interface LoadedCommand {
  usage: string;
  run: (args: readonly string[], io: CommandIO) => Promise<string>;
  raw?: boolean;
}

/**
 * Every command: its synopsis (the first line of its usage, for `kiln --help`) and how to load it.
 * Commands are imported when dispatched, so `kiln --help` and one command's start do not load
 * every command's dependencies (the trainer, BullMQ, the pipeline). `test/main.test.ts` checks
 * that each synopsis is its usage's first line.
 */
export const COMMANDS: Record<string, { synopsis: string; load: () => Promise<LoadedCommand>; usage?: () => Promise<string> }> = {
  report: {
    synopsis: 'kiln report RUN_DIR [RUN_DIR…] [--out FILE]',
    load: async () => {
      const m = await import('./report.js');
      return { usage: m.REPORT_USAGE, run: m.report };
    },
  },
  generate: {
    synopsis: 'kiln generate --model SOURCE (--prompt TEXT | --batch FILE) [options]',
    load: async () => {
      const m = await import('./generate.js');
      return { usage: m.GENERATE_USAGE, run: m.generate };
    },
    usage: async () => (await import('./generate-usage.js')).GENERATE_USAGE,
  },
  'train-dreambooth': {
    synopsis: 'kiln train-dreambooth --pretrained_model_name_or_path DIR --instance_data_dir DIR --instance_prompt TEXT [options]',
    load: async () => {
      const m = await import('./train-dreambooth.js');
      return { usage: m.TRAIN_DREAMBOOTH_USAGE, run: (args, io) => m.trainDreamboothCommand(args, io) };
    },
  },
  'train-text-to-image': {
    synopsis: 'kiln train-text-to-image --pretrained_model_name_or_path DIR --train_data_dir DIR [options]',
    load: async () => {
      const m = await import('./train-dreambooth.js');
      return { usage: m.TRAIN_TEXT_TO_IMAGE_USAGE, run: (args, io) => m.trainDreamboothCommand(args, io, process, 'train-text-to-image') };
    },
  },
  'train-vae': {
    synopsis: 'kiln train-vae (--vae_config FILE | --pretrained_vae_name_or_path DIR) --train_data_dir DIR [options]',
    load: async () => {
      const m = await import('./train-dreambooth.js');
      return { usage: m.TRAIN_VAE_USAGE, run: (args, io) => m.trainDreamboothCommand(args, io, process, 'train-vae') };
    },
  },
  worker: {
    synopsis: 'kiln worker --storage DIR [--redis URL] [--concurrency N] [--backend NAME] [options]',
    load: async () => {
      const m = await import('./worker-command.js');
      return { usage: m.WORKER_USAGE, run: (args, io) => m.workerCommand(args, io), raw: true };
    },
  },
  submit: {
    synopsis: 'kiln submit (train-dreambooth | generate | generate-batch) [pool options] [job options]',
    load: async () => {
      const m = await import('./submit-command.js');
      return { usage: m.SUBMIT_USAGE, run: m.submitCommand, raw: true };
    },
  },
  jobs: {
    synopsis: 'kiln jobs (status [ID] | cancel ID | logs ID) [--redis URL]',
    load: async () => {
      const m = await import('./jobs-command.js');
      return { usage: m.JOBS_USAGE, run: m.jobsCommand, raw: true };
    },
  },
};

const HELP = `kiln <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.synopsis}`)
  .join('\n')}

kiln <command> --help shows a command's options.`;

/**
 * Runs the `kiln` command line (without the program name) and returns its exit code. Errors Kiln
 * raises on purpose are printed as one message; anything else is a bug and keeps its stack.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['report', 'runs/dog']);
 * ```
 */
export async function main(
  argv: readonly string[],
  out: (s: string) => void = console.log,
  err: (s: string) => void = console.error,
): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h') {
    out(HELP);
    return name ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    err(`kiln: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    out(entry.usage ? await entry.usage() : (await entry.load()).usage);
    return 0;
  }
  const command = await entry.load();
  try {
    // A terminal gets a progress line redrawn in place; a log or a caller's err() gets one now and then.
    const progress = err === console.error && process.stderr.isTTY ? (line: string) => process.stderr.write(`\r${line}\x1b[K`) : undefined;
    const result = await command.run(args, { err, progress });
    if (progress) process.stderr.write('\n');
    out(command.raw ? result : `kiln ${name}: wrote ${result}`);
    return 0;
  } catch (e) {
    // Loaded here, not at the top: `kiln --help` needs no tensor library.
    const { KilnError } = await import('@kiln/tensor-core');
    const { UsageError } = await import('./usage-error.js');
    if (!(e instanceof KilnError)) throw e;
    err(`kiln ${name}: ${e.message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
