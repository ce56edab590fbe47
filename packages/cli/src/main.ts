import { KilnError } from '@kiln/tensor-core';
import { generate, GENERATE_USAGE } from './generate.js';
import type { CommandIO } from './generate.js';
import { report, REPORT_USAGE } from './report.js';
import { trainDreamboothCommand, TRAIN_DREAMBOOTH_USAGE, TRAIN_TEXT_TO_IMAGE_USAGE, TRAIN_VAE_USAGE } from './train-dreambooth.js';
import { UsageError } from './usage-error.js';
import { jobsCommand, JOBS_USAGE } from './jobs-command.js';
import { submitCommand, SUBMIT_USAGE } from './submit-command.js';
import { workerCommand, WORKER_USAGE } from './worker-command.js';

/** A command; `raw` ones print their result as it is (a job id, JSON) instead of "kiln NAME: wrote …". */
const COMMANDS: Record<string, { usage: string; run: (args: readonly string[], io: CommandIO) => Promise<string>; raw?: boolean }> = {
  report: { usage: REPORT_USAGE, run: report },
  generate: { usage: GENERATE_USAGE, run: generate },
  'train-dreambooth': { usage: TRAIN_DREAMBOOTH_USAGE, run: (args, io) => trainDreamboothCommand(args, io) },
  'train-text-to-image': {
    usage: TRAIN_TEXT_TO_IMAGE_USAGE,
    run: (args, io) => trainDreamboothCommand(args, io, process, 'train-text-to-image'),
  },
  'train-vae': { usage: TRAIN_VAE_USAGE, run: (args, io) => trainDreamboothCommand(args, io, process, 'train-vae') },
  worker: { usage: WORKER_USAGE, run: (args, io) => workerCommand(args, io), raw: true },
  submit: { usage: SUBMIT_USAGE, run: submitCommand, raw: true },
  jobs: { usage: JOBS_USAGE, run: jobsCommand, raw: true },
};

const HELP = `kiln <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split('\n')[0]}`)
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
  const command = COMMANDS[name];
  if (!command) {
    err(`kiln: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    out(command.usage);
    return 0;
  }
  try {
    // A terminal gets a progress line redrawn in place; a log or a caller's err() gets one now and then.
    const progress = err === console.error && process.stderr.isTTY ? (line: string) => process.stderr.write(`\r${line}\x1b[K`) : undefined;
    const result = await command.run(args, { err, progress });
    if (progress) process.stderr.write('\n');
    out(command.raw ? result : `kiln ${name}: wrote ${result}`);
    return 0;
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    err(`kiln ${name}: ${e.message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
