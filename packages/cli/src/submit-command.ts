import { readFile } from 'node:fs/promises';
import { JobClient } from '@kiln/jobs';
import type { JobType } from '@kiln/jobs';
import { TrainerConfigError } from '@kiln/dreambooth-trainer';
import { parseTrainerArgs, readConfigFile } from '@kiln/dreambooth-trainer/node';
import type { CommandIO } from './generate.js';
import { parseGenerateArgs } from './generate-options.js';
import { intFlag, takeFlags } from './pool-flags.js';
import { UsageError } from './usage-error.js';

export const SUBMIT_USAGE = `kiln submit (train-dreambooth | generate | generate-batch) [pool options] [job options]

Queues a job for the pool's workers and prints its id. Every path is a storage key: relative to
the storage root the workers were started with (--storage), never outside it.

  kiln submit train-dreambooth --config run.yaml [--name value …]   the flags of kiln train-dreambooth;
                                                                     without --output_dir the run goes to jobs/<id>
  kiln submit generate --model KEY --prompt TEXT --out KEY [--steps N …]   the flags of kiln generate (--lora KEY[:SCALE] too)
  kiln submit generate-batch --model KEY --batch prompts.jsonl --out KEY   prompts.jsonl is read here

pool options:
  --redis URL      (default: $KILN_REDIS_URL, then $REDIS_URL)
  --user NAME      who submits (per-user rate limits count it)
  --priority N     1 is the highest priority
  --attempts N     tries for transient failures (default: 3)
  --backoff-ms N   wait before the first retry, doubled after each (default: 15000)`;

const FLAGS = ['redis', 'user', 'priority', 'attempts', 'backoff-ms'] as const;

/** The payload of a training job from trainer flags: validated here, output_dir left out when not given (the client picks jobs/<id>). */
function trainPayload(args: string[]): Record<string, unknown> {
  let config: Record<string, unknown>;
  try {
    config = { ...parseTrainerArgs(args) };
    const at = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
    const file = at < 0 ? {} : readConfigFile(args[at].includes('=') ? args[at].slice(9) : args[at + 1]);
    if (!args.some((a) => /^--output[-_]dir(=|$)/.test(a)) && !('output_dir' in file)) delete config.output_dir;
  } catch (e) {
    if (e instanceof TrainerConfigError) throw new UsageError(`${e.message}\n\nkiln train-dreambooth --help lists every option.`);
    throw e;
  }
  return { config };
}

/** `kiln submit`: resolves to the new job's id. */
export async function submitCommand(args: readonly string[], io: CommandIO): Promise<string> {
  const [type, ...more] = args;
  const { flags: f, rest } = takeFlags(more, FLAGS, SUBMIT_USAGE);
  let payload: Record<string, unknown>;
  let jobType: JobType;
  if (type === 'train-dreambooth') {
    jobType = type;
    payload = trainPayload(rest);
  } else if (type === 'generate' || type === 'generate-batch') {
    const g = parseGenerateArgs(rest);
    if (type === 'generate' && g.batch)
      throw new UsageError(`kiln submit generate takes --prompt; use generate-batch for --batch\n\n${SUBMIT_USAGE}`);
    if (type === 'generate-batch' && !g.batch) throw new UsageError(`kiln submit generate-batch needs --batch FILE\n\n${SUBMIT_USAGE}`);
    // A worker runs on another machine with its own storage: it cannot read a local starting image.
    if (g.fields.image !== undefined || g.fields.strength !== undefined)
      throw new UsageError(`kiln submit ${type}: --image and --strength are for kiln generate on this machine (workers run text to image)`);
    jobType = type;
    if (g.batch) {
      const text = await readFile(g.batch, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`--batch ${g.batch}: cannot be read (${e.code ?? e.message})`);
      });
      const requests = text.split(/\r?\n/).flatMap((line, i) => {
        if (line.trim() === '') return [];
        try {
          return [{ ...g.fields, ...(JSON.parse(line) as Record<string, unknown>) }];
        } catch (e) {
          throw new UsageError(`--batch ${g.batch}:${i + 1}: not valid JSON: ${(e as Error).message}`);
        }
      });
      payload = { model: g.model, loras: g.loras, out: g.out, requests };
    } else payload = { model: g.model, loras: g.loras, out: g.out, request: g.fields };
  } else throw new UsageError(`name a job type: train-dreambooth, generate or generate-batch\n\n${SUBMIT_USAGE}`);
  if (f.user) payload.user = f.user;
  const client = await JobClient.connect({ redis: f.redis, log: io.err });
  try {
    return await client.submit(jobType, payload, {
      priority: f.priority === undefined ? undefined : intFlag('priority', f.priority, 1),
      retry: { attempts: intFlag('attempts', f.attempts, 3), backoffMs: intFlag('backoff-ms', f['backoff-ms'], 15_000, 0) },
    });
  } finally {
    await client.close();
  }
}
