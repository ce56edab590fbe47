import { LocalStorage, PoolWorker, QUEUE_NAMES } from '@kiln/jobs';
import type { QueueName } from '@kiln/jobs';
import type { CommandIO } from './generate.js';
import { intFlag, takeFlags } from './pool-flags.js';
import { UsageError } from './usage-error.js';

export const WORKER_USAGE = `kiln worker --storage DIR [--redis URL] [--concurrency N] [--backend NAME] [options]

Runs jobs from the pool's queues (train-dreambooth on 'train', generate and generate-batch on
'generate') until Ctrl-C or SIGTERM, which stops running jobs at their next step (training saves
a checkpoint) and puts them back in the queue. A job of a worker that dies is taken over by
another within --lock-ms and resumed from its last checkpoint.

options:
  --redis URL                 redis://[user:password@]host:port[/db] (default: $KILN_REDIS_URL, then $REDIS_URL)
  --storage DIR               the storage root every payload path is inside; the same shared volume on every machine (default: $KILN_STORAGE)
  --backend NAME              wasm, cpu or webgpu (default: wasm)
  --concurrency N             jobs at once per queue (default: 1)
  --train-concurrency N       jobs at once on the train queue (default: --concurrency)
  --generate-concurrency N    jobs at once on the generate queue (default: --concurrency)
  --queues LIST               train, generate or train,generate (default: both)
  --lock-ms N                 job lock time: how soon a dead worker's job is taken over (default: 30000)`;

const FLAGS = ['redis', 'storage', 'backend', 'concurrency', 'train-concurrency', 'generate-concurrency', 'queues', 'lock-ms'] as const;
const BACKENDS = ['wasm', 'cpu', 'webgpu'] as const;

/** `kiln worker`: resolves when the worker has been stopped by a signal. */
export async function workerCommand(args: readonly string[], io: CommandIO, signals: NodeJS.EventEmitter = process): Promise<string> {
  const { flags: f, rest } = takeFlags(args, FLAGS, WORKER_USAGE);
  if (rest.length) throw new UsageError(`unknown argument ${JSON.stringify(rest[0])}\n\n${WORKER_USAGE}`);
  const root = f.storage ?? process.env.KILN_STORAGE;
  if (!root) throw new UsageError(`--storage DIR is required (or set KILN_STORAGE)\n\n${WORKER_USAGE}`);
  const backend = f.backend ?? 'wasm';
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new UsageError(`--backend ${backend}: not one of ${BACKENDS.join(', ')}`);
  const queues = (f.queues ?? QUEUE_NAMES.join(',')).split(',').map((q) => q.trim());
  for (const q of queues)
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) throw new UsageError(`--queues: '${q}' is not one of ${QUEUE_NAMES.join(', ')}`);
  const all = intFlag('concurrency', f.concurrency, 1);
  const worker = await PoolWorker.start({
    redis: f.redis,
    storage: new LocalStorage(root),
    backend: backend as (typeof BACKENDS)[number],
    queues: queues as QueueName[],
    concurrency: {
      train: intFlag('train-concurrency', f['train-concurrency'], all),
      generate: intFlag('generate-concurrency', f['generate-concurrency'], all),
    },
    lockDurationMs: intFlag('lock-ms', f['lock-ms'], 30_000, 1000),
    log: io.err,
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      signals.off('SIGINT', stop);
      signals.off('SIGTERM', stop);
      io.err('stopping: running jobs stop at their next step and go back to the queue');
      void worker.close().then(resolve);
    };
    signals.on('SIGINT', stop);
    signals.on('SIGTERM', stop);
  });
  return 'worker stopped';
}
