import { JobClient } from '@kiln/jobs';
import type { CommandIO } from './generate.js';
import { takeFlags } from './pool-flags.js';
import { UsageError } from './usage-error.js';

export const JOBS_USAGE = `kiln jobs (status [ID] | cancel ID | logs ID) [--redis URL]

  status ID   the job's state, progress (step, loss, ETA), tries, result or failure reason, as JSON
  status      jobs per queue and state
  cancel ID   removes a waiting job; a running one stops at its next step (training saves a checkpoint)
  logs ID     the job's log: each try, its worker, the trainer's messages

  --redis URL (default: $KILN_REDIS_URL, then $REDIS_URL)`;

/** `kiln jobs`: resolves to what it prints. */
export async function jobsCommand(args: readonly string[], io: CommandIO): Promise<string> {
  const { flags, rest } = takeFlags(args, ['redis'] as const, JOBS_USAGE);
  const [action, id, ...extra] = rest;
  if (extra.length || !['status', 'cancel', 'logs'].includes(action ?? '')) throw new UsageError(JOBS_USAGE);
  if (!id && action !== 'status') throw new UsageError(`kiln jobs ${action} needs a job id\n\n${JOBS_USAGE}`);
  const client = await JobClient.connect({ redis: flags.redis, log: io.err });
  try {
    if (action === 'status') return JSON.stringify(id ? await client.status(id) : await client.counts(), null, 2);
    if (action === 'cancel') return `${id}: ${await client.cancel(id)}`;
    return (await client.logs(id)).join('\n');
  } finally {
    await client.close();
  }
}
