import { Worker } from 'node:worker_threads';
import type { ThreadMessage, ThreadTask } from './thread-protocol.js';

/** An error a task thread raised, rebuilt on this side with its class name (which decides retries). */
export class TaskError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * Starts the task thread. From sources (tests, `--conditions=kiln-source`) the thread registers
 * tsx itself (loader hooks do not reach worker threads in Node 20) and resolves `@kiln/*` to their
 * sources; a build runs `task-thread.js` directly.
 */
function startThread(task: ThreadTask): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  if (!fromSource) return new Worker(new URL('./task-thread.js', import.meta.url), { workerData: task });
  const entry = new URL('./task-thread.ts', import.meta.url).href;
  // tsx is a dev tool of the workspace, never loaded by a built install; the specifier is spliced
  // in so that the built code does not read as importing a package it does not declare.
  const tsx = JSON.stringify('tsx/esm/api');
  const boot = `import(${tsx}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  // Under vitest the process may carry conditions of its own; kiln-source is what the sources need.
  const execArgv = process.execArgv.includes('--conditions=kiln-source')
    ? process.execArgv
    : [...process.execArgv, '--conditions=kiln-source'];
  return new Worker(boot, { eval: true, workerData: task, execArgv });
}

/**
 * Runs a task in its own thread, passing its messages to `onMessage`, and resolves to its result.
 * Aborting `signal` asks the task to stop at its next step (training saves a checkpoint first).
 */
export function runInThread(
  task: ThreadTask,
  onMessage: (m: ThreadMessage) => void,
  signal?: AbortSignal,
): Promise<(ThreadMessage & { type: 'done' })['result']> {
  return new Promise((resolve, reject) => {
    const thread = startThread(task);
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      f();
      void thread.terminate();
    };
    const onAbort = () => thread.postMessage({ type: 'abort' });
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    thread.on('message', (m: ThreadMessage) => {
      if (m.type === 'done') settle(() => resolve(m.result));
      else if (m.type === 'error') settle(() => reject(new TaskError(m.name, m.message)));
      else onMessage(m);
    });
    thread.on('error', (e) => settle(() => reject(new TaskError('TaskThreadError', `the task thread crashed: ${e.message}`))));
    thread.on('exit', (code) =>
      settle(() => reject(new TaskError('TaskThreadError', `the task thread exited (${code}) without a result`))),
    );
  });
}
